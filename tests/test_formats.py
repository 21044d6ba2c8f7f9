"""formats=: low-precision overflow and underflow counts (gpu_summary/_core/formats.py).

The oracles are torch's own casts (``x.to(fmt)``) for float32, float16 and bfloat16 inputs,
and an exact rounding in rational arithmetic, written here from each format's encoding, for
float64 and integer inputs (torch rounds those through float32 first). The NumPy backend's
specification, its compiled twin, the device backend (emulated kernels; a GPU when present)
and the writer's scalars, read back by TensorBoard, must all give the same counts.
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import gpu_summary as gs
from conftest import _cuda_available, legacy_reader, near_thresholds, sample_values
from gpu_summary._backend import backend_for
from gpu_summary._backend import numpy as nb
from gpu_summary._backend.numpy import compiled_formats, compiled_runtime
from gpu_summary._backend.numpy import formats as spec
from gpu_summary._core import formats as _formats

ROOT = Path(__file__).resolve().parent.parent
HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
ALL = _formats.FORMATS

# Each format's encoding, as its specification states it: (exponent bits, mantissa bits,
# bias, whether the all-ones exponent is Inf/NaN — float8_e4m3fn keeps it for numbers, all but
# the all-ones mantissa).
ENCODINGS = {
    "float8_e4m3fn": (4, 3, 7, False),
    "float8_e5m2": (5, 2, 15, True),
    "float16": (5, 10, 15, True),
    "bfloat16": (8, 7, 127, True),
}


def _largest(name: str) -> Fraction:
    e, m, bias, ieee = ENCODINGS[name]
    top = 2**e - (2 if ieee else 1) - bias
    mantissa = 2**m - (1 if ieee else 2)  # e4m3fn: 110 (111 is NaN)
    return (1 + Fraction(mantissa, 2**m)) * Fraction(2) ** top


def exact_rounding(x: int | float, name: str) -> tuple[bool, bool]:
    """(overflows, underflows) of one finite value rounded to ``name`` to nearest, ties to
    even, in exact rational arithmetic."""
    _, m, bias, _ = ENCODINGS[name]
    magnitude = abs(Fraction(x))
    if magnitude == 0:
        return False, False
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exponent > magnitude:
        exponent -= 1
    quantum = Fraction(2) ** (max(exponent, 1 - bias) - m)
    rounded = round(magnitude / quantum) * quantum  # round(Fraction): half to even
    return rounded > _largest(name), rounded == 0


def exact_counts(values: np.ndarray, formats: tuple[str, ...]) -> np.ndarray:
    counts = np.zeros((len(formats), 2), np.int64)
    for value in values.ravel().tolist():
        if isinstance(value, float) and not np.isfinite(value):
            continue
        for k, name in enumerate(formats):
            counts[k] += exact_rounding(value, name)
    return counts


def torch_counts(tensor: object, formats: tuple[str, ...]) -> np.ndarray:
    """Counts from torch's casts: a finite value that becomes ±Inf or NaN overflowed; torch
    saturates float8_e4m3fn (to ±448), so there a value more than half an ulp (16) from the
    ±448 it became overflowed; a non-zero value that becomes zero underflowed."""
    import torch

    x = tensor.double()
    finite = torch.isfinite(x)
    counts = np.zeros((len(formats), 2), np.int64)
    for k, name in enumerate(formats):
        y = tensor.to(getattr(torch, name)).double()
        lost = torch.isinf(y) | torch.isnan(y)
        if name == "float8_e4m3fn":
            lost |= (y.abs() == 448) & ((x - y).abs() > 16)
        counts[k] = int((lost & finite).sum()), int(((x != 0) & (y == 0) & finite).sum())
    return counts


def host_counts(values: np.ndarray, formats: tuple[str, ...] = ALL) -> np.ndarray:
    """The specification's counts, after checking the compiled twin gives the same."""
    want = spec.format_counts(values, formats).result()
    compiled_runtime.prepare((values.dtype,))
    np.testing.assert_array_equal(compiled_formats.format_counts(values, formats).result(), want)
    np.testing.assert_array_equal(nb.format_counts(values, formats).result(), want)
    return want


