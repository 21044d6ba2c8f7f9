"""Test helpers (not tests): the CPU stand-in for CuPy (``fake_cupy``, over the kernel emulator
``emulator``), the real CuPy's compile path and API (``cupy_path``, ``cupy_api``, run in their
own processes), one rank of the distributed tests (``dist_worker``), a real TensorBoard server
(``tb_server``) and a headless browser driving it (``browser``); GS_REQUIRE_GPU=1's pytest hooks
(``require_gpu``)."""
