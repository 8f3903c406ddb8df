# Bounded top-k heaps shared by the kernels (top-k selection, similarity).
#
# A heap of the k best (score, id) pairs lives in two caller-owned arrays; its root is
# the *worst* kept pair so a better candidate replaces it in O(log k).  "Better" means a
# higher score, ties going to the lower id.  heap_sort leaves the arrays in descending order.
from libc.stdint cimport int32_t, int64_t

ctypedef fused value_t:
    float
    double

ctypedef fused index_t:
    int32_t
    int64_t


cdef inline bint heap_worse(double sa, int64_t ia, double sb, int64_t ib) noexcept nogil:
    """True when (sa, ia) ranks below (sb, ib)."""
    return sa < sb or (sa == sb and ia > ib)


cdef inline void heap_sift_down(value_t* hs, index_t* hi, Py_ssize_t size,
                                Py_ssize_t pos) noexcept nogil:
    """Restore the min-heap (root = worst) below pos."""
    cdef Py_ssize_t child
    cdef value_t s = hs[pos]
    cdef index_t j = hi[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and heap_worse(hs[child + 1], hi[child + 1], hs[child], hi[child]):
            child += 1
        if not heap_worse(hs[child], hi[child], s, j):
            break
        hs[pos] = hs[child]
        hi[pos] = hi[child]
        pos = child
    hs[pos] = s
    hi[pos] = j


cdef inline void heap_sift_up(value_t* hs, index_t* hi, Py_ssize_t pos) noexcept nogil:
    cdef Py_ssize_t parent
    cdef value_t s = hs[pos]
    cdef index_t j = hi[pos]
    while pos > 0:
        parent = (pos - 1) // 2
        if not heap_worse(s, j, hs[parent], hi[parent]):
            break
        hs[pos] = hs[parent]
        hi[pos] = hi[parent]
        pos = parent
    hs[pos] = s
    hi[pos] = j


cdef inline void heap_offer(value_t* hs, index_t* hi, Py_ssize_t* size, Py_ssize_t k,
                            value_t s, index_t j) noexcept nogil:
    """Keep (s, j) if it ranks among the k best seen so far (candidates in any order)."""
    if size[0] < k:
        hs[size[0]] = s
        hi[size[0]] = j
        heap_sift_up(hs, hi, size[0])
        size[0] += 1
    elif k > 0 and heap_worse(hs[0], hi[0], s, j):
        hs[0] = s
        hi[0] = j
        heap_sift_down(hs, hi, size[0], 0)


cdef inline void heap_sort(value_t* hs, index_t* hi, Py_ssize_t size) noexcept nogil:
    """Sort a heap in place into descending order (best first)."""
    cdef Py_ssize_t last = size - 1
    cdef value_t tmp_s
    cdef index_t tmp_j
    while last > 0:
        tmp_s = hs[0]
        tmp_j = hi[0]
        hs[0] = hs[last]
        hi[0] = hi[last]
        hs[last] = tmp_s
        hi[last] = tmp_j
        heap_sift_down(hs, hi, last, 0)
        last -= 1


# ---- whole-array ranking (candidates gathered first, then selected and sorted) ----
cdef inline bint rank_before(value_t sa, index_t ia, value_t sb, index_t ib) noexcept nogil:
    """True when (sa, ia) ranks strictly before (sb, ib): higher score, then lower id."""
    return sa > sb or (sa == sb and ia < ib)


cdef inline void _swap(value_t* s, index_t* ids, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    cdef value_t ts = s[i]
    cdef index_t ti = ids[i]
    s[i] = s[j]
    ids[i] = ids[j]
    s[j] = ts
    ids[j] = ti


cdef inline Py_ssize_t _partition_branchless(value_t* s, index_t* ids, Py_ssize_t lo,
                                             Py_ssize_t hi) noexcept nogil:
    """Lomuto partition of [lo, hi] around a median-of-three pivot; returns its position.

    Every step swaps, with no data-dependent branch.

    Each pair is swapped with the first pair not ranking before the pivot, and that
    boundary moves on only when the pair does rank before it; the comparison's outcome
    is then a number added, not a branch mispredicted about half the time.
    """
    cdef Py_ssize_t mid = lo + (hi - lo) // 2, i, store
    cdef value_t pivot_s, si
    cdef index_t pivot_i, ii
    cdef bint before
    if rank_before(s[mid], ids[mid], s[lo], ids[lo]):
        _swap(s, ids, mid, lo)
    if rank_before(s[hi], ids[hi], s[lo], ids[lo]):
        _swap(s, ids, hi, lo)
    if rank_before(s[mid], ids[mid], s[hi], ids[hi]):
        _swap(s, ids, mid, hi)
    pivot_s = s[hi]
    pivot_i = ids[hi]
    store = lo
    for i in range(lo, hi):
        si = s[i]
        ii = ids[i]
        before = (si > pivot_s) | ((si == pivot_s) & (ii < pivot_i))
        s[i] = s[store]
        ids[i] = ids[store]
        s[store] = si
        ids[store] = ii
        store += before
    _swap(s, ids, store, hi)
    return store


cdef inline void _insertion_sort(value_t* s, index_t* ids, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef value_t v
    cdef index_t w
    for i in range(lo + 1, hi + 1):
        v = s[i]
        w = ids[i]
        j = i - 1
        while j >= lo and rank_before(v, w, s[j], ids[j]):
            s[j + 1] = s[j]
            ids[j + 1] = ids[j]
            j -= 1
        s[j + 1] = v
        ids[j + 1] = w


cdef inline void rank_sort(value_t* s, index_t* ids, Py_ssize_t n) noexcept nogil:
    """Sort n (score, id) pairs best first (quicksort; recursion only on the smaller side)."""
    cdef Py_ssize_t lo = 0, hi = n - 1, p
    while hi - lo > 16:
        p = _partition_branchless(s, ids, lo, hi)
        if p - lo < hi - p:
            rank_sort(s + lo, ids + lo, p - lo)
            lo = p + 1
        else:
            rank_sort(s + p + 1, ids + p + 1, hi - p)
            hi = p - 1
    if hi > lo:
        _insertion_sort(s, ids, lo, hi)


cdef inline void select_top(value_t* s, index_t* ids, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Move the k best of n pairs to the front, in no particular order (quickselect)."""
    cdef Py_ssize_t lo = 0, hi = n - 1, p
    if k <= 0 or k >= n:
        return
    while hi > lo:
        p = _partition_branchless(s, ids, lo, hi)
        if p == k or p == k - 1:  # everything before p ranks before it
            return
        if p < k:
            lo = p + 1
        else:
            hi = p - 1


cdef inline Py_ssize_t select_best(value_t* cand_s, index_t* cand_ids, Py_ssize_t size,
                                   Py_ssize_t cap, value_t* out_s, index_t* out_ids) noexcept nogil:
    """Write the ``cap`` best candidates to ``out_*`` in descending order; returns how many.

    The candidate arrays are reordered in place (quickselect, then a sort of the best).
    """
    cdef Py_ssize_t t
    if size > cap:
        select_top(cand_s, cand_ids, size, cap)
        size = cap
    rank_sort(cand_s, cand_ids, size)
    for t in range(size):
        out_s[t] = cand_s[t]
        out_ids[t] = cand_ids[t]
    return size
