"""Pure builders from compact host results to Summary protos, one module per kind.

Builders never see device arrays or know which backend ran; they run on the writer thread.
"""
