"""Hold the stand-in (tests/support/fake_cupy.py) and the device backend against the real
CuPy's API, without a GPU.

Run as a script (its own process: the test process must not import the real CuPy)::

    python3 tests/support/cupy_api.py

Prints a JSON object: ``problems`` (empty when all is well) and what was checked. Checks:

* every ``cupy.*`` / ``cupyx.*`` attribute the backend modules name exists in the real CuPy, and
  in the stand-in unless it is on a GPU-only path (``GPU_ONLY``);
* every keyword the backend passes to a CuPy callable is one of its real parameters;
* every callable of the stand-in that mirrors a CuPy one takes the same parameters: its
  positional parameters are the real one's first ones, by name; its keywords are real ones;
* where the real docstring names a return type (``-> PinnedMemoryPointer``), the stand-in's
  return annotation names the same type.

Cython hides most signatures from ``inspect``; their docstrings' first line is the signature
(``memcpyAsync(intptr_t dst, intptr_t src, size_t size, int kind, intptr_t stream)``).
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The device backend's modules, and the principal components it shares with the NumPy backend
# (written against an array module ``xp``: read as ``cupy`` here).
BACKEND = (
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "gpu_summary/_backend/cuda").glob("*.py")),
    "gpu_summary/_backend/pca.py",
)
# Used only by the principal-components path of ``embedding``, which runs on a GPU alone
# (tests/test_embedding.py, marked gpu): the stand-in has no linear algebra.
GPU_ONLY = {
    "cupy.abs", "cupy.arange", "cupy.argmax", "cupy.argsort", "cupy.float32", "cupy.float64",
    "cupy.linalg", "cupy.linalg.eigh", "cupy.uint32", "cupy.where", "cupyx", "cupyx.errstate",
}  # fmt: skip
# The stand-in's names that mirror CuPy's (dotted paths below ``cupy``).
MIRRORED = (
    "ndarray", "asarray", "ascontiguousarray", "from_dlpack", "RawModule", "RawKernel",
    "cuda.Device", "cuda.Stream", "cuda.Stream.from_external", "cuda.ExternalStream",
    "cuda.Event", "cuda.Event.record", "cuda.Event.synchronize", "cuda.Stream.wait_event",
    "cuda.UnownedMemory",
    "cuda.MemoryPointer", "cuda.alloc", "cuda.alloc_pinned_memory", "cuda.PinnedMemoryPointer",
    "cuda.PinnedMemory", "cuda.PinnedMemoryPool", "cuda.PinnedMemoryPool.malloc",
    "cuda.Stream.is_capturing",
    "cuda.get_current_stream", "cuda.runtime.memsetAsync", "cuda.runtime.memcpyAsync",
    "cuda.runtime.pointerGetAttributes", "cuda.runtime.getDevice",
    "cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor", "RawModule.get_function",
    "ndarray.view", "ndarray.copy", "ndarray.reshape", "ndarray.transpose", "ndarray.get",
)  # fmt: skip


def resolve(root: object, path: str) -> object:
    """``root.a.b.c`` for path "a.b.c"; raises AttributeError."""
    for part in path.split("."):
        root = getattr(root, part)
    return root


def backend_uses() -> tuple[set[str], dict[str, set[str]]]:
    """The ``cupy.*``/``cupyx.*`` attribute chains the backend names, and the keywords it
    passes to each called chain."""
    chains: set[str] = set()
    keywords: dict[str, set[str]] = {}

    def chain(node: ast.AST) -> str | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in ("cupy", "cupyx", "xp"):
            return ".".join(["cupy" if node.id == "xp" else node.id, *reversed(parts)])
        return None

    for relative in BACKEND:
        tree = ast.parse((ROOT / relative).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = chain(node) if isinstance(node, (ast.Attribute, ast.Name)) else None
            if (name and name not in ("cupy", "cupyx")) or name == "cupyx":
                chains.add(name)
            if isinstance(node, ast.Call) and (called := chain(node.func)):
                keywords.setdefault(called, set()).update(k.arg for k in node.keywords if k.arg)
    return chains, keywords


_DOC_SIGNATURE = re.compile(r"^\s*([\w.]+)\((.*)\)\s*(?:->\s*([\w.~]+))?\s*$")


def real_signature(obj: object) -> tuple[list[str], set[str], str | None] | None:
    """(positional parameter names, every parameter name, return type name) of a real CuPy
    callable, from its docstring's first line or ``inspect``; None when neither tells."""
    target = obj.__init__ if isinstance(obj, type) and "__init__" in vars(obj) else obj
    for doc in (getattr(obj, "__doc__", None), getattr(target, "__doc__", None)):
        match = _DOC_SIGNATURE.match((doc or "").strip().splitlines()[0] if doc else "")
        if match:
            positional, names, keyword_only = [], set(), False
            for raw in filter(None, (p.strip() for p in match.group(2).split(","))):
                if raw == "*":
                    keyword_only = True
                    continue
                name = raw.split("=")[0].split()[-1].lstrip("*")
                if name in ("self", "cls"):
                    continue
                names.add(name)
                if raw.lstrip().startswith("*"):
                    keyword_only = True
                elif not keyword_only:
                    positional.append(name)
            returns = match.group(3).split(".")[-1].lstrip("~") if match.group(3) else None
            returns = "ndarray" if returns == "_ndarray_base" else returns  # ndarray's base
            return positional, names, returns
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = [p for p in signature.parameters.values() if p.name != "self"]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None  # a catch-all constructor (cupy.ndarray): its docstring must tell
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return positional, {p.name for p in params}, None


