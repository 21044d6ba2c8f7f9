"""Rank aggregation beneath ``gpu_summary.distributed``: the communicator of the writer's own
(``torch_group``, ``mpi_comm``, behind :class:`~gpu_summary._distributed.collective.Collective`),
and the exchange of each step's merges over it (``merge``, ``exchange``, ``disagreement``)."""
