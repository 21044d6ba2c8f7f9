"""Hyperparameters with domains, and metrics, for TensorBoard's HParams dashboard.

``HParam(name, domain)`` with a ``RealRange``, ``IntegerRange`` or ``ValueSet`` domain (or
none), and ``Metric(name, dtype)``, as in the seed's ``flow.summary`` API and TensorBoard's own
``hparams.api``. They are plain, hashable values used as the keys of the dict given to
:meth:`gpu_summary.SummaryWriter.add_hparams`; :func:`session` validates such a dict and sorts
it into hyperparameter values and metric values.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings

import numpy as np

from gpu_summary._core import arguments

# The value types TensorBoard's dashboard knows (hparams DataType).
STRING, BOOL, FLOAT64 = "string", "bool", "float64"


def _is_real(value: object) -> bool:
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def _is_integer(value: object) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def _value_type(value: object) -> str | None:
    if isinstance(value, (bool, np.bool_)):
        return BOOL
    if isinstance(value, str):
        return STRING
    if _is_real(value):
        return FLOAT64
    return None


def _plain(value: object) -> str | bool | float | int:
    """A NumPy scalar as the Python value it holds."""
    return value.item() if isinstance(value, np.generic) else value


@dataclasses.dataclass(frozen=True)
class _Interval:
    """Values in ``[min_value, max_value]`` that pass the subclass's ``_fits``."""

    min_value: float
    max_value: float

    data_type = FLOAT64
    _bounds = _takes = ""  # the subclass's words for its values

    @staticmethod
    def _fits(value: object) -> bool:
        raise NotImplementedError

    def __post_init__(self) -> None:
        kind = type(self).__name__
        for bound in (self.min_value, self.max_value):
            if not self._fits(bound):
                raise TypeError(f"{kind} bounds must be {self._bounds}, got {bound!r}")
            if not math.isfinite(bound):
                raise ValueError(f"{kind} bounds must be finite, got {bound!r}")
        if self.min_value > self.max_value:
            raise ValueError(
                f"{kind}({self.min_value!r}, {self.max_value!r}): min_value must not exceed "
                "max_value"
            )

    def check(self, name: str, value: object) -> None:
        if not self._fits(value):
            raise TypeError(f"hparam {name!r} takes {self._takes}, got {value!r}")
        if not self.min_value <= value <= self.max_value:
            raise ValueError(
                f"hparam {name!r} = {value!r} is outside its domain "
                f"{type(self).__name__}({self.min_value!r}, {self.max_value!r})"
            )


class RealRange(_Interval):
    """Real values in ``[min_value, max_value]``."""

    _bounds, _takes = "real numbers", "a real number"
    _fits = staticmethod(_is_real)


class IntegerRange(_Interval):
    """Integers in ``[min_value, max_value]``."""

    _bounds, _takes = "integers", "an integer"
    _fits = staticmethod(_is_integer)


@dataclasses.dataclass(frozen=True, init=False)
class ValueSet:
    """One of a finite set of values, all str, all bool, or all numbers."""

    values: tuple

    def __init__(self, values: object) -> None:
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"ValueSet takes a list of values, got {values!r}")
        items = [_plain(value) for value in values]
        if not items:
            raise ValueError("ValueSet needs at least one value")
        types = {_value_type(v) for v in items}
        if None in types:
            bad = next(v for v in items if _value_type(v) is None)
            raise TypeError(f"ValueSet values must be str, bool or numbers, got {bad!r}")
        if len(types) > 1:  # checked before deduplicating: True == 1 in Python
            raise TypeError(
                f"ValueSet values must all be of one kind (str, bool or numbers), got {items!r}"
            )
        if types == {FLOAT64} and not all(math.isfinite(v) for v in items):
            raise ValueError(f"ValueSet numbers must be finite, got {items!r}")
        items = list(dict.fromkeys(items))  # duplicates dropped, order kept
        object.__setattr__(self, "values", tuple(items))

    @property
    def data_type(self) -> str:
        return _value_type(self.values[0])

    def check(self, name: str, value: object) -> None:
        if _value_type(value) != self.data_type:
            raise TypeError(
                f"hparam {name!r} takes a {self.data_type} from {list(self.values)!r}, "
                f"got {value!r}"
            )
        if _plain(value) not in self.values:
            raise ValueError(
                f"hparam {name!r} = {value!r} is outside its domain ValueSet({list(self.values)!r})"
            )


Domain = RealRange | IntegerRange | ValueSet


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} names must be str, got {name!r} ({type(name).__name__})")
    if not name:
        raise ValueError(f"{what} names must not be empty")
    return arguments.check_unicode(name, f"{what} name")