def fake_signature(obj: object) -> tuple[list[str], set[str], str | None]:
    target = obj.__init__ if isinstance(obj, type) else obj
    signature = inspect.signature(target)
    params = [p for p in signature.parameters.values() if p.name != "self"]
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword = {p.name for p in params if p.kind is p.KEYWORD_ONLY}
    annotation = signature.return_annotation
    returns = None
    if annotation is not inspect.Signature.empty and not isinstance(obj, type):
        returns = str(getattr(annotation, "__name__", annotation)).split(".")[-1]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        positional = []  # *shape: checked by the real docstring's names only
    return positional, keyword, returns


def main() -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import cupy
    import cupyx

    from support import fake_cupy

    problems: list[str] = []
    chains, keywords = backend_uses()
    real_roots = {"cupy": cupy, "cupyx": cupyx}
    for name in sorted(chains):
        root, _, rest = name.partition(".")
        try:
            real = resolve(real_roots[root], rest) if rest else real_roots[root]
        except AttributeError:
            problems.append(f"the backend uses {name}, which CuPy {cupy.__version__} lacks")
            continue
        if name not in GPU_ONLY and root == "cupy":
            try:
                resolve(fake_cupy, rest)
            except AttributeError:
                problems.append(f"the backend uses {name}, which tests/support/fake_cupy.py lacks")
        used = keywords.get(name, set())
        signature = real_signature(real) if used else None
        if used and signature is not None and not used <= signature[1]:
            problems.append(f"{name} is called with {sorted(used - signature[1])}, "
                            f"not parameters of CuPy's {sorted(signature[1])}")  # fmt: skip
    compared = []
    for path in MIRRORED:
        try:
            real = resolve(cupy, path)
        except AttributeError:
            problems.append(f"tests/support/fake_cupy.py mirrors cupy.{path}, which CuPy lacks")
            continue
        fake = resolve(fake_cupy, path)
        if not callable(fake) or isinstance(fake, types.SimpleNamespace):
            continue
        want = real_signature(real)
        if want is None:
            problems.append(f"cannot read the signature of cupy.{path}")
            continue
        positional, keyword, returns = fake_signature(fake)
        if positional != want[0][: len(positional)]:
            problems.append(f"fake cupy.{path} takes {positional}, CuPy takes {want[0]}")
        if not keyword <= want[1]:
            problems.append(f"fake cupy.{path} takes keywords {sorted(keyword - want[1])} "
                            f"that CuPy's {sorted(want[1])} lacks")  # fmt: skip
        if want[2] and returns and returns != want[2]:
            problems.append(f"fake cupy.{path} returns {returns}, CuPy returns {want[2]}")
        compared.append(path)
    report = {"cupy": cupy.__version__, "backend_names": sorted(chains), "compared": compared,
              "problems": problems}  # fmt: skip
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