# -- the thresholds ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_the_thresholds_follow_from_each_formats_encoding(name):
    fmt = _formats.BY_NAME[name]
    e, m, bias, ieee = ENCODINGS[name]
    largest = _largest(name)
    step = Fraction(2) ** (2**e - (2 if ieee else 1) - bias - m)  # an ulp at the top
    assert Fraction(fmt.largest) == largest
    assert Fraction(fmt.midpoint) == largest + step / 2
    assert fmt.smallest == 2.0 ** (1 - bias - m)
    assert fmt.tie_overflows == exact_rounding(fmt.midpoint, name)[0]
    assert not exact_rounding(fmt.largest, name)[0]
    assert exact_rounding(fmt.underflow_limit, name)[1]  # the tie at half goes to zero
    assert not exact_rounding(fmt.smallest * 0.75, name)[1]
    for width, floats in ((32, np.float32), (64, np.float64)):
        over = np.array(_formats.overflow_bits(name, width), f"u{width // 8}").view(floats)
        below = np.nextafter(over, floats(0))
        assert exact_rounding(float(over), name)[0] and not exact_rounding(float(below), name)[0]
        under = np.array(_formats.underflow_bits(name, width), f"u{width // 8}").view(floats)
        assert float(under) == fmt.underflow_limit
    # Integers are compared by their float64 value: exact where every threshold lies below
    # 2**53 or above 2**64.
    assert fmt.midpoint < 2**53 or fmt.midpoint > 2**64


def test_check_formats_takes_a_name_or_a_sequence_in_the_callers_order():
    assert _formats.check_formats("float16") == ("float16",)
    assert _formats.check_formats(["bfloat16", "float8_e4m3fn"]) == ("bfloat16", "float8_e4m3fn")
    assert _formats.check_formats(()) == () == _formats.check_formats([])
    with pytest.raises(ValueError, match=r"formats holds 'float9'.*'float8_e4m3fn'"):
        _formats.check_formats(("float16", "float9"))
    with pytest.raises(ValueError, match=r"formats names \['float16'\] more than once"):
        _formats.check_formats(("float16", "float16"))
    with pytest.raises(TypeError, match="formats must hold format names"):
        _formats.check_formats(("float16", 16))
    with pytest.raises(TypeError, match="probe_formats must be a format name or a tuple"):
        _formats.check_formats({"float16"}, "probe_formats")
    assert _formats.count_tags("w", ("float16",)) == ["w/lowp/float16/overflow",
                                                     "w/lowp/float16/underflow"]  # fmt: skip


# -- the host backend against torch's casts and the exact rounding ----------------------------


@needs_torch
def test_float32_around_every_threshold_equals_torchs_casts():
    import torch

    rng = np.random.default_rng(1)
    random_bits = rng.integers(0, 2**32, 300_000, dtype=np.uint64).astype(np.uint32)
    values = np.concatenate([
        near_thresholds(np.float32, ulps=4), random_bits.view(np.float32),
        sample_values(np.float32, 50_000), np.ldexp(sample_values(np.float32, 20_000), -110),
    ])  # fmt: skip
    want = torch_counts(torch.from_numpy(values), ALL)
    assert (want > 0).all()  # every count is exercised
    np.testing.assert_array_equal(host_counts(values), want)
    small = near_thresholds(np.float32)  # below the compiled path's size: the specification
    np.testing.assert_array_equal(host_counts(small), torch_counts(torch.from_numpy(small), ALL))


@needs_torch
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_every_16_bit_pattern_equals_torchs_casts(dtype):
    import torch

    tensor = torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(getattr(torch, dtype))
    backend, array = backend_for(tensor, "values")  # bfloat16 widened to float32, exactly
    assert backend is nb
    np.testing.assert_array_equal(host_counts(array), torch_counts(tensor, ALL))


def test_float64_counts_equal_the_exact_rounding():
    values = np.concatenate([
        near_thresholds(np.float64, ulps=3),
        np.ldexp(1.0, np.arange(-140, 130, dtype=np.int32)) * 1.4999,
        sample_values(np.float64, 3_000, seed=7) * 1e-30, sample_values(np.float64, 3_000, seed=8),
    ])  # fmt: skip
    np.testing.assert_array_equal(host_counts(values), exact_counts(values, ALL))


