"""Sparse all-pairs similarity with top-k neighbours (Gustavson row accumulation).

Row ``a`` of X (n x m, CSR) is compared with every row sharing a column with it by
walking X[a] and, for each of its columns c, the column c (row c of X^T, CSR): the
co-rated statistics of every touched pair (a, b) gather in per-thread scratch of
length n, the scores of the touched rows go through a bounded buffer (a quickselect
keeps the best k whenever it fills up), and the scratch is reset for the next row.

Every measure is symmetric, bit for bit: a pair's statistics are sums over the same
columns in the same order from either side, and the score formulas only swap the
operands of commutative products.  So in the mirrored modes row a walks only the
rows b < a (the head of each sorted column), and each score is handed to both rows,
which halves the accumulation.
Memory: O(nnz + n*k + threads*n), plus threads*n*2k with MIRROR_TOP; no n x n matrix.
"""
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, sqrt
from libc.stdint cimport int32_t, int64_t, uint32_t
from libc.stdlib cimport calloc, free, malloc

from fastrec._kernels._heap cimport index_t, radix_rank_sort, rank_sort, select_top, value_t
from fastrec._kernels._openmp cimport fastrec_omp_thread_num

cdef enum:  # measure codes, exported by name in MEASURES
    DOT = 0              # sum x_a x_b (rows pre-scaled by the wrapper for cosine)
    JACCARD = 1          # n_ab / (n_a + n_b - n_ab)
    MSD = 2              # 1 / (sum (x_a - x_b)^2 / n_ab + 1)
    CORATED_COSINE = 3   # sum x_a x_b / sqrt(sum_co x_a^2 sum_co x_b^2)
    PEARSON = 4          # Surprise's co-rated Pearson
    DOT_POSITIVE = 5     # DOT when every value is > 0, min_support <= 1 and no shrinkage:
                         # a non-zero sum marks a touched row, no support count is kept

cdef enum:  # shrinkage modes
    SHRINK_SUPPORT = 0   # score * n_ab / (n_ab + lambda)
    SHRINK_BASELINE = 1  # score * (n_ab - 1) / (n_ab - 1 + lambda)  (Surprise's pearson_baseline)

cdef enum:  # how each unordered pair is scored
    MIRROR_NONE = 0      # twice, once from each row
    MIRROR_ALL = 1       # once; both rows keep every score (their slots hold whole rows)
    MIRROR_TOP = 2       # once; rows keep their best k, in k-wide slots

MEASURES = {"dot": DOT, "jaccard": JACCARD, "msd": MSD,
            "corated_cosine": CORATED_COSINE, "pearson": PEARSON, "dot_positive": DOT_POSITIVE}
