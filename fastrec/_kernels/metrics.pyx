"""Ranking metrics of top-N lists in one pass per row (twin: ``fastrec.reference.metrics``)."""
import numpy as np

from cython.parallel cimport parallel, prange
from libc.math cimport log2
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport calloc, free

from fastrec._kernels._heap cimport index_t

cdef enum:  # metric columns, in fastrec.reference.metrics.METRICS order
    PRECISION = 0
    RECALL = 1
    NDCG = 2
    AP = 3
    RR = 4
    HIT = 5
    N_METRICS = 6


def ranking_rows(const int64_t[:, ::1] top_items, const int64_t[::1] rows,
                 const int64_t[::1] users, const index_t[::1] test_indptr,
                 const index_t[::1] test_indices, Py_ssize_t n_items,
                 const int64_t[::1] ks, double[:, :, ::1] out, int num_threads):
    """Metric values of the lists ``top_items[rows]`` at every cut-off: ``out[metric, c, t]``.

    Contract (unchecked): ``test_*`` a CSR over ``n_items`` columns; ``users[t]`` (the
    user of list ``rows[t]``) has at least one test item; ``ks`` ascending, each <=
    top_items.shape[1]; items < n_items, and -1 entries are never hits.  With hits h_j
    at ranks j <= k and R relevant items: precision = sum h / k, recall = sum h / R,
    ndcg = DCG / IDCG(min(R, k)), map = sum_j h_j * precision@j / min(R, k),
    mrr = 1 / first hit rank, hit_rate = [any hit].  Each thread marks the user's test
    items in a byte array, so a lookup is one load.
    """
    cdef Py_ssize_t n_rows = rows.shape[0], width = top_items.shape[1]
    cdef Py_ssize_t n_ks = ks.shape[0]
    cdef Py_ssize_t t, r, j, c, p, start, stop, relevant, ideal_n
    cdef int64_t item
    cdef double hits, dcg, ap, rr
    cdef uint8_t* mark
    # discount of rank j + 1, and the ideal DCG of j + 1 hits, computed once
    cdef double[::1] discount = np.empty(max(width, 1))
    cdef double[::1] ideal = np.empty(max(width, 1))
    cdef double running = 0.0
    for j in range(width):
        discount[j] = 1.0 / log2(j + 2.0)
        running = running + discount[j]
        ideal[j] = running
    if n_rows == 0:
        return
    with nogil, parallel(num_threads=num_threads):
        mark = <uint8_t*>calloc(n_items + 1, sizeof(uint8_t))
        try:
            if mark == NULL:
                with gil:
                    raise MemoryError("ranking_rows: cannot allocate per-thread scratch")
            for t in prange(n_rows, schedule="static"):
                r = rows[t]
                start = test_indptr[users[t]]
                stop = test_indptr[users[t] + 1]
                relevant = stop - start
                for p in range(start, stop):
                    mark[test_indices[p]] = 1
                hits = 0.0
                dcg = 0.0
                ap = 0.0
                rr = 0.0
                c = 0
                for j in range(width):
                    item = top_items[r, j]
                    if item >= 0 and mark[item]:
                        hits = hits + 1.0
                        dcg = dcg + discount[j]
                        ap = ap + hits / (j + 1.0)
                        if rr == 0.0:
                            rr = 1.0 / (j + 1.0)
                    while c < n_ks and ks[c] == j + 1:  # a cut-off: record every metric
                        ideal_n = relevant if relevant < ks[c] else ks[c]
                        out[PRECISION, c, t] = hits / ks[c]
                        out[RECALL, c, t] = hits / relevant
                        out[NDCG, c, t] = dcg / ideal[ideal_n - 1]
                        out[AP, c, t] = ap / ideal_n
                        out[RR, c, t] = rr
                        out[HIT, c, t] = 1.0 if hits > 0 else 0.0
                        c = c + 1
                for p in range(start, stop):
                    mark[test_indices[p]] = 0
        finally:
            free(mark)
