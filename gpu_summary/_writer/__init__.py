"""SummaryWriter's machinery, beneath its public methods (``gpu_summary.writer``): the jobs
that build every Event on the writer thread (``jobs``), grouping many tensors into launches
(``tensor_groups``), the hparams session (``session``) and the merge across ranks
(``aggregation``)."""
