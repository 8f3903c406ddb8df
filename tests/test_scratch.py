"""Per-thread scratch arrays (fastrec._scratch)."""
import threading

import numpy as np

from fastrec import _scratch
from fastrec._scratch import scratch


def test_reused_per_name_and_thread():
    a = scratch("test.a", (3, 4), np.float32)
    assert a.shape == (3, 4) and a.dtype == np.float32
    b = scratch("test.a", 10, np.float32)
    assert np.shares_memory(a, b)  # the same buffer, reused
    assert not np.shares_memory(a, scratch("test.b", (3, 4), np.float32))
    c = scratch("test.a", 1000, np.float32)  # grown: a new buffer
    assert c.size == 1000 and not np.shares_memory(a, c)
    assert scratch("test.a", 5, np.float64).dtype == np.float64
    other = []
    thread = threading.Thread(target=lambda: other.append(scratch("test.a", 1000, np.float64)))
    thread.start()
    thread.join()
    assert not np.shares_memory(other[0], scratch("test.a", 1000, np.float64))


def test_large_requests_are_not_kept(monkeypatch):
    monkeypatch.setattr(_scratch, "MAX_CACHED_BYTES", 100)
    a = scratch("test.big", 50, np.float64)
    assert not np.shares_memory(a, scratch("test.big", 50, np.float64))
    assert scratch("test.empty", 0, np.int64).shape == (0,)
