"""Compiled kernels: the only place with hot loops.

- ``*.pyx`` are Cython + OpenMP, compiled at install (see the table in setup.py);
  they serve the scoring path (top-k, similarity, prediction, metrics).
- ``*_nb.py`` are Numba kernels for training loops, imported lazily and cached.

Kernels take plain, already-validated arrays (C-contiguous, exact dtypes) and
never check their input beyond shapes; the public modules do that.  Each kernel
has a twin of the same name in ``fastrec.reference``.  To add one: write the
reference, the kernel, the public wrapper, then tests and a benchmark.
"""
