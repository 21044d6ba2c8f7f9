"""SummaryWriter's public methods, a module per family of summaries.

Each module holds one class, ``<Family>Methods``, that :class:`gpu_summary.SummaryWriter`
inherits; its methods check their arguments and delegate to ``gpu_summary._writer``.
"""
