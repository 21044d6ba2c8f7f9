"""``add_audio``: checked at the call; the samples copied back asynchronously from the backend
that holds them, the WAV encoded on the writer thread."""

from __future__ import annotations

import math

import numpy as np

from gpu_summary._backend import backend_for
from gpu_summary._core import arguments
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries.audio import audio_summary

MAX_SAMPLE_RATE = 1 << 24  # Hz; far above any audio format's


class AudioMethods:
    """The audio method of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_audio(
        self,
        tag: str,
        snd_tensor: object,
        global_step: int | None = None,
        sample_rate: int = 44100,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log sound as mono 16-bit WAV (the Audio dashboard plays it).

        Args:
            tag: series name.
            snd_tensor: one clip of samples in [-1, 1] (shape (L,), (1, L) or any shape with
                one axis longer than 1), or a batch (n, L): clip i is ``<tag>/audio/<i>``.
                Values are clipped to [-1, 1] (NaN → 0), scaled by 32767, truncated; int16
                data is taken as PCM samples as they are.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            sample_rate: samples per second, a whole number of Hz.
            walltime: seconds since the epoch; default now.

        A device tensor is copied back asynchronously; the WAV is made on the writer thread.
        Clips of more than 2 GiB of 16-bit samples in all (one record's limit) are a
        ValueError at the call.
        """
        state = self._state
        tag, step, wall = state.begin(tag, arguments.either_step(global_step, step), walltime)
        rate = arguments.check_positive_number(sample_rate, "sample_rate", "sample_rate=16000")
        if rate != int(rate) or rate > MAX_SAMPLE_RATE:
            raise ValueError(f"sample_rate must be a whole number of Hz up to {MAX_SAMPLE_RATE}, "
                             f"got {sample_rate!r}")  # fmt: skip
        rate = int(rate)
        backend, array = backend_for(snd_tensor, "snd_tensor")
        shape = tuple(array.shape)
        long_axes = [size for size in shape if size != 1]
        if len(long_axes) <= 1:
            clips, length = 1, max(1, math.prod(shape))
            tags = [tag]
        elif len(long_axes) == 2 and len(shape) == 2:
            clips, length = shape
            tags = [f"{tag}/audio/{i}" for i in range(clips)]
        else:
            raise ValueError(
                f"snd_tensor has shape {shape}; give one clip (L,) or (1, L), or a batch (n, L)"
            )
        if math.prod(shape) == 0:
            raise ValueError(f"snd_tensor is empty (shape {shape}); a clip needs samples")
        arguments.check_record(
            2 * clips * length + 44 * clips,
            "snd_tensor",
            f"{clips} clip(s) of {length:,} 16-bit samples",
            "log a shorter clip, fewer clips or a lower sample rate",
        )
        if not state.writes_files:
            return
        pending = backend.to_host(array)

        def build() -> summary_pb2.Summary:
            samples = np.asarray(pending.result()).reshape(clips, length)
            return audio_summary(tags, samples, rate)

        state.enqueue("audio", tag, step, wall, build, nbytes=clips * length * 8)
