"""Event files on disk: TFRecord framing (``records``), one file's descriptor and recovery
(``event_file``), the queue and writer thread (``channel``), the jobs it runs (``jobs``) and the
handle the writer holds (``writer``)."""
