"""The seed's argument forms: what ``flow.summary`` code passes where gpu_summary takes plain
Python values.

OneFlow jobs received every argument as a list of NumPy arrays (``ScalarJob([value], [step],
[tag])``): tags as int8 arrays of the tag's bytes (``np.frombuffer(b"loss", np.int8)``; the
seed's ``np.fromstring`` is gone from NumPy 2), steps as one-element int64 arrays, values as
arrays. Each helper here accepts those and the plain forms, and names the argument when it
refuses one.
"""

from __future__ import annotations

import numpy as np

from gpu_summary._backend import backend_for
from gpu_summary._core import arguments


def unwrap(value: object) -> object:
    """The one item of a one-element list or tuple (the seed's ``[array]``), else ``value``."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return value[0]
    return value


def array_bytes(array: np.ndarray, expected: str, fix: str = "") -> bytes:
    """The bytes an int8/uint8 array holds (the seed passes text and serialized messages so);
    TypeError ``"<expected>, got <dtype><fix>"`` for another dtype."""
    if array.dtype not in (np.int8, np.uint8):
        raise TypeError(f"{expected}, got {array.dtype}{fix}")
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8).tobytes()


def seed_tag(tag: object, default: str | None = None, argument: str = "tag") -> str:
    """A tag given as str, bytes or an int8/uint8 array of UTF-8 bytes (NUL padding at the end
    dropped); ``default`` when None, or ValueError when there is no default."""
    tag = unwrap(tag)
    if tag is None:
        if default is None:
            raise ValueError(
                f"{argument} is required: a str or an int8 array of its UTF-8 bytes, e.g. "
                f"np.frombuffer(b'loss', dtype=np.int8)"
            )
        return default
    if isinstance(tag, np.ndarray):
        tag = array_bytes(
            tag, f"{argument} as an array must be int8 or uint8 bytes of UTF-8 text",
            "; build it with np.frombuffer(b'loss', dtype=np.int8)",
        )  # fmt: skip
    if isinstance(tag, bytes):
        try:
            tag = tag.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{argument} bytes are not UTF-8 text: {exc}") from None
    return arguments.check_tag(tag, argument)


def seed_step(step: object, default: int | None = 0) -> int | None:
    """A step given as an int or a one-element integer array, possibly in a one-element list
    (the seed's form); ``default`` when None."""
    step = unwrap(step)
    if step is None:
        return default
    if isinstance(step, np.ndarray) and step.size != 1:
        raise ValueError(f"step must hold one integer, got an array of shape {step.shape}")
    return arguments.check_step(step)


def host(value: object, argument: str) -> np.ndarray:
    """``value`` on the host. A device tensor is copied back here: a sync of the device with
    the caller (the seed's API is synchronous)."""
    backend, array = backend_for(value, argument)
    nbytes = int(array.size) * array.dtype.itemsize
    arguments.check_record(nbytes, argument, f"{array.size:,} values in the seed's projector "
                           "file (one protobuf message)", "log fewer points")  # fmt: skip
    return backend.to_host(array).result()
