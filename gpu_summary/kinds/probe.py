"""Probes: ``probe`` makes one, ``collect`` logs what every probe saw (the machinery is in
``gpu_summary._writer.probes``)."""

from __future__ import annotations

from gpu_summary._core import arguments
from gpu_summary._core.formats import check_formats
from gpu_summary._writer import probes
from gpu_summary._writer.probes import Probe


class ProbeMethods:
    """``SummaryWriter.probe`` and ``SummaryWriter.collect``."""

    def probe(self, tag: str, *, bins: str = "tensorflow", formats: object = ()) -> Probe:
        """A probe: ``probe(x)`` returns ``x`` and adds its statistics on ``x``'s device,
        from eager code, ``torch.compile(fullgraph=True)`` code (no graph break, no
        recompile when values change) and captured CUDA graphs (each replay adds again);
        :meth:`collect` logs them.

        Call it outside compiled code (once; a later call with the same tag returns the same
        probe). The first use of a probe on a device allocates its accumulator there
        (about 12 KiB, and 80 KiB of kernel scratch on a GPU); inside a CUDA graph capture
        that first use is refused: call the probe once before capturing.

        Args:
            tag: the histogram's series name.
            bins: ``"tensorflow"`` (TensorBoard's ladder, the only buckets that a running
                total can keep fixed; ``"tensorboard"`` is the same).
            formats: low-precision formats whose overflow and underflow counts the probe
                also keeps (``"float8_e4m3fn"``, ``"float8_e5m2"``, ``"float16"``,
                ``"bfloat16"``), logged as ``<tag>/lowp/<format>/overflow`` and
                ``.../underflow`` at each collect.

        Returns:
            The :class:`~gpu_summary.Probe`, a callable on torch tensors (CPU or CUDA).

        Raises:
            TypeError: PyTorch is missing, or ``formats`` is not names.
            ValueError: other ``bins``; an unknown format; the tag's probe exists with other
                formats; the writer is closed.
        """
        state = self._state
        tag, _, _ = state.begin(tag, None, None)
        if bins not in ("tensorflow", "tensorboard"):
            raise ValueError(f"a probe keeps TensorBoard's fixed ladder of buckets: "
                             f"bins='tensorflow', got {bins!r}")  # fmt: skip
        names = check_formats(formats)
        try:
            import torch  # noqa: F401 - the operator is a torch operator
        except ImportError as exc:
            raise TypeError("writer.probe needs PyTorch (probes are torch operators); log "
                            "other arrays with add_histogram") from exc  # fmt: skip
        return state.probes.probe(tag, names)

    def collect(
        self,
        global_step: int | None = None,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log what every probe saw since the last collect, one record per probe, and start
        each probe again from zero.

        Each record is the histogram of every value the probe saw, exactly equal to the
        histogram of those values concatenated (counts, min and max exact; sums within the
        backends' tolerance), with ``<tag>/nonfinite`` beside it when NaN or ±Inf were among
        them (and a report to ``on_anomaly``), and the format counts. A probe that saw
        nothing writes nothing. On a device the accumulators are copied back asynchronously
        and emptied on the current stream: nothing waits here. Call it outside compiled
        code and outside a CUDA graph capture (e.g. after ``graph.replay()``). With
        ``distributed``, every rank calls it with the same probes; rank 0 writes the exact
        merge.

        Args:
            global_step: the step of the records; None: 0 (with ``count_steps``, each tag's
                last + 1).
            walltime: seconds since the epoch; default now.
        """
        state = self._state
        step = arguments.either_step(global_step, step)
        _, step, wall = state.begin("collect", step, walltime)
        probes.collect(state, state.probes, step, wall)