SHRINK_MODES = {"support": SHRINK_SUPPORT, "baseline": SHRINK_BASELINE}
MIRROR_MODES = {"none": MIRROR_NONE, "all": MIRROR_ALL, "top": MIRROR_TOP}

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define fastrec_prefetch(p) __builtin_prefetch(p)
    #else
    #define fastrec_prefetch(p) ((void)0)
    #endif
    """
    void fastrec_prefetch(const void* p) noexcept nogil

cdef enum:
    AHEAD = 4  # columns of X[a] whose rows of X^T are prefetched ahead of use
    RADIX_MIN = 256  # rows from this long are sorted by radix_rank_sort


cdef inline double _score(int measure, int32_t n_ab, double s_ab, double s_aa, double s_bb,
                          double s_a, double s_b, double s_dd, Py_ssize_t len_a,
                          Py_ssize_t len_b) noexcept nogil:
    cdef double den
    if measure == DOT:
        return s_ab
    if measure == JACCARD:
        return <double>n_ab / <double>(len_a + len_b - n_ab)

    if measure == MSD:
        return 1.0 / (s_dd / n_ab + 1.0)
    if measure == CORATED_COSINE:
        den = sqrt(s_aa * s_bb)
        return s_ab / den if den != 0 else 0.0
    # PEARSON, in Surprise's form
    den = sqrt((n_ab * s_aa - s_a * s_a) * (n_ab * s_bb - s_b * s_b))
    return (n_ab * s_ab - s_a * s_b) / den if den != 0 else 0.0


cdef inline value_t _keep_best(value_t* scores, index_t* ids, Py_ssize_t size,
                               Py_ssize_t cap) noexcept nogil:
    """Keep the best cap of size candidates at the front; returns the worst kept score.

    Every dropped candidate ranks below cap others, and so will any later candidate
    scoring below the returned score: it can be dropped on arrival.
    """
    cdef Py_ssize_t t
    cdef value_t worst
    select_top(scores, ids, size, cap)
    worst = scores[0]
    for t in range(1, cap):
        if scores[t] < worst:
            worst = scores[t]
    return worst


cdef inline void _offer(value_t* scores, index_t* ids, Py_ssize_t* size, value_t* floor,
                        Py_ssize_t room, Py_ssize_t cap, value_t v, index_t b) noexcept nogil:
    """Append (v, b) to a bounded buffer unless it scores below floor (see _keep_best)."""
    if v >= floor[0]:
        scores[size[0]] = v
        ids[size[0]] = b
        size[0] += 1
        if size[0] == room:
            floor[0] = _keep_best(scores, ids, size[0], cap)
            size[0] = cap


def similarity_topk(const value_t[::1] x_data, const index_t[::1] x_indices,
                    const index_t[::1] x_indptr,
                    const value_t[::1] t_data, const index_t[::1] t_indices,
                    const index_t[::1] t_indptr,
                    int measure, double shrinkage, int shrink_mode, int64_t min_support,
                    const int64_t[::1] out_indptr,
                    index_t[::1] out_ids, value_t[::1] out_scores, int64_t[::1] out_counts,
                    bint count_only, int mirror, int num_threads):
    """Top neighbours of every row of X; unchecked kernel behind ``fastrec.similarity``.

    Contract: X given as CSR (``x_*``) and as the CSR of its transpose (``t_*``), both
    with one index dtype and one value dtype, indices sorted, rows shorter than 2**31;
    row a writes at most ``out_indptr[a+1] - out_indptr[a]``
    neighbours into ``out_ids`` / ``out_scores`` from ``out_indptr[a]`` on, sorted by
    score descending (ties: lower id), and their number into ``out_counts[a]``.
    Pairs with fewer than ``min_support`` co-rated columns, zero scores and the row
    itself are left out.  ``count_only`` only counts the non-zero neighbours.
    ``mirror`` (MIRROR_MODES) scores each unordered pair once: MIRROR_ALL needs slots
    that hold every neighbour of a row (or ``count_only``) and threads*n extra counters,
    MIRROR_TOP slots of one width k >= 1 and threads*n*2k extra (value, index) pairs.
    Accumulates in double; the result does not depend on ``num_threads``.
    """
    cdef Py_ssize_t n = x_indptr.shape[0] - 1
    cdef Py_ssize_t a, b, c, p, q, t, n_touched, size, cap, room, limit, th, other, offset
    cdef Py_ssize_t given_room = 0
    cdef int64_t start
    cdef double xa, xb, s, factor
    cdef value_t v, floor
    cdef bint need_products = measure == DOT or measure == DOT_POSITIVE or measure == CORATED_COSINE or measure == PEARSON
    cdef bint need_squares = measure == CORATED_COSINE or measure == PEARSON
    cdef bint need_sums = measure == PEARSON
    cdef bint need_diffs = measure == MSD
    cdef bint needs_lengths = measure == JACCARD
    cdef int32_t* count
    cdef Py_ssize_t* touched
    cdef double* s_ab
    cdef double* s_aa
    cdef double* s_bb
    cdef double* s_a
    cdef double* s_b
    cdef double* s_dd
    cdef value_t* cand_scores
    cdef index_t* cand_ids
    cdef uint32_t* keys
    cdef uint32_t* tmp_keys
    # MIRROR_TOP: thread th's bounded buffer of the scores rows a > b hand to row b
    cdef value_t* given_scores = NULL
    cdef index_t* given_ids = NULL
    cdef value_t* given_floor = NULL
    cdef Py_ssize_t* given_size = NULL
    cdef Py_ssize_t given_at
    # MIRROR_ALL: thread th's count, then write cursor, of the scores it hands to row b
    cdef Py_ssize_t* cursor = NULL
    if out_indptr.shape[0] != n + 1 or out_counts.shape[0] != n:
        raise ValueError("similarity_topk: out_indptr and out_counts must match X's rows")
    if mirror not in (MIRROR_NONE, MIRROR_ALL, MIRROR_TOP):
        raise ValueError(f"similarity_topk: unknown mirror mode {mirror}")
    if n == 0:
        return
    if mirror == MIRROR_ALL:
        num_threads = max(num_threads, 1)
        cursor = <Py_ssize_t*>calloc(num_threads * n, sizeof(Py_ssize_t))
        if cursor == NULL:
            raise MemoryError("similarity_topk: cannot allocate the hand-over cursors")
    if mirror == MIRROR_TOP:
        cap = out_indptr[1] - out_indptr[0]
        if cap < 1 or count_only:
            raise ValueError("similarity_topk: MIRROR_TOP needs k >= 1 and no count_only")
        num_threads = max(num_threads, 1)
        given_room = 2 * cap
        given_scores = <value_t*>malloc(num_threads * n * given_room * sizeof(value_t))
        given_ids = <index_t*>malloc(num_threads * n * given_room * sizeof(index_t))
        given_floor = <value_t*>malloc(num_threads * n * sizeof(value_t))
        given_size = <Py_ssize_t*>calloc(num_threads * n, sizeof(Py_ssize_t))
        if given_scores == NULL or given_ids == NULL or given_floor == NULL or given_size == NULL:
            free(given_scores)
            free(given_ids)
            free(given_floor)
            free(given_size)
            raise MemoryError("similarity_topk: cannot allocate the mirrored candidate buffers")
        for t in range(num_threads * n):
            given_floor[t] = -INFINITY
    try:
        with nogil, parallel(num_threads=num_threads):
            count = <int32_t*>calloc(n, sizeof(int32_t)) if measure != DOT_POSITIVE else NULL
            # n + 1: the branch-free insertion writes one slot past the last touched row
            touched = <Py_ssize_t*>malloc((n + 1) * sizeof(Py_ssize_t))
            s_ab = <double*>calloc(n, sizeof(double)) if need_products else NULL
            s_aa = <double*>calloc(n, sizeof(double)) if need_squares else NULL
            s_bb = <double*>calloc(n, sizeof(double)) if need_squares else NULL
            s_a = <double*>calloc(n, sizeof(double)) if need_sums else NULL
            s_b = <double*>calloc(n, sizeof(double)) if need_sums else NULL
            s_dd = <double*>calloc(n, sizeof(double)) if need_diffs else NULL
            cand_scores = <value_t*>malloc(n * sizeof(value_t))
            cand_ids = <index_t*>malloc(n * sizeof(index_t))
            keys = <uint32_t*>malloc(n * sizeof(uint32_t)) if mirror == MIRROR_ALL else NULL
            tmp_keys = <uint32_t*>malloc(n * sizeof(uint32_t)) if mirror == MIRROR_ALL else NULL
            th = fastrec_omp_thread_num()
            try:
                if ((count == NULL and measure != DOT_POSITIVE) or touched == NULL or cand_scores == NULL or cand_ids == NULL or (need_products and s_ab == NULL)
                        or (mirror == MIRROR_ALL and (keys == NULL or tmp_keys == NULL))
                        or (need_squares and (s_aa == NULL or s_bb == NULL))
                        or (need_sums and (s_a == NULL or s_b == NULL))
                        or (need_diffs and s_dd == NULL)):
                    with gil:
                        raise MemoryError("similarity_topk: cannot allocate per-thread scratch")
                for a in prange(n, schedule="dynamic", chunksize=16):
                    # accumulate the co-rated statistics of every row b sharing a column with a
                    # (mirrored: only b < a; else a itself too, skipped when scoring)
                    limit = a if mirror != MIRROR_NONE else n
                    n_touched = 0
                    start = out_indptr[a]
                    cap = out_indptr[a + 1] - start
                    size = 0
                    # candidates below floor cannot make the row's top cap; when room is
                    # full, the best cap are kept and floor rises (never with count_only)
                    floor = -INFINITY
                    room = 4 * cap if not count_only and 0 < 4 * cap < n else n
                    if measure == DOT_POSITIVE:  # the default cosine: one scratch array
                        for p in range(x_indptr[a], x_indptr[a + 1]):
                            c = x_indices[p]
                            xa = x_data[p]
                            if p + AHEAD < x_indptr[a + 1]:  # the rows of X^T are scattered
                                q = t_indptr[x_indices[p + AHEAD]]
                                fastrec_prefetch(&t_indices[q])
                                fastrec_prefetch(&t_data[q])
                            for q in range(t_indptr[c], t_indptr[c + 1]):
                                b = t_indices[q]
                                if b >= limit:  # the column's rows are sorted
                                    break
                                touched[n_touched] = b
                                n_touched = n_touched + (s_ab[b] == 0)
                                s_ab[b] += xa * t_data[q]
                    elif measure == DOT:  # the hot case, without the per-entry branches
                        for p in range(x_indptr[a], x_indptr[a + 1]):
                            c = x_indices[p]
                            xa = x_data[p]
                            if p + AHEAD < x_indptr[a + 1]:  # the rows of X^T are scattered
                                q = t_indptr[x_indices[p + AHEAD]]
                                fastrec_prefetch(&t_indices[q])
                                fastrec_prefetch(&t_data[q])
                            for q in range(t_indptr[c], t_indptr[c + 1]):
                                b = t_indices[q]
                                if b >= limit:  # the column's rows are sorted
                                    break
                                touched[n_touched] = b  # kept only when b is new: no branch
                                n_touched = n_touched + (count[b] == 0)
                                count[b] += 1
                                s_ab[b] += xa * t_data[q]
                    else:  # the general loop: every statistic the measure needs
                        for p in range(x_indptr[a], x_indptr[a + 1]):
                            c = x_indices[p]
                            xa = x_data[p]
                            if p + AHEAD < x_indptr[a + 1]:  # the rows of X^T are scattered
                                q = t_indptr[x_indices[p + AHEAD]]
                                fastrec_prefetch(&t_indices[q])
                                fastrec_prefetch(&t_data[q])
                            for q in range(t_indptr[c], t_indptr[c + 1]):
                                b = t_indices[q]
                                if b >= limit:  # the column's rows are sorted
                                    break
                                touched[n_touched] = b  # kept only when b is new: no branch
                                n_touched = n_touched + (count[b] == 0)
                                count[b] += 1
                                xb = t_data[q]
                                if need_products:
                                    s_ab[b] += xa * xb
                                if need_squares:
                                    s_aa[b] += xa * xa
                                    s_bb[b] += xb * xb
                                if need_sums:
                                    s_a[b] += xa
                                    s_b[b] += xb
                                if need_diffs:
                                    s_dd[b] += (xa - xb) * (xa - xb)
                    # score them, keep the best, reset the scratch
                    for t in range(n_touched):
                        b = touched[t]
                        v = 0
                        if measure == DOT_POSITIVE:
                            if b != a:
                                v = <value_t>s_ab[b]
                            s_ab[b] = 0
                        else:
                            if count[b] >= min_support and b != a:
                                s = _score(measure, count[b],
                                           s_ab[b] if need_products else 0.0,
                                           s_aa[b] if need_squares else 0.0,
                                           s_bb[b] if need_squares else 0.0,
                                           s_a[b] if need_sums else 0.0,
                                           s_b[b] if need_sums else 0.0,
                                           s_dd[b] if need_diffs else 0.0,
                                           x_indptr[a + 1] - x_indptr[a] if needs_lengths else 0,
                                           x_indptr[b + 1] - x_indptr[b] if needs_lengths else 0)
                                if shrinkage != 0:
                                    if shrink_mode == SHRINK_BASELINE:
                                        factor = (count[b] - 1) / (count[b] - 1 + shrinkage)
                                    else:
                                        factor = count[b] / (count[b] + shrinkage)
                                    s = s * factor
                                v = <value_t>s
                            count[b] = 0
                            if need_products:
                                s_ab[b] = 0
                            if need_squares:
                                s_aa[b] = 0
                                s_bb[b] = 0
                            if need_sums:
                                s_a[b] = 0
                                s_b[b] = 0
                            if need_diffs:
                                s_dd[b] = 0
                        if v == 0:
                            continue
                        _offer(cand_scores, cand_ids, &size, &floor, room, cap, v, <index_t>b)
                        if mirror == MIRROR_ALL and count_only:
                            cursor[th * n + b] += 1
                        elif mirror == MIRROR_TOP:
                            given_at = th * n + b
                            _offer(&given_scores[given_at * given_room],
                                   &given_ids[given_at * given_room], &given_size[given_at],
                                   &given_floor[given_at], given_room, cap, v, <index_t>a)
                    if not count_only and size > cap:
                        select_top(cand_scores, cand_ids, size, cap)
                        size = cap
                    if mirror == MIRROR_NONE and not count_only and size > 0:
                        rank_sort(cand_scores, cand_ids, size)
                    out_counts[a] = size
                    for t in range(size if not count_only else 0):
                        out_scores[start + t] = cand_scores[t]
                        out_ids[start + t] = cand_ids[t]
                if mirror == MIRROR_ALL and not count_only:
                    # count what each thread will hand to each row b in the pass below
                    # (same rows per thread: static schedule); no atomics, no contention
                    for a in prange(n, schedule="static", chunksize=16):
                        for t in range(out_indptr[a], out_indptr[a] + out_counts[a]):
                            cursor[th * n + out_ids[t]] += 1
                if mirror == MIRROR_ALL:
                    # each thread's hand-overs to row b go after b's own entries and those
                    # of the threads before it; the counts become write cursors
                    for b in prange(n, schedule="static"):
                        offset = out_indptr[b] + out_counts[b]
                        for other in range(num_threads):
                            given_at = other * n + b
                            offset = offset + cursor[given_at]
                            cursor[given_at] = offset - cursor[given_at]
                        if count_only:
                            out_counts[b] = offset - out_indptr[b]
                if mirror == MIRROR_ALL and not count_only:
                    # the same rows per thread as when counting: (a, score) to each row b
                    for a in prange(n, schedule="static", chunksize=16):
                        start = out_indptr[a]
                        for t in range(out_counts[a]):
                            b = out_ids[start + t]
                            given_at = cursor[th * n + b]
                            out_scores[given_at] = out_scores[start + t]
                            out_ids[given_at] = <index_t>a
                            cursor[th * n + b] = given_at + 1
                if mirror != MIRROR_NONE and not count_only:
                    # every score is in: merge (MIRROR_TOP) and sort each row
                    for a in prange(n, schedule="dynamic", chunksize=16):
                        start = out_indptr[a]
                        if mirror == MIRROR_ALL:  # the last thread's cursor ends the row
                            out_counts[a] = cursor[(num_threads - 1) * n + a] - start
                        size = out_counts[a]
                        if mirror == MIRROR_TOP:
                            cap = out_indptr[a + 1] - start
                            for t in range(size):
                                cand_scores[t] = out_scores[start + t]
                                cand_ids[t] = out_ids[start + t]
                            for other in range(num_threads):
                                given_at = other * n + a
                                for t in range(given_size[given_at]):
                                    cand_scores[size] = given_scores[given_at * given_room + t]
                                    cand_ids[size] = given_ids[given_at * given_room + t]
                                    size = size + 1
                            if size > cap:
                                select_top(cand_scores, cand_ids, size, cap)
                                size = cap
                            rank_sort(cand_scores, cand_ids, size)
                            for t in range(size):
                                out_scores[start + t] = cand_scores[t]
                                out_ids[start + t] = cand_ids[t]
                            out_counts[a] = size
                        elif size >= RADIX_MIN:  # cand_* are free: the radix sort's scratch
                            radix_rank_sort(&out_scores[start], &out_ids[start], size,
                                            cand_scores, cand_ids, keys, tmp_keys)
                        else:
                            rank_sort(&out_scores[start], &out_ids[start], size)
            finally:
                free(count)
                free(touched)
                free(s_ab)
                free(s_aa)
                free(s_bb)
                free(s_a)
                free(s_b)
                free(s_dd)
                free(cand_scores)
                free(cand_ids)
                free(keys)
                free(tmp_keys)
    finally:
        free(cursor)
        free(given_scores)
        free(given_ids)
        free(given_floor)
        free(given_size)


def compact_rows(const int64_t[::1] slots, const int64_t[::1] counts,
                 const index_t[::1] ids, const value_t[::1] scores,
                 const int64_t[::1] out_indptr, index_t[::1] out_ids, value_t[::1] out_scores,
                 int num_threads):
    """Move the first ``counts[a]`` entries of each row's slot range to ``out_indptr[a]``.

    Contract: ``out_indptr`` is the running sum of ``counts`` and every count fits its
    slot range; outputs are overwritten.  Twin of ``reference.similarity.compact_rows``.
    """
    cdef Py_ssize_t n = counts.shape[0], a, t
    if slots.shape[0] != n + 1 or out_indptr.shape[0] != n + 1:
        raise ValueError("compact_rows: slots and out_indptr must have n + 1 entries")
    for a in prange(n, nogil=True, schedule="static", num_threads=num_threads):
        for t in range(counts[a]):
            out_ids[out_indptr[a] + t] = ids[slots[a] + t]
            out_scores[out_indptr[a] + t] = scores[slots[a] + t]


def transpose(const value_t[::1] data, const index_t[::1] indices, const index_t[::1] indptr,
              value_t[::1] t_data, index_t[::1] t_indices, index_t[::1] t_indptr,
              int num_threads):
    """CSR of the transpose of a CSR matrix (scipy's ``tocsc`` arrays), in parallel.

    Contract: ``t_indptr`` has n_cols + 1 entries, ``t_data`` / ``t_indices`` nnz; each
    output row lists its columns in ascending order, as ``tocsc`` does.  Every thread
    takes one contiguous block of rows, counts its entries per column, and writes them
    after those of the threads before it, so blocks in row order keep rows sorted.
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, n_cols = t_indptr.shape[0] - 1
    cdef Py_ssize_t r, c, p, th, other, pos, offset, once
    cdef Py_ssize_t* cursor
    if t_data.shape[0] != indices.shape[0] or t_indices.shape[0] != indices.shape[0]:
        raise ValueError("transpose: t_data and t_indices must have nnz entries")
    num_threads = max(num_threads, 1)
    cursor = <Py_ssize_t*>calloc(num_threads * n_cols + 1, sizeof(Py_ssize_t))
    if cursor == NULL:
        raise MemoryError("transpose: cannot allocate the per-thread column counts")
    try:
        with nogil, parallel(num_threads=num_threads):
            th = fastrec_omp_thread_num()
            for r in prange(n_rows, schedule="static"):
                for p in range(indptr[r], indptr[r + 1]):
                    cursor[th * n_cols + indices[p]] += 1
            for once in prange(1, schedule="static"):  # one thread: the column starts
                offset = 0
                for c in range(n_cols):
                    t_indptr[c] = offset
                    for other in range(num_threads):
                        pos = cursor[other * n_cols + c]
                        cursor[other * n_cols + c] = offset
                        offset = offset + pos
                t_indptr[n_cols] = offset
            for r in prange(n_rows, schedule="static"):  # the same blocks as counted
                for p in range(indptr[r], indptr[r + 1]):
                    c = indices[p]
                    pos = cursor[th * n_cols + c]
                    t_indices[pos] = <index_t>r
                    t_data[pos] = data[p]
                    cursor[th * n_cols + c] = pos + 1
    finally:
        free(cursor)
