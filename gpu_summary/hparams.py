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
            if not math.isfinite(arguments.to_float(bound)):
                raise ValueError(f"{kind} bounds must be finite float64 numbers, got {bound!r:.40}")
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
        if types == {FLOAT64} and not all(math.isfinite(arguments.to_float(v)) for v in items):
            raise ValueError(f"ValueSet numbers must be finite float64 numbers, got {items!r:.200}")
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
            raise HParamTypeError(
                f"hparam {self.name!r} must be a str, bool or number, got {value!r} "
                f"({type(value).__name__}); pass str(value) to show it as text"
            )
        if _is_real(value) and not math.isfinite(arguments.to_float(value)):
            raise ValueError(
                f"hparam {self.name!r} = {value!r:.40}: values must be finite float64 numbers"
            )
        if isinstance(value, str):
            arguments.check_unicode(value, f"hparam {self.name!r}")


class HParamTypeError(TypeError, ValueError):
    """An hparam value of a type the dashboard cannot show (a list, a dict): a ``TypeError``,
    as every wrong type here, and a ``ValueError``, as torch's writer raises for it, so code
    written for either catches it. (tensorboardX logs such a value as its text.)"""


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
            raise TypeError(f"metric {self.name!r} takes {kind}, got {value!r:.40}")
        return arguments.to_float(value)  # an int beyond float64: ±inf, as a scalar logs it


@dataclasses.dataclass
class Session:
    """A validated ``add_hparams`` call: hyperparameters with their values, metrics with
    theirs (None when only declared)."""

    hparams: list[tuple[HParam, str | bool | float | int]]
    metrics: list[tuple[Metric, float | None]]

    def values(self) -> dict[str, str | bool | float | int]:
        return {hparam.name: value for hparam, value in self.hparams}


def _item(value: object, what: str) -> object:
    """A one-element array or tensor (NumPy, torch, CuPy) as the Python value it holds; other
    values as they are."""
    if isinstance(value, (str, bytes, bool, int, float, np.generic)) or value is None:
        return value
    if hasattr(value, "item") and hasattr(value, "shape"):
        count = math.prod(value.shape)
        if count != 1:
            raise ValueError(
                f"{what} must be a single value, got an array of shape {tuple(value.shape)}"
            )
        return value.item()
    return value


def torch_session(
    hparam_dict: object, metric_dict: object, hparam_domain_discrete: object = None
) -> Session:
    """:func:`session` of ``add_hparams``' arguments as torch's ``SummaryWriter.add_hparams``
    takes them.

    Under a plain str key, a None value is skipped, a one-element tensor gives its value, and
    a bool is stored as torch stores it, the number 1.0 or 0.0 (key it ``HParam(name)`` to keep
    a bool); ``hparam_domain_discrete[key]``, a list of values of the value's type, becomes
    the key's ``ValueSet`` domain. ``HParam`` and ``Metric`` keys are taken as they are.

    Raises:
        TypeError: not dicts; a domain for a key that is not in ``hparam_dict`` or not a list
            of values of its type; as :func:`session`. ValueError: as :func:`session`.
    """
    if not isinstance(hparam_dict, dict):
        raise TypeError(f"hparam_dict must be a dict, got {type(hparam_dict).__name__}")
    if metric_dict is not None and not isinstance(metric_dict, dict):
        raise TypeError(f"metric_dict must be a dict, got {type(metric_dict).__name__}")
    domains = {} if hparam_domain_discrete is None else hparam_domain_discrete
    if not isinstance(domains, dict):
        raise TypeError(
            "hparam_domain_discrete must be a dict {name: [values]}, got "
            f"{type(domains).__name__}"
        )
    hparams: list[tuple] = []
    for key, value in hparam_dict.items():
        if not isinstance(key, str):
            hparams.append((key, value))
            continue
        value = _item(value, f"hparam {key!r}")
        if value is None:
            continue  # torch skips it
        choices = domains.get(key)
        if choices is not None:
            if not isinstance(choices, list) or not all(
                _value_type(_plain(c)) == _value_type(_plain(value)) for c in choices
            ):
                raise TypeError(
                    f"hparam_domain_discrete[{key!r}] must be a list of values of the type of "
                    f"hparam_dict[{key!r}] ({type(value).__name__}), got {choices!r}"
                )
        if isinstance(value, (bool, np.bool_)):  # torch's isinstance(v, (int, float)) holds
            value = float(value)
            choices = None if choices is None else [float(c) for c in choices]
        hparams.append((HParam(key, None if choices is None else ValueSet(choices)), value))
    unknown = [key for key in domains if key not in hparam_dict or hparam_dict[key] is None]
    if unknown:
        raise TypeError(
            f"hparam_domain_discrete names {unknown!r}, which hparam_dict gives no value; "
            "a domain is for a hyperparameter logged in the same call"
        )
    metrics = [(key, _item(value, f"metric {key!r}")) for key, value in (metric_dict or {}).items()]
    return _session(hparams, metrics, True)


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
    return _session(list(hparams.items()), list((metrics or {}).items()), domains)


def _session(hparams: list[tuple], metrics: list[tuple], domains: bool) -> Session:
    """:func:`session` of (key, value) pairs."""
    found_hparams: list[tuple[HParam, object]] = []
    found_metrics: list[tuple[Metric, float | None]] = []
    names: set[str] = set()

    def claim(name: str) -> None:
        if name in names:
            raise ValueError(
                f"{name!r} is named twice in the hparams and metrics; names must be unique"
            )
        names.add(name)

    for key, value in hparams:
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
    for key, value in metrics:
        if isinstance(key, str):
            key = Metric(key)
        elif not isinstance(key, Metric):
            raise TypeError(f"metrics keys must be str or Metric, got {key!r}")
        claim(key.name)
        found_metrics.append((key, None if value is None else key.check(value)))
    if not found_hparams:
        raise ValueError("hparams names no hyperparameter; give at least one")
    return Session(found_hparams, found_metrics)
