"""Principal components, written once for both backends (``xp`` is NumPy or CuPy).

The device backend calls it inside its stream and error-state contexts, so nothing here waits
for the device.
"""

from __future__ import annotations

from types import ModuleType


def principal_components(xp: ModuleType, matrix: object, components: int) -> object:
    """The rows of N×D float64 ``matrix`` projected on its top ``components`` principal axes.

    Centred on the column means; axes are the eigenvectors of ``Xcᵀ Xc`` by decreasing
    eigenvalue, each signed so that its largest-magnitude entry is positive (so both backends
    and every run give the same picture).

    Args:
        xp: the array module of ``matrix`` (``numpy`` or ``cupy``).
        matrix: N×D float64 array of that module.
        components: axes kept; k = min(components, D).

    Returns:
        N×k float32 array of the same module.
    """
    centred = matrix - matrix.mean(axis=0)
    eigenvalues, vectors = xp.linalg.eigh(centred.T @ centred)
    k = min(components, vectors.shape[1])
    axes = vectors[:, xp.argsort(eigenvalues, kind="stable")[::-1][:k]]
    largest = axes[xp.argmax(xp.abs(axes), axis=0), xp.arange(k)]
    axes = axes * xp.where(largest < 0, -1.0, 1.0)
    return (centred @ axes).astype(xp.float32)
