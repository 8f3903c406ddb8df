"""Per-thread scratch arrays, reused from one block of a call to the next.

A fresh multi-megabyte array costs a page fault and a zeroed page per 4 KB on first
touch; blocked loops that allocate one per block pay it every time (measured: 12-15% of
the blend's kNN pass).  A scratch array is valid until the same thread asks for the same
name again, so it must never leave the function that asked for it.
"""
import threading

import numpy as np

MAX_CACHED_BYTES = 64 * 2**20  # larger requests get a fresh array, not kept

_local = threading.local()


def scratch(name, shape, dtype):
    """An uninitialised array of ``shape`` and ``dtype``, this thread's ``name`` buffer."""
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in np.atleast_1d(shape))
    size = int(np.prod(shape))
    if size * dtype.itemsize > MAX_CACHED_BYTES:
        return np.empty(shape, dtype)
    pool = _local.__dict__.setdefault("pool", {})
    buffer = pool.get(name)
    if buffer is None or buffer.dtype != dtype or buffer.size < size:
        buffer = np.empty(max(size, 1), dtype)
        pool[name] = buffer
    return buffer[:size].reshape(shape)
