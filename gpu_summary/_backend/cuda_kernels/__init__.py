"""The CUDA kernels as Python sees them, without importing CuPy: where the sources are and how
they are compiled (``sources``), and each ``.cu`` file's ABI — its template instantiations,
buffer layouts and argument tuples — in a module of its own (``reduce``, ``anomaly``,
``thumbnails``, ``pr_curve``, ``formats``; ``layout`` for the strided-tensor parameters they
share); ``catalogue`` lists every module's instantiations."""
