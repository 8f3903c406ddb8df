"""Per-thread scratch arrays and arrays carved from one block (fastrec._scratch)."""
import threading

import numpy as np
import pytest
import scipy.sparse as sp

from fastrec import _scratch
from fastrec._scratch import empty_together, scratch


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


@pytest.mark.parametrize("dtypes", [(np.int32, np.float32), (np.int32, np.float64),
                                    (np.int64, np.float32), (np.int8, np.int64, np.float32)])
@pytest.mark.parametrize("size", [0, 1, 7, 1000])
def test_empty_together_gives_aligned_separate_arrays(dtypes, size):
    arrays = empty_together(size, dtypes)
    assert [a.dtype for a in arrays] == [np.dtype(d) for d in dtypes]
    for i, a in enumerate(arrays):
        assert a.shape == (size,) and a.flags.c_contiguous and a.flags.aligned
        a[:] = i + 1
        for other in arrays[i + 1:]:
            assert not np.shares_memory(a, other)
    for i, a in enumerate(arrays):  # no write reached another array
        assert (a == i + 1).all()


def test_empty_together_named_block_is_reused():
    ids, scores = empty_together(100, (np.int32, np.float64), "test.together")
    again, _ = empty_together(50, (np.int32, np.float64), "test.together")
    assert np.shares_memory(ids, again) or np.shares_memory(scores, again)
    fresh, _ = empty_together(100, (np.int32, np.float64))
    assert not np.shares_memory(fresh, ids) and not np.shares_memory(fresh, scores)


@pytest.mark.parametrize("dtypes", [(np.int32, np.float32), (np.int64, np.float64)])
def test_scipy_keeps_the_carved_arrays_without_a_copy(dtypes):
    """scipy copies an index or data array that is a small view of a larger base; the
    carved ids and scores must not look like one, or every result is copied again."""
    ids, scores = empty_together(6, dtypes)
    ids[:] = [0, 2, 1, 0, 1, 2]
    scores[:] = 1.0
    matrix = sp.csr_array((scores, ids, np.array([0, 2, 4, 6], dtypes[0])), shape=(3, 3))
    assert np.shares_memory(matrix.indices, ids) and np.shares_memory(matrix.data, scores)
