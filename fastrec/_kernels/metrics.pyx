"""Ranking metrics of top-N lists in one pass per row (twin: ``fastrec.reference.metrics``)."""
import numpy as np

from cython.parallel cimport parallel, prange
from libc.math cimport log2
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport calloc, free

from fastrec._kernels._heap cimport index_t, value_t

cdef enum:  # metric columns, in fastrec.reference.metrics.METRICS order
    PRECISION = 0
    RECALL = 1
    NDCG = 2
    AP = 3
    RR = 4
    HIT = 5
    AUC = 6
    N_METRICS = 7


def ranking_rows(const int64_t[:, ::1] top_items, const int64_t[::1] rows,
                 const int64_t[::1] users, const index_t[::1] test_indptr,
                 const index_t[::1] test_indices, const index_t[::1] train_indptr,
                 const index_t[::1] train_indices, Py_ssize_t n_items,
                 const int64_t[::1] ks, double[:, :, ::1] out, int num_threads):
    """Metric values of the lists ``top_items[rows]`` at every cut-off: ``out[metric, c, t]``.

    Contract (unchecked): ``test_*`` and ``train_*`` CSRs over ``n_items`` columns
    (``train_indptr`` all zeros when there is no training data); ``users[t]`` (the user
    of list ``rows[t]``) has at least one test item; ``ks`` ascending, each <=
    top_items.shape[1]; items < n_items and distinct within a list, -1 entries are never
    hits.  With hits h_j at ranks j <= k and R relevant items: precision = sum h / k,
    recall = sum h / R, ndcg = DCG / IDCG(min(R, k)), map = sum_j h_j * precision@j /
    min(R, k), mrr = 1 / first hit rank, hit_rate = [any hit], auc = share of (relevant,
    negative) pairs ranked right, where the negatives are the items outside the user's
    training items and test items, and the unlisted items tie below the listed ones.
    Each thread marks the user's items in a byte array (test 1, train-only 2), so a
    lookup is one load.
    """
    cdef Py_ssize_t n_rows = rows.shape[0], width = top_items.shape[1]
    cdef Py_ssize_t n_ks = ks.shape[0]
    cdef Py_ssize_t t, r, j, c, p, start, stop, relevant, ideal_n, u
    cdef int64_t item
    cdef double hits, dcg, ap, rr, negatives, negatives_listed, ordered_pairs
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
                u = users[t]
                start = test_indptr[u]
                stop = test_indptr[u + 1]
                relevant = stop - start
                negatives = n_items - relevant
                for p in range(train_indptr[u], train_indptr[u + 1]):
                    mark[train_indices[p]] = 2
                    negatives = negatives - 1.0
                for p in range(start, stop):
                    if mark[test_indices[p]] == 2:  # a test item also in training
                        negatives = negatives + 1.0
                    mark[test_indices[p]] = 1
                hits = 0.0
                dcg = 0.0
                ap = 0.0
                rr = 0.0
                negatives_listed = 0.0
                ordered_pairs = 0.0
                c = 0
                for j in range(width):
                    item = top_items[r, j]
                    if item >= 0 and mark[item] == 1:
                        hits = hits + 1.0
                        dcg = dcg + discount[j]
                        ap = ap + hits / (j + 1.0)
                        if rr == 0.0:
                            rr = 1.0 / (j + 1.0)
                        ordered_pairs = ordered_pairs + negatives - negatives_listed
                    elif item >= 0 and mark[item] == 0:
                        negatives_listed = negatives_listed + 1.0
                    while c < n_ks and ks[c] == j + 1:  # a cut-off: record every metric
                        ideal_n = relevant if relevant < ks[c] else ks[c]
                        out[PRECISION, c, t] = hits / ks[c]
                        out[RECALL, c, t] = hits / relevant
                        out[NDCG, c, t] = dcg / ideal[ideal_n - 1]
                        out[AP, c, t] = ap / ideal_n
                        out[RR, c, t] = rr
                        out[HIT, c, t] = 1.0 if hits > 0 else 0.0
                        if negatives > 0:
                            out[AUC, c, t] = (ordered_pairs + 0.5 * (relevant - hits)
                                              * (negatives - negatives_listed)) / (relevant * negatives)
                        else:
                            out[AUC, c, t] = 1.0
                        c = c + 1
                for p in range(train_indptr[u], train_indptr[u + 1]):
                    mark[train_indices[p]] = 0
                for p in range(start, stop):
                    mark[test_indices[p]] = 0
        finally:
            free(mark)


def list_similarity_rows(const int64_t[:, ::1] top_items, const index_t[::1] sim_indptr,
                         const index_t[::1] sim_indices, const value_t[::1] sim_data,
                         Py_ssize_t n_items, double[::1] similarity_sum, int64_t[::1] n_distinct,
                         int num_threads):
    """Per list: the sum of s(a, b) over ordered pairs of distinct listed items (as stored,
    missing entries 0) and the number of distinct items.

    Contract (unchecked): the similarity is a CSR over ``n_items`` columns with
    ``n_items`` rows; items < n_items, -1 entries ignored.  The cost is the summed row
    lengths of the listed items: each listed row is scanned against the list's marks.
    """
    cdef Py_ssize_t n_rows = top_items.shape[0], width = top_items.shape[1]
    cdef Py_ssize_t r, j, p
    cdef int64_t item, m
    cdef double total
    cdef uint8_t* mark
    if n_rows == 0:
        return
    with nogil, parallel(num_threads=num_threads):
        mark = <uint8_t*>calloc(n_items + 1, sizeof(uint8_t))
        try:
            if mark == NULL:
                with gil:
                    raise MemoryError("list_similarity_rows: cannot allocate per-thread scratch")
            for r in prange(n_rows, schedule="static"):
                m = 0
                for j in range(width):
                    item = top_items[r, j]
                    if item >= 0 and mark[item] == 0:
                        mark[item] = 1
                        m = m + 1
                total = 0.0
                for j in range(width):
                    item = top_items[r, j]
                    if item >= 0 and mark[item] == 1:  # first occurrence: scan its row once
                        mark[item] = 2
                        for p in range(sim_indptr[item], sim_indptr[item + 1]):
                            if sim_indices[p] != item and mark[sim_indices[p]] != 0:
                                total = total + sim_data[p]
                similarity_sum[r] = total
                n_distinct[r] = m
                for j in range(width):
                    item = top_items[r, j]
                    if item >= 0:
                        mark[item] = 0
        finally:
            free(mark)