@needs_torch
def test_torch_rounds_float64_through_float32_and_the_counts_do_not():
    import torch

    just_below = np.array([np.nextafter(65520.0, 0.0)])  # rounds to 65504 in one step
    assert torch.from_numpy(just_below).to(torch.float16).isinf().all()  # 65520 in float32 first
    assert host_counts(just_below, ("float16",)).tolist() == [[0, 0]]


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="long double is float64 here")
def test_long_double_counted_by_its_own_value_not_rounded_to_float64():
    step = np.longdouble(2) ** -np.finfo(np.longdouble).nmant  # below a float64 ulp
    points = [np.longdouble(v) * (1 + d * step) for f in _formats.BY_NAME.values()
              for v in (f.midpoint, f.underflow_limit) for d in (-2, -1, 0, 1, 2)]  # fmt: skip
    values = np.array([*points, *(-p for p in points), np.inf, np.nan, 0.0], np.longdouble)
    want = np.zeros((len(ALL), 2), np.int64)
    for value in values[np.isfinite(values)]:
        exact = Fraction(*value.as_integer_ratio())
        for k, name in enumerate(ALL):
            want[k] += exact_rounding(exact, name)
    np.testing.assert_array_equal(nb.format_counts(values, ALL).result(), want)  # no kernel
    assert (host_counts(values.astype(np.float64)) != want).any()  # what rounding first gives


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.uint64, np.uint8])
def test_integers_counted_by_their_exact_value(dtype):
    values = np.concatenate([near_thresholds(dtype), sample_values(dtype, 5_000, seed=3)])
    np.testing.assert_array_equal(host_counts(values), exact_counts(values, ALL))
    if dtype == np.int64:
        assert host_counts(np.array([2**62], dtype), ("float16",)).tolist() == [[1, 0]]


def test_every_format_fits_the_kernels_threshold_slots():
    from gpu_summary._backend.cuda_kernels import formats as formats_abi

    assert compiled_formats.SLOTS == formats_abi.MAX_FORMATS == len(ALL)
    source = (ROOT / "kernels" / "gs_formats.cu").read_text()
    assert f"#define GS_MAX_FORMATS {len(ALL)}" in source


def test_bool_and_empty_inputs_count_nothing():
    assert host_counts(np.ones(5000, np.bool_)).sum() == 0
    assert host_counts(np.zeros((0, 3), np.float32)).sum() == 0
    assert spec.format_counts(np.ones(3), ()).result().shape == (0, 2)


# -- the device backend ----------------------------------------------------------------------

LAYOUTS = {
    "contiguous": lambda a: a,
    "strided": lambda a: a.reshape(40, -1)[::3, 1::2],
    "transposed": lambda a: a.reshape(40, -1).T,
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.bool_])
def test_device_counts_equal_the_specification(xp, dtype, layout):
    host = np.resize(np.concatenate([near_thresholds(dtype), sample_values(dtype, 2_000)]), 4_000)
    view = LAYOUTS[layout]
    backend, array = backend_for(view(xp.asarray(host)), "values")
    got = backend.format_counts(array, ALL).result()
    np.testing.assert_array_equal(got, nb.format_counts(view(host), ALL).result())
    some = ("float16", "float8_e5m2")
    got = backend.format_counts(array, some).result()
    np.testing.assert_array_equal(got, nb.format_counts(view(host), some).result())


def test_device_counts_of_bfloat16(emulated_cupy):
    from gpu_summary._backend import cuda
    from gpu_summary._backend.cuda.device_tensor import BFLOAT16, DeviceArray

    cp = emulated_cupy
    bits = np.arange(1 << 16, dtype=np.uint16)
    array = DeviceArray(cp.asarray(bits), cp.cuda.get_current_stream(), BFLOAT16, None)
    with np.errstate(invalid="ignore"):
        widened = (bits.astype(np.uint32) << 16).view(np.float32)
    got = cuda.format_counts(array, ALL).result()
    np.testing.assert_array_equal(got, nb.format_counts(widened, ALL).result())


