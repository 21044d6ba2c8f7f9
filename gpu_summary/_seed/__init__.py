"""The seed API's helpers (``gpu_summary.summary`` is its public face): argument conventions
of ``flow.summary`` (``arguments``) and its ``Projector`` files (``projector``)."""
