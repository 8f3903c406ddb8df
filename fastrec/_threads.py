"""One resolver for ``num_threads``, shared by the Cython and Numba kernels.

``None`` or ``0`` mean every usable core (honouring ``OMP_NUM_THREADS`` and the CPU
affinity mask), a positive count is taken as given, ``-1`` is all cores and other
negative counts are counted back from it (``-2`` = all but one); inside a ``blas_worker``
thread it is always 1.
"""
import contextlib
import functools
import numbers
import os
import threading
import warnings

from fastrec.exceptions import FastrecWarning

_warned_no_openmp = False


def usable_cores():
    """Cores this process may run on (affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _default_threads():
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return usable_cores()


def effective_num_threads(num_threads=None):
    """Resolve a user's ``num_threads`` to a positive thread count for our kernels."""
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral)
    ):
        raise TypeError(f"num_threads must be an int or None, got {num_threads!r}")
    if in_blas_worker():  # a pool worker owns one core: nested kernels run on it alone
        return 1
    n = 0 if num_threads is None else int(num_threads)
    if n == 0:
        n = _default_threads()
    elif n < 0:
        n = max(1, usable_cores() + 1 + n)
    from fastrec._kernels._openmp_info import openmp_enabled

    if not openmp_enabled():
        global _warned_no_openmp
        if n > 1 and num_threads not in (None, 0) and not _warned_no_openmp:
            warnings.warn(
                "fastrec was built without OpenMP: kernels run on one thread "
                f"(num_threads={num_threads} ignored); rebuild with an OpenMP-capable compiler",
                FastrecWarning,
                stacklevel=3,
            )
            _warned_no_openmp = True
        return 1
    return n


_worker = threading.local()


@contextlib.contextmanager
def limit_blas_threads(n=1):
    """Keep BLAS to ``n`` threads while our own threads run (avoids oversubscription).

    Inside a ``blas_worker`` thread BLAS is already held at one thread for the whole
    pool, and is left alone (the limit is process-wide, so threads must not race on it).
    """
    if in_blas_worker() or _worker.__dict__.get("blas_limit") == n:
        yield  # already held there by an enclosing call of this thread (threadpoolctl costs ~1 ms)
        return
    previous = _worker.__dict__.get("blas_limit")
    _worker.blas_limit = n
    try:
        with _blas_controller().limit(limits=n, user_api="blas"):
            yield
    finally:
        _worker.blas_limit = previous


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's view of the loaded thread pools, found once: finding them reads the
    process's memory map (about 1 ms with Numba loaded), setting a limit then costs 10 us.
    NumPy's BLAS, the one our blocks call, is loaded before fastrec."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def in_blas_worker():
    """Whether this thread is a ``blas_worker`` (it owns one core: kernels run single-threaded)."""
    return getattr(_worker, "active", False)


@contextlib.contextmanager
def blas_worker():
    """Mark this thread as a worker of a pool run under ``limit_blas_threads(1)``."""
    _worker.active = True
    try:
        yield
    finally:
        _worker.active = False


@contextlib.contextmanager
def numba_threads(n):
    """Run Numba parallel regions with ``n`` threads, restoring the previous count."""
    import numba

    n = min(n, numba.config.NUMBA_NUM_THREADS)
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