def test_format_counts_into_adds_to_a_callers_buffer_without_allocating(emulated_cupy):
    from gpu_summary._backend import cuda

    cp = emulated_cupy
    host = near_thresholds(np.float32)
    _, array = backend_for(cp.asarray(host), "values")
    out = cp.cuda.alloc(8 * 4)
    cp.cuda.runtime.memsetAsync(out.ptr, 0, 32, 0)
    cp.log.clear()
    for _ in range(2):
        cuda.format_counts_into(array, ("bfloat16", "float8_e4m3fn"), out.ptr)
    # no memset, copy or alloc; a pinned buffer of an earlier test that the garbage collector
    # happens to free meanwhile logs a freeHost, which is not this call's
    calls = [entry[0] for entry in cp.log if entry[0] != "freeHost"]
    assert calls == ["launch", "launch"]
    got = np.frombuffer(out.mem.buffer[:32].tobytes(), np.uint64).reshape(2, 2)
    want = nb.format_counts(host, ("bfloat16", "float8_e4m3fn")).result()
    np.testing.assert_array_equal(got, 2 * want)
    # 12 dimensions that do not merge: one-shot counts copy them first; this never copies
    shape = (2, 3, 2, 5, 2, 5, 2, 5, 2, 5, 2, 2)
    scattered = cp.asarray(np.zeros(shape, np.float32))[(slice(None), slice(None, None, 2)) * 6]
    with pytest.raises(ValueError, match="needs a copy first; pass a contiguous tensor"):
        cuda.format_counts_into(backend_for(scattered, "values")[1], ("float16",), out.ptr)
    assert cuda.format_counts(backend_for(scattered, "values")[1], ("float16",)).result().sum() == 0


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_TORCH and _cuda_available()), reason="needs a CUDA device and torch")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "int64"])
def test_the_real_device_equals_the_specification(tmp_path, dtype):
    import torch

    host = np.concatenate([near_thresholds(np.float32), sample_values(np.float32, 100_000)])
    tensor = torch.from_numpy(host).to(getattr(torch, dtype)) if dtype != "int64" else (
        torch.from_numpy(near_thresholds(np.int64)))  # fmt: skip
    backend, array = backend_for(tensor.cuda(), "values")
    got = backend.format_counts(array, ALL).result()
    np.testing.assert_array_equal(got, nb.format_counts(backend_for(tensor, "v")[1], ALL).result())
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_histogram("d", tensor.cuda()[::2], 0, formats=ALL)
    acc = legacy_reader(tmp_path)
    want = nb.format_counts(backend_for(tensor[::2], "v")[1], ALL).result().ravel()
    assert [acc.Scalars(t)[0].value for t in _formats.count_tags("d", ALL)] == want.tolist()


# -- through the writer ------------------------------------------------------------------------


def _scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    acc = legacy_reader(logdir)
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def test_add_histogram_logs_each_formats_counts_at_its_step(tmp_path, xp):
    host = np.concatenate([near_thresholds(np.float32), sample_values(np.float32, 3000)])
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_histogram("w", xp.asarray(host), 7, formats=("float16", "float8_e4m3fn"))
        writer.add_histogram("v", xp.asarray(host[::2]), step=2, formats="bfloat16")
        writer.add_histogram("plain", xp.asarray(host), 1)
    found = _scalars(tmp_path)
    want = nb.format_counts(host, ("float16", "float8_e4m3fn")).result().ravel()
    tags = _formats.count_tags("w", ("float16", "float8_e4m3fn"))
    assert {t: found[t] for t in tags} == {
        t: [(7, float(c))] for t, c in zip(tags, want, strict=True)
    }
    want = nb.format_counts(host[::2], ("bfloat16",)).result().ravel()
    assert found["v/lowp/bfloat16/overflow"] == [(2, float(want[0]))]
    assert found["v/lowp/bfloat16/underflow"] == [(2, float(want[1]))]
    assert len(found) == 6  # nothing for the plain histogram
    assert len(legacy_reader(tmp_path).Histograms("w")) == 1


