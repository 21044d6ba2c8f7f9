"""SummaryWriter's public methods, one module per summary kind.

Each module is named after its builder in ``gpu_summary.summaries`` (``kinds/mesh.py`` ↔
``summaries/mesh.py``) and holds one class, ``<Kind>Methods``, that
:class:`gpu_summary.SummaryWriter` inherits. That class holds the kind's public ``add_*``
methods with their docstrings; the module holds beside it everything that is the kind's own:
its argument checks, the job that builds its Summary and how it is queued. ``kinds/message.py``
has no builder: ``add_summary`` writes a Summary its caller made.

A kind builds on the machinery in ``gpu_summary._writer`` (state, step windows, rank
aggregation, generic jobs) and below, never on another kind: what two kinds share moves down
(to ``gpu_summary._core`` or ``gpu_summary._writer``). import-linter holds both rules. A kind
that logs records of another kind calls the writer's public method on ``self`` (``add_hparams``
logs its metric values with ``self.add_scalar``), declared in a Protocol of its own module.
"""
