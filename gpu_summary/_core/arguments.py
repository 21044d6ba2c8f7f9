"""Argument checks shared by the writer's methods: clear errors before any work is queued."""

from __future__ import annotations

import math
import numbers

import numpy as np

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def check_unicode(text: str, argument: str) -> str:
    """Return ``text`` if UTF-8 can encode it: no lone surrogates (which ``os.fsdecode`` leaves
    for file-name bytes that are not UTF-8), so that nothing fails later on the writer thread."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            near = text[max(exc.start - 12, 0) : exc.start + 12]
            raise ValueError(
                f"{argument} holds a lone surrogate at index {exc.start} (near {near!r}), which "
                "UTF-8 cannot encode; clean it first, e.g. "
                "text.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')"
            ) from None
    return text


def check_tag(tag: object, argument: str = "tag") -> str:
    """Return ``tag`` if it is a non-empty str that UTF-8 can encode."""
    if not isinstance(tag, str):
        raise TypeError(f"{argument} must be a str, got {type(tag).__name__}: {tag!r}")
    if not tag:
        raise ValueError(f"{argument} must not be empty; give the series a name such as 'loss'")
    return check_unicode(tag, argument)


def check_step(step: object) -> int:
    """Return ``step`` as an int that fits int64 (Python or NumPy integer, or a one-element
    integer array)."""
    if isinstance(step, np.ndarray) and step.size == 1 and step.dtype.kind in "iu":
        step = step.reshape(()).item()
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step must be an int, got {type(step).__name__}: {step!r}")
    value = int(step)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"step must fit in int64 (|step| < 2**63), got {value}")
    return value


def check_walltime(walltime: object) -> float:
    """Return ``walltime`` (seconds since the epoch) as a finite float."""
    if isinstance(walltime, bool) or not isinstance(walltime, numbers.Real):
        raise TypeError(
            f"walltime must be a number of seconds since the epoch, got {type(walltime).__name__}"
        )
    value = float(walltime)
    if not math.isfinite(value):
        raise ValueError(f"walltime must be finite, got {value}")
    return value


def check_positive_int(value: object, argument: str, fix: str) -> int:
    """Return ``value`` if it is an int > 0 (bool rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argument} must be a positive int, got {type(value).__name__}: {value!r}")
    if value <= 0:
        raise ValueError(f"{argument} must be > 0, got {value}; {fix}")
    return int(value)


def check_count(value: object, argument: str, most: int) -> int:
    """Return ``value`` if it is an int in [0, most] (bool rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argument} must be an int, got {type(value).__name__}: {value!r}")
    if not 0 <= value <= most:
        raise ValueError(f"{argument} must be between 0 and {most}, got {value}")
    return int(value)