def test_add_histograms_logs_every_tensors_counts(tmp_path, xp):
    tensors = {"a": np.array([1e5, 500.0, 1e-30, 0.0, np.nan], np.float32),
               "b": np.arange(-70_000, 70_000, 7, dtype=np.int64), "c": None}  # fmt: skip
    with gs.SummaryWriter(tmp_path) as writer:
        named = {k: None if v is None else xp.asarray(v) for k, v in tensors.items()}
        writer.add_histograms(named, 3, prefix="p/", formats=["float8_e5m2", "float16"])
    found = _scalars(tmp_path)
    for name in ("a", "b"):
        want = exact_counts(tensors[name], ("float8_e5m2", "float16")).ravel()
        tags = _formats.count_tags(f"p/{name}", ("float8_e5m2", "float16"))
        assert [found[t] for t in tags] == [[(3, float(c))] for c in want]
    assert found["p/a/lowp/float16/overflow"] == [(3, 1.0)]
    assert not any(t.startswith("p/c/") for t in found)


def test_add_histograms_counts_a_devices_tensors_into_one_buffer(tmp_path, emulated_cupy):
    cp = emulated_cupy
    host = {f"t{k}": near_thresholds(np.float32) / np.float32(k + 1) for k in range(5)}
    named = {name: cp.asarray(values) for name, values in host.items()}
    named["host"] = host["host"] = np.array([1e6, 1e-9, 2.0])  # a host array among them
    named["strided"] = cp.asarray(host["t0"])[::3]
    host["strided"] = host["t0"][::3]
    with gs.SummaryWriter(tmp_path) as writer:
        cp.log.clear()
        writer.add_histograms(named, 5, formats=ALL)
        kernels = [entry[1] for entry in cp.log if entry[0] == "launch"]
        copies = [entry for entry in cp.log if entry[:2] == ("memcpy", 16 * len(ALL) * 6)]
    assert kernels.count("gs_format_counts") == 6 and len(copies) == 1
    found = _scalars(tmp_path)
    for name, values in host.items():
        want = nb.format_counts(values, ALL).result().ravel()
        assert [found[t] for t in _formats.count_tags(name, ALL)] == [[(5, float(c))] for c in want]


@needs_torch
def test_watch_logs_the_counts_of_every_gradient(tmp_path):
    import torch

    model = torch.nn.Linear(4, 3)
    with torch.no_grad():
        model.weight.fill_(1e5)
    with gs.SummaryWriter(tmp_path) as writer:
        handle = gs.watch(model, writer, log="all", formats=("float16",))
        model(torch.ones(2, 4)).sum().backward()
        handle.remove()
    found = _scalars(tmp_path)
    assert found["parameters/weight/lowp/float16/overflow"] == [(0, 12.0)]
    assert found["gradients/weight/lowp/float16/overflow"] == [(0, 0.0)]
    assert found["gradients/bias/lowp/float16/underflow"] == [(0, 0.0)]
    with pytest.raises(ValueError, match="formats= counts each step's values"):
        gs.watch(model, writer, formats="float16", window=4)
    with pytest.raises(ValueError, match="formats holds 'fp8'"):
        gs.watch(model, writer, formats=("fp8",))


@pytest.mark.parametrize(
    ("formats", "error", "message"),
    [
        ("float9", ValueError, "formats holds 'float9'.*use names from"),
        (("float16", "float16"), ValueError, "formats names .* more than once"),
        ((16,), TypeError, "formats must hold format names"),
        (np.array(["float16"]), TypeError, "formats must be a format name or a tuple"),
        ({"float16": 1}, TypeError, "formats must be a format name or a tuple"),
    ],
)
def test_bad_formats_fail_at_the_call_and_log_nothing(tmp_path, formats, error, message):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(error, match=message):
            writer.add_histogram("h", np.ones(3), 0, formats=formats)
        with pytest.raises(error, match=message):
            writer.add_histograms({"a": np.ones(3)}, 0, formats=formats)
        with pytest.raises(ValueError, match="formats= counts each step's values"):
            writer.add_histogram("h", np.ones(3), 0, formats="float16", window=2)
        with pytest.raises(ValueError, match="formats= counts each step's values"):
            writer.add_histograms({"a": np.ones(3)}, 0, formats="float16", window=2)
    acc = legacy_reader(tmp_path)
    assert acc.Tags()["scalars"] == [] and acc.Tags()["histograms"] == []