@dataclasses.dataclass(frozen=True)
class HParam:
    """A hyperparameter: its name and, optionally, the domain its values come from."""

    name: str
    domain: Domain | None = None
    display_name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name, "HParam")
        if self.domain is not None and not isinstance(
            self.domain, (RealRange, IntegerRange, ValueSet)
        ):
            raise TypeError(
                f"HParam {self.name!r}: domain must be RealRange, IntegerRange, ValueSet or "
                f"None, got {type(self.domain).__name__}"
            )

    def check(self, value: object, domains: bool = True) -> None:
        """Raise TypeError/ValueError, naming this hparam, unless ``value`` fits it; with
        ``domains=False`` a value of the right type outside the domain only warns."""
        if self.domain is not None:
            try:
                self.domain.check(self.name, value)
            except ValueError as exc:
                if domains:
                    raise
                warnings.warn(f"{exc}; logged as given", UserWarning, stacklevel=4)
        elif _value_type(value) is None:
            raise TypeError(
                f"hparam {self.name!r} must be a str, bool or number, got {value!r} "
                f"({type(value).__name__})"
            )
        if _is_real(value) and not math.isfinite(value):
            raise ValueError(f"hparam {self.name!r} = {value!r}: values must be finite")
        if isinstance(value, str):
            arguments.check_unicode(value, f"hparam {self.name!r}")


@dataclasses.dataclass(frozen=True)
class Metric:
    """A metric: the tag of a scalar series the dashboard shows beside the hyperparameters.

    ``dtype`` (``float`` or ``int``) is the kind of value it takes.
    """

    name: str
    dtype: type = float
    display_name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name, "Metric")
        if self.dtype not in (float, int):
            raise TypeError(f"Metric {self.name!r}: dtype must be float or int, got {self.dtype!r}")

    def check(self, value: object) -> float:
        """The value as a float; TypeError naming this metric unless it is a number of its
        dtype (NaN and ±Inf are values a metric may take)."""
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.reshape(()).item()
        ok = _is_integer(value) if self.dtype is int else _is_real(value)
        if not ok:
            kind = "an integer" if self.dtype is int else "a real number"
            raise TypeError(f"metric {self.name!r} takes {kind}, got {value!r}")
        return float(value)


@dataclasses.dataclass
class Session:
    """A validated ``add_hparams`` call: hyperparameters with their values, metrics with
    theirs (None when only declared)."""

    hparams: list[tuple[HParam, str | bool | float | int]]
    metrics: list[tuple[Metric, float | None]]

    def values(self) -> dict[str, str | bool | float | int]:
        return {hparam.name: value for hparam, value in self.hparams}


def session(hparams: object, metrics: object = None, domains: bool = True) -> Session:
    """Validate ``add_hparams``' arguments (see there); raise before anything is written.
    ``domains=False`` (the seed's ``hparams()``, which never checked them) lets values outside
    their domain through with a warning.

    Raises:
        TypeError: a key that is not str/HParam/Metric, a value of the wrong type.
        ValueError: a value outside its domain, a duplicate name.
    """
    if not isinstance(hparams, dict):
        raise TypeError(f"hparams must be a dict, got {type(hparams).__name__}")
    if metrics is not None and not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict or None, got {type(metrics).__name__}")
    found_hparams: list[tuple[HParam, object]] = []
    found_metrics: list[tuple[Metric, float | None]] = []
    names: set[str] = set()

    def claim(name: str) -> None:
        if name in names:
            raise ValueError(
                f"{name!r} is named twice in the hparams and metrics; names must be unique"
            )
        names.add(name)

    for key, value in hparams.items():
        if isinstance(key, Metric):  # the seed puts metrics among the hparams
            claim(key.name)
            found_metrics.append((key, key.check(value)))
            continue
        if isinstance(key, str):
            key = HParam(key)
        elif not isinstance(key, HParam):
            raise TypeError(
                f"hparams keys must be str, HParam or Metric, got {key!r} ({type(key).__name__})"
            )
        claim(key.name)
        key.check(value, domains)
        found_hparams.append((key, _plain(value)))
    for key, value in (metrics or {}).items():
        if isinstance(key, str):
            key = Metric(key)
        elif not isinstance(key, Metric):
            raise TypeError(f"metrics keys must be str or Metric, got {key!r}")
        claim(key.name)
        found_metrics.append((key, None if value is None else key.check(value)))
    if not found_hparams:
        raise ValueError("hparams names no hyperparameter; give at least one")
    return Session(found_hparams, found_metrics)
