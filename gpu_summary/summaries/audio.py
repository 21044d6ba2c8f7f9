"""Audio: 16-bit PCM WAV clips as ``Summary.Audio`` values.

TensorBoard's Audio dashboard converts these to its ``audio`` plugin's tensors when it loads a
run; ``EventAccumulator.Audio`` and tbparse read them as they are. The sample rate is the
value's ``sample_rate`` and the WAV header's.
"""

from __future__ import annotations

import io
import wave

import numpy as np

from gpu_summary.proto import summary_pb2

CONTENT_TYPE = "audio/wav"


def pcm16(clip: np.ndarray) -> np.ndarray:
    """One clip as little-endian int16 samples: int16 as it is (PCM already); other values as
    amplitudes in [-1, 1]: clipped, NaN as 0, scaled by 32767 and truncated toward zero (as
    torch's writer converts them), in float64 for float64 clips and float32 for the rest."""
    if clip.dtype == np.int16:
        return clip.astype("<i2", copy=False)
    work = np.float64 if clip.dtype == np.float64 else np.float32
    x = np.nan_to_num(clip.astype(work, copy=False), nan=0.0)
    x = np.clip(x, -1, 1) * work(32767)
    return x.astype("<i2")


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A mono 16-bit WAV file of int16 ``samples``."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def audio_summary(tags: list[str], clips: np.ndarray, sample_rate: int) -> summary_pb2.Summary:
    """A Summary of one WAV clip per tag, from an (n, length) float array."""
    summary = summary_pb2.Summary()
    for tag, clip in zip(tags, clips, strict=True):
        value = summary.value.add(tag=tag)
        value.audio.sample_rate = sample_rate
        value.audio.num_channels = 1
        value.audio.length_frames = clip.shape[0]
        value.audio.encoded_audio_string = wav_bytes(pcm16(clip), sample_rate)
        value.audio.content_type = CONTENT_TYPE
    return summary
