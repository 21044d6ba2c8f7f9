"""SummaryWriter's machinery, beneath its kinds (``gpu_summary.kinds``): what a writer holds
and the path every call shares (``state``), the generic jobs that build Events on the writer
thread (``jobs``), step windows, a record per K calls of a tag (``windows``), the merge across
ranks (``aggregation``), the hparams session (``session``) and the ``FileWriter`` of torch's
``_get_file_writer()`` (``file_writer``)."""
