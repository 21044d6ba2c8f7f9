"""The low-precision formats ``formats=`` counts overflow and underflow for, their exact
rounding thresholds, and the check of the argument.

The thresholds are defined here once: the NumPy specification, the compiled host kernels and
the CUDA kernel (``kernels/gs_formats.cu``, given them as launch arguments) all take them from
this module.

Definitions, for a finite value x cast to a format by rounding to nearest, ties to even:

* **overflow**: the rounded magnitude is beyond the format's largest finite value. float16,
  bfloat16 and float8_e5m2 give ±Inf; float8_e4m3fn has no Inf: the OCP's non-saturating
  conversion gives NaN, torch's (c10's ``fp8e4m3fn_from_fp32_value``) saturates to ±448.
  Either way the value is lost, and counted.
* **underflow**: x is not zero and rounds to (signed) zero.

NaN and ±Inf are never counted. Both counts compare the bit pattern of |x| as an unsigned
integer (float32 bits as uint32, float64 bits as uint64; float16 and bfloat16 widened exactly
to float32 first) with the bit pattern of the threshold, so no float comparison is involved
and flush-to-zero (CUDA's ``-ftz=true``) cannot change a count. Integers are compared by their
float64 value: exact for them, because every threshold lies below 2**53 (where int64 and
uint64 convert to float64 exactly) or above 2**64.

torch's ``x.to(fmt)`` rounds a float64 tensor to float32 first: within half a float32 ulp of
a threshold that double rounding may differ from the single rounding counted here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# The names ``formats=`` accepts, in this order wherever all are listed.
FORMATS = ("float8_e4m3fn", "float8_e5m2", "float16", "bfloat16")

# The counts of each format, in the order of a result row and of a kernel's output.
OVERFLOW, UNDERFLOW = 0, 1
COUNTS = ("overflow", "underflow")


@dataclasses.dataclass(frozen=True)
class LowPrecisionFormat:
    """One format's thresholds (exact binary fractions, each a float32 and a float64).

    Attributes:
        name: the torch dtype's name.
        exponent_bits, mantissa_bits, bias: the encoding.
        largest: the largest finite magnitude.
        midpoint: halfway between ``largest`` and the next step up (one ulp above it, were the
            exponent range unbounded): values above it round beyond ``largest``.
        tie_overflows: whether the midpoint itself overflows: ties go to the even neighbour,
            and ``largest`` is odd (its last mantissa bit is 1) unless the format reserves
            its top pattern for NaN (float8_e4m3fn: ``largest`` ends in 0, a tie rounds down).
        smallest: the smallest subnormal magnitude; values up to half of it round to zero
            (the tie at exactly half goes to zero, the even neighbour).
    """

    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    largest: float
    midpoint: float
    tie_overflows: bool
    smallest: float

    @property
    def underflow_limit(self) -> float:
        """The largest magnitude that rounds to zero: half the smallest subnormal."""
        return self.smallest / 2


# How each constant follows from the format (e exponent and m mantissa bits; the top exponent
# emax = 2**e - 2 - bias for the formats with Inf, whose all-ones exponent is Inf and NaN):
#   largest  = (2 - 2**-m) * 2**emax          the all-ones mantissa at the top exponent
#   midpoint = (2 - 2**-(m + 1)) * 2**emax    halfway to 2**(emax + 1), the next step up
#   smallest = 2**(1 - bias - m)              the subnormal with only its last bit set
# float8_e4m3fn has no Inf: its top exponent is 2**4 - 1 - 7 = 8 and only the all-ones
# mantissa there is NaN, so largest = 1.75 * 2**8 = 448 (mantissa 110, even), the next step
# 1.875 * 2**8 = 480 and the midpoint 464, which rounds down to 448. The others' largest
# mantissa is all ones (odd): their midpoint rounds up, to Inf.
#   float8_e4m3fn  448 = 0x1.cp+8            464 = 0x1.dp+8         2**-9
#   float8_e5m2    57344 = 0x1.cp+15         61440 = 0x1.ep+15      2**-16   (emax 15)
#   float16        65504 = 0x1.ffcp+15       65520 = 0x1.ffep+15    2**-24   (emax 15)
#   bfloat16       0x1.fep+127 (3.39e38)     0x1.ffp+127 (3.40e38)  2**-133  (emax 127)
_BFLOAT16_LARGEST, _BFLOAT16_MIDPOINT = float.fromhex("0x1.fep+127"), float.fromhex("0x1.ffp+127")
_TABLE = (
    # name, exponent bits, mantissa bits, bias, largest, midpoint, tie overflows, smallest
    LowPrecisionFormat("float8_e4m3fn", 4, 3, 7, 448.0, 464.0, False, 2.0**-9),
    LowPrecisionFormat("float8_e5m2", 5, 2, 15, 57344.0, 61440.0, True, 2.0**-16),
    LowPrecisionFormat("float16", 5, 10, 15, 65504.0, 65520.0, True, 2.0**-24),
    LowPrecisionFormat(
        "bfloat16", 8, 7, 127, _BFLOAT16_LARGEST, _BFLOAT16_MIDPOINT, True, 2.0**-133
    ),
)
BY_NAME = {f.name: f for f in _TABLE}

# Bit patterns of a magnitude, by the width of the integers compared.
INFINITY_BITS = {32: 0x7F800000, 64: 0x7FF0000000000000}
MAGNITUDE_MASK = {32: 0x7FFFFFFF, 64: 0x7FFFFFFFFFFFFFFF}
_FLOAT_OF_WIDTH = {32: np.float32, 64: np.float64}
_UINT_OF_WIDTH = {32: np.uint32, 64: np.uint64}


def _bits(value: float, width: int) -> int:
    exact = _FLOAT_OF_WIDTH[width](value)
    if float(exact) != value:  # every threshold is a float32: a slip in the table shows here
        raise AssertionError(f"{value!r} is not exact in float{width}")
    return int(exact.view(_UINT_OF_WIDTH[width]))


def overflow_bits(name: str, width: int) -> int:
    """The bit pattern of the smallest magnitude that overflows ``name``, as a float of
    ``width`` (32 or 64) bits: the midpoint's, or the next pattern up where a tie rounds down
    to the largest finite value. Overflow is ``overflow_bits <= bits(|x|) < INFINITY_BITS``."""
    fmt = BY_NAME[name]
    return _bits(fmt.midpoint, width) + (0 if fmt.tie_overflows else 1)


def underflow_bits(name: str, width: int) -> int:
    """The bit pattern of the largest magnitude that underflows ``name`` (half its smallest
    subnormal), as a float of ``width`` bits. Underflow is ``0 < bits(|x|) <= underflow_bits``."""
    return _bits(BY_NAME[name].underflow_limit, width)


def thresholds(formats: tuple[str, ...], width: int) -> np.ndarray:
    """uint64 array of shape (len(formats), 2): each format's overflow and underflow bits
    (:func:`overflow_bits`, :func:`underflow_bits`) for floats of ``width`` bits."""
    table = np.zeros((len(formats), 2), np.uint64)
    for k, name in enumerate(formats):
        table[k] = overflow_bits(name, width), underflow_bits(name, width)
    return table


def count_tags(tag: str, formats: tuple[str, ...]) -> list[str]:
    """The scalar tags of a tensor's counts, in result order: ``<tag>/lowp/<format>/overflow``
    then ``.../underflow`` for each format."""
    return [f"{tag}/lowp/{name}/{count}" for name in formats for count in COUNTS]


def check_formats(formats: object, name: str = "formats") -> tuple[str, ...]:
    """``formats`` as a tuple of format names in the caller's order: a str (one format) or a
    sequence of str; () (or an empty list) switches the counts off.

    Raises:
        TypeError: not a str or a sequence of str.
        ValueError: an unknown name, or one named twice.
    """
    names = (formats,) if isinstance(formats, str) else formats
    if not isinstance(names, (tuple, list)):
        raise TypeError(
            f"{name} must be a format name or a tuple of them (from {list(FORMATS)}), got "
            f"{type(formats).__name__}: {formats!r}"
        )
    for entry in names:
        if not isinstance(entry, str):
            raise TypeError(
                f"{name} must hold format names (str) from {list(FORMATS)}, got "
                f"{type(entry).__name__}: {entry!r}"
            )
        if entry not in BY_NAME:
            raise ValueError(
                f"{name} holds {entry!r}, which is not a format counted here; use names from "
                f"{list(FORMATS)}"
            )
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(
            f"{name} names {twice} more than once; name each of {list(FORMATS)} at most once"
        )
    return tuple(names)
