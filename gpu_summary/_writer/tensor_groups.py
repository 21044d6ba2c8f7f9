"""``add_histograms``: many tensors grouped into as few launches as their backends allow.

Device tensors of one device, dtype and stream are reduced together in one multi-tensor launch
(CUDA torch tensors are read directly, never wrapped one by one); host arrays go to the NumPy
backend, one group per dtype.
"""

from __future__ import annotations

import sys

from gpu_summary._backend import backend_for, device_backend
from gpu_summary._core.results import HistogramResult, Pending

# Where each tensor's histogram is: (the pending list of its group, its position in it).
Placed = tuple[Pending[list[HistogramResult]], int]


def launch_ladder_histograms(pairs: list[tuple[str, object]]) -> list[Placed]:
    """Launch the ladder histogram of every ``(name, tensor)``, grouped; no sync.

    Raises:
        TypeError: a tensor that is not numeric, or on a device without the device backend
            (the message names ``named_tensors[name]``).
    """
    groups: dict[tuple, list[int]] = {}
    adopted: dict[int, tuple] = {}
    torch = sys.modules.get("torch")
    on_torch_devices = []
    for k, (name, tensor) in enumerate(pairs):
        if torch is not None and isinstance(tensor, torch.Tensor) and tensor.is_cuda:
            on_torch_devices.append(k)
            continue
        backend, array = backend_for(tensor, f"named_tensors[{name!r}]")
        adopted[k] = (backend, array)
        stream = getattr(getattr(array, "stream", None), "ptr", None)
        key = (backend.__name__, getattr(array, "device_id", None), str(array.dtype), stream)
        groups.setdefault(key, []).append(k)
    placed: list = [None] * len(pairs)
    if on_torch_devices:
        cuda = device_backend(pairs[on_torch_devices[0]][1], "named_tensors")
        tensors = [pairs[k][1] for k in on_torch_devices]
        for members, pending in cuda.histograms_torch(tensors):
            for position, m in enumerate(members):
                placed[on_torch_devices[m]] = (pending, position)
    for members in groups.values():
        backend = adopted[members[0]][0]
        pending = backend.histograms([adopted[k][1] for k in members])
        for position, k in enumerate(members):
            placed[k] = (pending, position)
    return placed
