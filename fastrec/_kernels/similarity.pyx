"""Sparse all-pairs similarity with top-k neighbours (Gustavson row accumulation).

Row ``a`` of X (n x m, CSR) is compared with every row sharing a column with it by
walking X[a] and, for each of its columns c, the column c (row c of X^T, CSR): the
co-rated statistics of every touched pair (a, b) gather in per-thread scratch of
length n, the scores of the touched rows go through a bounded buffer (whenever it fills
up, a histogram of its scores finds the best k: ``_select_best``), and the scratch is
reset for the next row.

Every measure is symmetric, bit for bit: a pair's statistics are sums over the same
columns in the same order from either side, and the score formulas only swap the
operands of commutative products.  So in the mirrored modes row a walks only the
rows b < a (the head of each sorted column), and each score is handed to both rows,
which halves the accumulation.  Top-k goes through ``similarity_topk``; k=None
(every pair) through ``similarity_lower`` and ``mirror_rows``.
Memory: O(nnz + n*k + threads*n), plus threads*n*2k with MIRROR_TOP; no n x n matrix.
"""
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, sqrt
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from fastrec._kernels._heap cimport index_t, rank_before, rank_sort, select_top, value_t
from fastrec._kernels._openmp cimport fastrec_omp_thread_num
from fastrec._kernels._prefetch cimport fastrec_prefetch, prefetch_entries

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

cdef enum:  # how similarity_topk scores each unordered pair
    MIRROR_NONE = 0      # twice, once from each row
    MIRROR_TOP = 2       # once; rows keep their best k, in k-wide slots

MEASURES = {"dot": DOT, "jaccard": JACCARD, "msd": MSD,
            "corated_cosine": CORATED_COSINE, "pearson": PEARSON, "dot_positive": DOT_POSITIVE}
SHRINK_MODES = {"support": SHRINK_SUPPORT, "baseline": SHRINK_BASELINE}
MIRROR_MODES = {"none": MIRROR_NONE, "top": MIRROR_TOP}

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define fastrec_ctz64(x) __builtin_ctzll(x)
    #else
    static int fastrec_ctz64(unsigned long long x) { int i = 0; while (!(x & 1)) { x >>= 1; i++; } return i; }
    #endif
    /* In-place inclusive prefix sum; SSE2 adds four counts a step (a scalar loop is one
       dependent add per count, and the row sort's bucket starts are thousands). */
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    static void fastrec_prefix_sum_u32(uint32_t* a, Py_ssize_t n) {
        Py_ssize_t i = 0;
        uint32_t total = 0;
    #if defined(__SSE2__)
        __m128i carry = _mm_setzero_si128(), x;
        for (; i + 4 <= n; i += 4) {
            x = _mm_loadu_si128((const __m128i*)(a + i));
            x = _mm_add_epi32(x, _mm_slli_si128(x, 4));
            x = _mm_add_epi32(x, _mm_slli_si128(x, 8));
            x = _mm_add_epi32(x, carry);
            _mm_storeu_si128((__m128i*)(a + i), x);
            carry = _mm_shuffle_epi32(x, 0xFF);
        }
        total = (uint32_t)_mm_cvtsi128_si32(carry);
    #endif
        for (; i < n; i++) {
            total += a[i];
            a[i] = total;
        }
    }
    /* The largest and smallest of the first n - n % 4 scores into *hi and *lo (left as
       they are when n < 4; NaN is skipped, as by v > hi ? v : hi), four at a time with
       SSE2; returns how many it read (0 without SSE2). */
    static Py_ssize_t fastrec_range_f32_by_4(const float* s, Py_ssize_t n, double* hi, double* lo) {
        Py_ssize_t i = 0;
    #if defined(__SSE2__)
        __m128 high = _mm_set1_ps((float)*hi), low = _mm_set1_ps((float)*lo), x;
        float lanes[4];
        if (n < 4)
            return 0;
        for (; i + 4 <= n; i += 4) {
            x = _mm_loadu_ps(s + i);
            high = _mm_max_ps(x, high);  /* x > high ? x : high, lane by lane */
            low = _mm_min_ps(x, low);
        }
        _mm_storeu_ps(lanes, high);
        for (int j = 0; j < 4; j++) *hi = lanes[j] > *hi ? lanes[j] : *hi;
        _mm_storeu_ps(lanes, low);
        for (int j = 0; j < 4; j++) *lo = lanes[j] < *lo ? lanes[j] : *lo;
    #endif
        return i;
    }
    /* The first j in [i, n) with s[j] > s[j - 1] (n if none; i >= 1), four float32 or
       two float64 pairs a compare with SSE2: the insertion pass after the row sort's
       buckets finds a rise at about one entry in thirty, and a scalar compare a step
       cost it most of its time.  One definition for both types: */
    #if defined(__SSE2__)
    #define FASTREC_RISES_BY_SSE2(lanes, load, cmpgt, movemask) \
        for (; i + lanes <= n; i += lanes) { \
            int rises = movemask(cmpgt(load(s + i), load(s + i - 1))); \
            if (rises) return i + fastrec_ctz64((unsigned)rises); \
        }
    #else
    #define FASTREC_RISES_BY_SSE2(lanes, load, cmpgt, movemask)
    #endif
    static Py_ssize_t fastrec_next_rise_f32(const float* s, Py_ssize_t i, Py_ssize_t n) {
        FASTREC_RISES_BY_SSE2(4, _mm_loadu_ps, _mm_cmpgt_ps, _mm_movemask_ps)
        for (; i < n; i++) if (s[i] > s[i - 1]) return i;
        return n;
    }
    static Py_ssize_t fastrec_next_rise_f64(const double* s, Py_ssize_t i, Py_ssize_t n) {
        FASTREC_RISES_BY_SSE2(2, _mm_loadu_pd, _mm_cmpgt_pd, _mm_movemask_pd)
        for (; i < n; i++) if (s[i] > s[i - 1]) return i;
        return n;
    }
    /* out[i] = c / (d * area + c) in float32 for the packed MSD words c | d << 32 (c, d
       >= 0), four a step with SSE2: the k=None dense rows' one division a pair, where the
       caller knows each c and d * area + c exact in float32 (then the float32 quotient is
       the double one rounded, as float64 has over 2 * 24 + 2 bits).  0 / 0 is NaN. */
    static void fastrec_msd_scores_f32(const int64_t* words, Py_ssize_t n, float area,
                                       float* out) {
        Py_ssize_t i = 0;
    #if defined(__SSE2__)
        __m128 scale = _mm_set1_ps(area), low, high, counts, sums;
        for (; i + 4 <= n; i += 4) {
            low = _mm_castsi128_ps(_mm_loadu_si128((const __m128i*)(words + i)));
            high = _mm_castsi128_ps(_mm_loadu_si128((const __m128i*)(words + i + 2)));
            counts = _mm_cvtepi32_ps(_mm_castps_si128(_mm_shuffle_ps(low, high, _MM_SHUFFLE(2, 0, 2, 0))));
            sums = _mm_cvtepi32_ps(_mm_castps_si128(_mm_shuffle_ps(low, high, _MM_SHUFFLE(3, 1, 3, 1))));
            _mm_storeu_ps(out + i, _mm_div_ps(counts, _mm_add_ps(_mm_mul_ps(sums, scale), counts)));
        }
    #endif
        for (; i < n; i++) {
            float count = (float)(int32_t)words[i], sum = (float)(int32_t)(words[i] >> 32);
            out[i] = count / (sum * area + count);
        }
    }
    """
    void fastrec_msd_scores_f32(const int64_t* words, Py_ssize_t n, float area, float* out) noexcept nogil
    int fastrec_ctz64(uint64_t x) noexcept nogil
    Py_ssize_t fastrec_next_rise_f32(const float* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil
    Py_ssize_t fastrec_next_rise_f64(const double* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil
    void fastrec_prefix_sum_u32(uint32_t* a, Py_ssize_t n) noexcept nogil
    Py_ssize_t fastrec_range_f32_by_4(const float* s, Py_ssize_t n, double* hi, double* lo) noexcept nogil

cdef enum:
    # a row of X walks the rows of X^T of its columns, scattered over memory.  While X^T
    # fits a core's cache, the first line of each is fetched LINE_AHEAD columns before its
    # walk; past that size (WHOLE_ROWS_BYTES) each is fetched whole ROW_AHEAD columns
    # before, and its offset in t_indptr OFFSET_AHEAD columns before, so that the row's
    # fetch need not wait for it
    LINE_AHEAD = 4
    ROW_AHEAD = 8
    OFFSET_AHEAD = 24
    WHOLE_ROWS_BYTES = 1 << 20
PREFETCH_WHOLE_ROWS_BYTES = WHOLE_ROWS_BYTES  # seen by the tests, which cover both sides


cdef inline bint _whole_rows(Py_ssize_t t_entries, bint coded, Py_ssize_t index_size,
                             Py_ssize_t value_size) noexcept nogil:
    """Whether rows of X^T are prefetched whole (_prefetch_ahead): when X^T's indices and
    values (or, ``coded``, its ``Coded.t_entries``) outgrow a core's cache.  In-process A/B against the first line 4
    ahead, 2 threads: item cosine top-50 on 1M ratings 30-35% faster, on 10M 13-19%;
    ml-100k k=None, whose X^T stays in cache, 1-10% slower, so it keeps the first line."""
    return t_entries * (sizeof(uint32_t) if coded else index_size + value_size) > WHOLE_ROWS_BYTES


cdef inline void _prefetch_ahead(const index_t* x_indices, Py_ssize_t p, Py_ssize_t end,
                                 const index_t* t_indptr, const index_t* walk_stops,
                                 const index_t* t_indices, const void* t_values,
                                 Py_ssize_t value_size, bint whole) noexcept nogil:
    """Fetch ahead what X's entries walk of X^T (see LINE_AHEAD): the first line of the
    row X's entry p + LINE_AHEAD walks, or with ``whole`` all the row entry p + ROW_AHEAD
    walks (up to ``walk_stops[p + ROW_AHEAD]`` when given, else to the row's end) and
    entry p + OFFSET_AHEAD's offset: its ``t_indices`` unless NULL, its values unless
    ``value_size`` is 0.  No entry at or past ``end`` is fetched for: the
    running top-k passes X's end, so that fetching runs on into the rows that follow (a
    thread takes its chunk's rows in order); the k=None rows, taken in descending order,
    pass their own end."""
    cdef Py_ssize_t c, q, stop
    if not whole:
        if p + LINE_AHEAD < end:
            q = t_indptr[x_indices[p + LINE_AHEAD]]
            if t_indices != NULL:
                fastrec_prefetch(&t_indices[q])
            if value_size > 0:
                fastrec_prefetch(<const char*>t_values + q * value_size)
        return
    if p + OFFSET_AHEAD < end:
        fastrec_prefetch(&t_indptr[x_indices[p + OFFSET_AHEAD]])
    if p + ROW_AHEAD < end:
        c = x_indices[p + ROW_AHEAD]
        q = t_indptr[c]
        stop = walk_stops[p + ROW_AHEAD] if walk_stops != NULL else t_indptr[c + 1]
        prefetch_entries(t_indices, t_values, q, stop,
                         sizeof(index_t) if t_indices != NULL else 0, value_size)


cdef inline double _score(int measure, int32_t n_ab, double s_ab, double s_aa, double s_bb,
                          double s_a, double s_b, double s_dd, Py_ssize_t len_a,
                          Py_ssize_t len_b) noexcept nogil:
    cdef double den
    if measure == DOT:
        return s_ab
    if measure == JACCARD:
        return <double>n_ab / <double>(len_a + len_b - n_ab)

    if measure == MSD:
        return n_ab / (s_dd + n_ab)  # = 1 / (s_dd / n_ab + 1), one division and rounding
    if measure == CORATED_COSINE:
        den = sqrt(s_aa * s_bb)
        return s_ab / den if den != 0 else 0.0
    # PEARSON, in Surprise's form
    den = sqrt((n_ab * s_aa - s_a * s_a) * (n_ab * s_bb - s_b * s_b))
    return (n_ab * s_ab - s_a * s_b) / den if den != 0 else 0.0


cdef struct Selection:  # a thread's scratch for _select_best and _sorted_best
    void* tmp_s          # m + 1 scores of the kernel's dtype, for rows of up to m pairs
    void* tmp_ids        # m + 1 ids
    uint32_t* keys       # m
    uint32_t* counts     # n_buckets + 1
    Py_ssize_t n_buckets  # a power of two, at least 4 * SELECT_BUCKETS and 4k


cdef Selection _new_selection(Py_ssize_t m, Py_ssize_t k, Py_ssize_t value_size,
                              Py_ssize_t index_size) noexcept nogil:
    """Scratch for rows of up to m pairs and k kept (``_selection_ok`` tells whether it
    was allocated; free it with ``_free_selection``).  Assign it whole: in a parallel
    block that gives each thread its own."""
    cdef Selection scratch
    scratch.n_buckets = 4 * SELECT_BUCKETS
    while scratch.n_buckets < 4 * k:
        scratch.n_buckets = 2 * scratch.n_buckets
    scratch.tmp_s = malloc((m + 1) * value_size)
    scratch.tmp_ids = malloc((m + 1) * index_size)
    scratch.keys = <uint32_t*>malloc((m + 1) * sizeof(uint32_t))
    scratch.counts = <uint32_t*>malloc((scratch.n_buckets + 1) * sizeof(uint32_t))
    return scratch


cdef inline bint _selection_ok(const Selection* scratch) noexcept nogil:
    return (scratch.tmp_s != NULL and scratch.tmp_ids != NULL and scratch.keys != NULL
            and scratch.counts != NULL)


cdef void _free_selection(Selection* scratch) noexcept nogil:
    free(scratch.tmp_s)
    free(scratch.tmp_ids)
    free(scratch.keys)
    free(scratch.counts)


cdef inline void _select_best(value_t* s, index_t* ids, Py_ssize_t m, Py_ssize_t k,
                              const Selection* scratch) noexcept nogil:
    """Move the k best of m > k >= 1 (score, id) pairs to the front, in no order.

    A histogram of the scores in SELECT_BUCKETS steps between the highest and the
    lowest finds the bucket holding the k-th best; one pass gathers the pairs above it
    and those in it, and a quickselect picks among the latter only: a few passes over
    m, where a quickselect over m partitions several times.  Scores all equal (or too
    far apart to scale) go to the quickselect whole.
    """
    cdef value_t* tmp_s = <value_t*>scratch.tmp_s
    cdef index_t* tmp_ids = <index_t*>scratch.tmp_ids
    cdef uint32_t* keys = scratch.keys
    cdef uint32_t* counts = scratch.counts
    cdef Py_ssize_t i, front, boundary, rest, trash = m
    cdef uint32_t key, j, in_front, at_boundary
    cdef double hi, lo, scale
    _score_range(s, m, &hi, &lo)
    scale = _key_scale(SELECT_BUCKETS - 1, hi, lo)
    if not scale > 0:
        select_top(s, ids, m, k)
        return
    # four histograms, a pair in each by turn: most pairs share a few low buckets, and
    # one count taking every add would make each add wait for the last
    memset(counts, 0, 4 * SELECT_BUCKETS * sizeof(uint32_t))
    for i in range(m):
        key = <uint32_t>((hi - <double>s[i]) * scale)
        key = key if key < SELECT_BUCKETS - 1 else SELECT_BUCKETS - 1
        keys[i] = key
        counts[(i & 3) * SELECT_BUCKETS + key] += 1
    for j in range(SELECT_BUCKETS):
        counts[j] += (counts[SELECT_BUCKETS + j] + counts[2 * SELECT_BUCKETS + j]
                      + counts[3 * SELECT_BUCKETS + j])
    # the k-th best's bucket j, from the low end where most pairs are
    rest = m
    j = SELECT_BUCKETS - 1
    while rest - counts[j] >= k:
        rest -= counts[j]
        j -= 1
    # gather: higher buckets to [0, front), bucket j after them, the rest to a slot past
    # the end (no branch: it would be mispredicted about as often as not)
    boundary = rest - counts[j]
    front = 0
    for i in range(m):
        key = keys[i]
        in_front = key < j
        at_boundary = key == j
        rest = trash + in_front * (front - trash) + at_boundary * (boundary - trash)
        tmp_s[rest] = s[i]
        tmp_ids[rest] = ids[i]
        front += in_front
        boundary += at_boundary
    select_top(&tmp_s[front], &tmp_ids[front], boundary - front, k - front)
    memcpy(s, tmp_s, k * sizeof(value_t))
    memcpy(ids, tmp_ids, k * sizeof(index_t))


cdef inline Py_ssize_t _sorted_best(value_t* s, index_t* ids, Py_ssize_t m, Py_ssize_t k,
                                    const Selection* scratch) noexcept nogil:
    """Move the k best of m (score, id) pairs in any order to the front, sorted (higher
    score first, ties to the lower id); returns how many: min(m, k).  The k are bucket
    sorted, then an insertion pass by score and id."""
    cdef double hi, lo
    if m <= 0 or k <= 0:
        return 0
    if m > k:
        _select_best(s, ids, m, k, scratch)
        m = k
    _score_range(s, m, &hi, &lo)
    if m < SMALL_ROW or not (hi > lo and hi - lo < INFINITY):
        rank_sort(s, ids, m)
    else:
        _bucket_rank_sort(s, ids, m, hi, lo, scratch.n_buckets, <value_t*>scratch.tmp_s,
                          <index_t*>scratch.tmp_ids, scratch.keys, scratch.counts, True)
    return m


cdef inline value_t _keep_best(value_t* scores, index_t* ids, Py_ssize_t size,
                               Py_ssize_t cap, const Selection* scratch) noexcept nogil:
    """Keep the best cap of size candidates at the front; returns the worst kept score.

    Every dropped candidate ranks below cap others, and so will any later candidate
    scoring below the returned score: it can be dropped on arrival.
    """
    cdef Py_ssize_t t
    cdef value_t worst
    _select_best(scores, ids, size, cap, scratch)
    worst = scores[0]
    for t in range(1, cap):
        if scores[t] < worst:
            worst = scores[t]
    return worst


cdef inline void _offer(value_t* scores, index_t* ids, Py_ssize_t* size, value_t* floor,
                        Py_ssize_t room, Py_ssize_t cap, value_t v, index_t b,
                        const Selection* scratch) noexcept nogil:
    """Append (v, b) to a bounded buffer unless it scores below floor (see _keep_best)."""
    if v >= floor[0]:
        scores[size[0]] = v
        ids[size[0]] = b
        size[0] += 1
        if size[0] == room:
            floor[0] = _keep_best(scores, ids, size[0], cap, scratch)
            size[0] = cap


def similarity_topk(const value_t[::1] x_data, const index_t[::1] x_indices,
                    const index_t[::1] x_indptr,
                    const value_t[::1] t_data, const index_t[::1] t_indices,
                    const index_t[::1] t_indptr,
                    int measure, double shrinkage, int shrink_mode, int64_t min_support,
                    const int64_t[::1] out_indptr,
                    index_t[::1] out_ids, value_t[::1] out_scores, int64_t[::1] out_counts,
                    int mirror, int num_threads, bint packed=True):
    """Top neighbours of every row of X; unchecked kernel behind ``fastrec.similarity``.

    Contract: X given as CSR (``x_*``) and as the CSR of its transpose (``t_*``), both
    with one index dtype and one value dtype, indices sorted, rows shorter than 2**31;
    row a writes at most ``out_indptr[a+1] - out_indptr[a]``
    neighbours into ``out_ids`` / ``out_scores`` from ``out_indptr[a]`` on, sorted by
    score descending (ties: lower id), and their number into ``out_counts[a]``.
    Pairs with fewer than ``min_support`` co-rated columns, zero scores and the row
    itself are left out.  ``mirror`` (MIRROR_MODES) MIRROR_TOP scores each unordered
    pair once; it needs slots of one width k >= 1 and threads*n*2k extra (value, index)
    pairs.
    Accumulates in double, or for MSD, co-rated cosine and Pearson of values in whole
    or half steps with ``packed``, in packed integers (``Coded``; the same sums
    exactly, so the same scores; False keeps doubles, for tests); the result does not
    depend on ``num_threads``.
    """
    cdef Py_ssize_t n = x_indptr.shape[0] - 1
    cdef Py_ssize_t a, b, c, p, q, t, n_touched, size, cap, room, limit, th, other
    cdef Py_ssize_t given_room = 0
    cdef int64_t start
    cdef double xa, xb, s
    cdef value_t v, floor
    cdef Py_ssize_t widest = 0
    cdef Selection scratch
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
    # packed sums: the codes and table, and each thread's words (_words a row)
    cdef Coded codes
    cdef bint coded = False
    cdef Py_ssize_t words = 0
    cdef int64_t* packed_acc
    cdef const int64_t* adds
    cdef uint32_t entry
    cdef int32_t n_ab
    # MIRROR_TOP: thread th's bounded buffer of the scores rows a > b hand to row b
    cdef value_t* given_scores = NULL
    cdef index_t* given_ids = NULL
    cdef value_t* given_floor = NULL
    cdef Py_ssize_t* given_size = NULL
    cdef Py_ssize_t given_at
    cdef bint whole_rows
    if out_indptr.shape[0] != n + 1 or out_counts.shape[0] != n:
        raise ValueError("similarity_topk: out_indptr and out_counts must match X's rows")
    if mirror not in (MIRROR_NONE, MIRROR_TOP):
        raise ValueError(f"similarity_topk: unknown mirror mode {mirror}")
    if n == 0:
        return
    if mirror == MIRROR_TOP and out_indptr[1] - out_indptr[0] < 1:
        raise ValueError("similarity_topk: MIRROR_TOP needs k >= 1")
    for a in range(n):
        widest = max(widest, out_indptr[a + 1] - out_indptr[a])
    coded = _start_codes(measure, packed, x_data, x_indptr, t_indices.shape[0], &codes) > 0
    whole_rows = _whole_rows(t_indices.shape[0], coded, sizeof(index_t), sizeof(value_t))
    try:
        if mirror == MIRROR_TOP:
            cap = out_indptr[1] - out_indptr[0]
            num_threads = max(num_threads, 1)
            given_room = 2 * cap
            given_scores = <value_t*>malloc(num_threads * n * given_room * sizeof(value_t))
            given_ids = <index_t*>malloc(num_threads * n * given_room * sizeof(index_t))
            given_floor = <value_t*>malloc(num_threads * n * sizeof(value_t))
            given_size = <Py_ssize_t*>calloc(num_threads * n, sizeof(Py_ssize_t))
            if given_scores == NULL or given_ids == NULL or given_floor == NULL or given_size == NULL:
                raise MemoryError("similarity_topk: cannot allocate the mirrored candidate buffers")
            for t in range(num_threads * n):
                given_floor[t] = -INFINITY
        if coded:  # the packed words hold every sum; X's values are on the coding's grid
            words = _words(measure)
            need_products = need_squares = need_sums = need_diffs = False
            _code_values(&x_data[0], <const index_t*>NULL, x_indptr[n], &codes,
                         <uint8_t*>codes.x_codes, NULL)
            if not _code_values(&t_data[0], &t_indices[0], t_indices.shape[0], &codes, NULL,
                                <uint32_t*>codes.t_entries):
                raise ValueError("similarity_topk: T's values are not X's")
        with nogil, parallel(num_threads=num_threads):
            count = <int32_t*>calloc(n, sizeof(int32_t)) if measure != DOT_POSITIVE and not coded else NULL
            packed_acc = <int64_t*>calloc(n * words, sizeof(int64_t)) if coded else NULL
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
            scratch = _new_selection(n, widest, sizeof(value_t), sizeof(index_t))
            th = fastrec_omp_thread_num()
            try:
                if ((count == NULL and measure != DOT_POSITIVE and not coded)
                        or (coded and packed_acc == NULL) or not _selection_ok(&scratch)
                        or touched == NULL or cand_scores == NULL or cand_ids == NULL or (need_products and s_ab == NULL)
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
                    # full, the best cap are kept and floor rises
                    floor = -INFINITY
                    room = 4 * cap if 0 < 4 * cap < n else n
                    if measure == DOT_POSITIVE:  # the default cosine: one scratch array
                        for p in range(x_indptr[a], x_indptr[a + 1]):
                            c = x_indices[p]
                            xa = x_data[p]
                            _prefetch_ahead(&x_indices[0], p, x_indptr[n], &t_indptr[0], NULL,
                                            &t_indices[0], &t_data[0], sizeof(value_t), whole_rows)
                            for q in range(t_indptr[c], t_indptr[c + 1]):
                                b = t_indices[q]
                                if b >= limit:  # the column's rows are sorted
                                    break
                                touched[n_touched] = b
                                n_touched = n_touched + (s_ab[b] == 0)
                                s_ab[b] += xa * t_data[q]
                    elif measure == DOT or measure == JACCARD:  # the count, and DOT's one sum
                        # (Jaccard neither reads nor fetches T's values)
                        for p in range(x_indptr[a], x_indptr[a + 1]):
                            c = x_indices[p]
                            xa = x_data[p]
                            _prefetch_ahead(&x_indices[0], p, x_indptr[n], &t_indptr[0], NULL,
                                            &t_indices[0], &t_data[0],
                                            sizeof(value_t) if measure == DOT else 0, whole_rows)
                            for q in range(t_indptr[c], t_indptr[c + 1]):
                                b = t_indices[q]
                                if b >= limit:  # the column's rows are sorted
                                    break
                                touched[n_touched] = b  # kept only when b is new: no branch
                                n_touched = n_touched + (count[b] == 0)
                                count[b] += 1
                                if measure == DOT:
                                    s_ab[b] += xa * t_data[q]
                    elif coded:  # packed words, one add each from the pair's table entry
                        for p in range(x_indptr[a], x_indptr[a + 1]):
                            c = x_indices[p]
                            adds = &codes.table[codes.x_codes[p] * codes.levels * words]
                            _prefetch_ahead(&x_indices[0], p, x_indptr[n], &t_indptr[0], NULL,
                                            NULL, codes.t_entries, sizeof(uint32_t), whole_rows)
                            for q in range(t_indptr[c], t_indptr[c + 1]):
                                entry = codes.t_entries[q]
                                if entry >> CODE_BITS >= limit:  # the column's rows are sorted
                                    break
                                n_touched = _add_coded(measure, True, packed_acc, words, adds,
                                                       entry, touched, n_touched)
                    else:  # the general loop: every statistic the measure needs
                        for p in range(x_indptr[a], x_indptr[a + 1]):
                            c = x_indices[p]
                            xa = x_data[p]
                            _prefetch_ahead(&x_indices[0], p, x_indptr[n], &t_indptr[0], NULL,
                                            &t_indices[0], &t_data[0], sizeof(value_t), whole_rows)
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
                        else:  # score a supported pair, reset its scratch
                            n_ab = <int32_t>_low_half(packed_acc[b * words]) if coded else count[b]
                            if n_ab >= min_support and b != a:
                                if coded:
                                    s = _packed_score(measure, &packed_acc[b * words], codes.step)
                                else:
                                    s = _score(measure, n_ab,
                                               s_ab[b] if need_products else 0.0,
                                               s_aa[b] if need_squares else 0.0,
                                               s_bb[b] if need_squares else 0.0,
                                               s_a[b] if need_sums else 0.0,
                                               s_b[b] if need_sums else 0.0,
                                               s_dd[b] if need_diffs else 0.0,
                                               x_indptr[a + 1] - x_indptr[a] if needs_lengths else 0,
                                               x_indptr[b + 1] - x_indptr[b] if needs_lengths else 0)
                                v = <value_t>_shrunk(s, n_ab, shrinkage, shrink_mode)
                            if coded:
                                memset(&packed_acc[b * words], 0, words * sizeof(int64_t))
                            else:
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
                        _offer(cand_scores, cand_ids, &size, &floor, room, cap, v, <index_t>b,
                               &scratch)
                        if mirror == MIRROR_TOP:
                            given_at = th * n + b
                            _offer(&given_scores[given_at * given_room],
                                   &given_ids[given_at * given_room], &given_size[given_at],
                                   &given_floor[given_at], given_room, cap, v, <index_t>a,
                                   &scratch)
                    size = _sorted_best(cand_scores, cand_ids, size, cap, &scratch)
                    out_counts[a] = size
                    for t in range(size):
                        out_scores[start + t] = cand_scores[t]
                        out_ids[start + t] = cand_ids[t]
                if mirror == MIRROR_TOP:
                    # every score is in: merge each row's best with what it was handed, sort
                    for a in prange(n, schedule="dynamic", chunksize=16):
                        start = out_indptr[a]
                        size = out_counts[a]
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
                        size = _sorted_best(cand_scores, cand_ids, size, cap, &scratch)
                        for t in range(size):
                            out_scores[start + t] = cand_scores[t]
                            out_ids[start + t] = cand_ids[t]
                        out_counts[a] = size
            finally:
                free(count)
                free(packed_acc)
                free(touched)
                free(s_ab)
                free(s_aa)
                free(s_bb)
                free(s_a)
                free(s_b)
                free(s_dd)
                free(cand_scores)
                free(cand_ids)
                _free_selection(&scratch)
    finally:
        free(given_scores)
        free(given_ids)
        free(given_floor)
        free(given_size)
        _free_codes(&codes)


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


cdef enum:
    TRANSPOSE_THREADED_ENTRIES = 1 << 17


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
    # small ones on one thread (ml-100k's 80,000 entries: 0.25 against 0.43 ms on two;
    # 200,000 entries over 20,000 columns: 2.9 against 1.3)
    num_threads = max(num_threads, 1) if indices.shape[0] >= TRANSPOSE_THREADED_ENTRIES else 1
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


def scale_to_unit_length(const double[::1] values, const index_t[::1] indices,
                         const index_t[::1] indptr, Py_ssize_t n_columns, bint by_column,
                         value_t[::1] out, int num_threads):
    """``out``: a CSR matrix's values scaled to unit length by row, or by column with
    ``by_column`` (all-zero ones stay zero), cast to out's dtype.

    Contract: indices in [0, n_columns).  Twin of
    ``reference.similarity.scale_to_unit_length``, bit for bit: each sum of squares in
    double in entry order (column sums in one pass, as ``bincount``), each value times
    the reciprocal of its norm.
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, r, p, g
    cdef Py_ssize_t n_groups = n_columns if by_column else n_rows
    cdef double total, norm
    cdef double* factor
    if values.shape[0] != indptr[n_rows] or out.shape[0] != values.shape[0] or indices.shape[0] < values.shape[0]:
        raise ValueError("scale_to_unit_length: values, indices and out must hold the matrix's entries")
    factor = <double*>calloc(max(n_groups, 1), sizeof(double))
    if factor == NULL:
        raise MemoryError("scale_to_unit_length: cannot allocate the norms")
    try:
        with nogil:
            if by_column:
                for p in range(values.shape[0]):
                    factor[indices[p]] += values[p] * values[p]
            else:
                for r in prange(n_rows, schedule="static", num_threads=num_threads):
                    total = 0.0
                    for p in range(indptr[r], indptr[r + 1]):
                        total = total + values[p] * values[p]
                    factor[r] = total
            for g in range(n_groups):
                norm = sqrt(factor[g])
                factor[g] = 1.0 / norm if norm > 0 else 0.0
            for r in prange(n_rows, schedule="static", num_threads=num_threads):
                for p in range(indptr[r], indptr[r + 1]):
                    out[p] = <value_t>(values[p] * factor[indices[p] if by_column else r])
    finally:
        free(factor)


def baseline_residuals(const double[::1] values, const index_t[::1] indices,
                       const index_t[::1] indptr, double mean, const double[::1] user_bias,
                       const double[::1] item_bias, value_t[::1] out, int num_threads):
    """``out``: each rating of a users x items CSR matrix less its baseline, value - (mean
    + user_bias[user] + item_bias[item]) in double, cast to out's dtype (pearson_baseline's
    values).  One pass with no nnz-long temporaries (numpy's expression makes five, ~0.4 ms
    on ml-100k).  Contract: indices in [0, item_bias's length).  Twin of
    ``reference.similarity.baseline_residuals``, bit for bit (the same additions in the
    same order)."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, r, p
    cdef double user_mean
    if (values.shape[0] != indptr[n_rows] or out.shape[0] != values.shape[0]
            or indices.shape[0] < values.shape[0] or user_bias.shape[0] != n_rows):
        raise ValueError("baseline_residuals: values, indices, out and user_bias must match the matrix")
    with nogil:
        for r in prange(n_rows, schedule="static", num_threads=num_threads):
            user_mean = mean + user_bias[r]
            for p in range(indptr[r], indptr[r + 1]):
                out[p] = <value_t>(values[p] - (user_mean + item_bias[indices[p]]))


# ---------------------------------------------------------------- k=None: every pair
# Row a scores the pairs (a, b < a) once ("own" entries, ascending b), then every own
# entry is copied to row a and handed to row b; a row is then its own entries (ids < a,
# ascending) followed by what it was handed (ids > a, ascending), so a sort that keeps
# equal scores in place gives score descending, ties to the lower id.

cdef enum:
    DENSE_REACH = 2  # rows reaching this many times n entries score every b < a (no touched list)
    SMALL_ROW = 32   # shorter rows skip the key passes and go straight to insertion
    KEY_TOP = 65535  # the largest of _radix_rank_sort's 16-bit keys
    CROWDED = 5      # a bucket-sorted row whose insertion pass moved over 1/CROWDED per entry...
    RADIX_RUN = 16   # ...has the band's next rows sorted on 16-bit keys
    INSERTION_BUDGET = 8  # moves per entry the insertion pass may make before a quicksort
    BAND_BYTES = 1024 * 1024  # output of the rows mirror_rows fills and sorts together, at most:
    BAND_MIN_BYTES = 64 * 1024  # each band walks every later row once, so not much smaller
    BANDS_PER_THREAD = 8  # while bands stay within those: the last bands leave a thread idle
    SELECT_BUCKETS = 256  # _select_best's histogram of a row's scores


cdef inline Py_ssize_t _stride(int measure) noexcept nogil:
    """Doubles per row of the accumulator: the co-rated count first, then the sums."""
    if measure == DOT_POSITIVE or measure == JACCARD:
        return 1  # s_ab (its being non-zero marks a touched row), or the count alone
    if measure == DOT or measure == MSD:
        return 2  # count, s_ab or s_dd
    if measure == CORATED_COSINE:
        return 4  # count, s_ab, s_aa, s_bb
    return 8      # PEARSON: count, s_ab, s_aa, s_bb, s_a, s_b (padded to a cache line)


# Ratings on a grid of whole or half steps (1-5 stars, 0.5-5 in half stars) spanning at
# most CODE_LEVELS values: counted in steps, the co-rated sums of MSD, co-rated cosine
# and Pearson are small integers, kept two to an int64 word (low + high * 2**32, the
# low half signed) and added in one step per word from a table of what each pair of
# values adds.  They are exact, as the double sums of such values are, and so are the
# sums scaled back by a power of two (the step, or its square), so the scores are the
# same bit for bit; each update is one add per word and no float conversion.
cdef enum:
    CODE_LEVELS = 16
    CODE_BITS = 4  # log2(CODE_LEVELS): a code's bits in an entry of Coded.t_entries
    CODE_MASK = CODE_LEVELS - 1
    CODED_ROWS = 1 << (32 - CODE_BITS)  # X's rows that fit the rest of the word

cdef struct Coded:
    const uint8_t* x_codes  # each entry of X: its value less the smallest value, in steps
    # each entry (c, b) of T: b << CODE_BITS | its code, read with one load where the walks
    # of T read b and the code (ml-100k user MSD, k=None: accumulation ~13% faster)
    const uint32_t* t_entries
    const int64_t* table    # [code_a][code_b][word]: what the pair adds to each word
    Py_ssize_t levels       # codes run 0 .. levels - 1
    double lowest           # the value of code 0
    double step             # 1 or 0.5: the values are lowest + code * step


cdef struct RowWork:  # what a thread's k=None rows share besides X and T
    const Coded* codes    # the packed values, or NULL: sums in doubles
    double* acc           # the accumulator: _stride doubles or _words int64 a row
    Py_ssize_t* touched   # the b a listed row touched, as they come
    uint64_t* bits        # a bit set of b, left cleared
    int64_t* handed       # the pairs handed to each b so far (this thread's)
    bint whole_rows       # prefetch whole rows of X^T (_prefetch_ahead)
    bint msd_in_floats    # float32 scores of packed MSD divide in float32 (_msd_in_floats)
    double shrinkage
    int shrink_mode
    int64_t min_support


cdef inline Py_ssize_t _words(int measure) noexcept nogil:
    """int64 words per row of the packed accumulator of ``Coded`` values."""
    if measure == MSD:
        return 1  # count | s_dd
    if measure == CORATED_COSINE:
        return 2  # count | s_ab, s_aa | s_bb
    return 4      # PEARSON: count | s_ab, s_aa | s_bb, s_a | s_b, and 0 (32-byte rows)


cdef inline int64_t _pack(int64_t low, int64_t high) noexcept nogil:
    return low + high * (<int64_t>65536 * 65536)


cdef inline int64_t _low_half(int64_t word) noexcept nogil:
    """The low half of a packed word: its low 32 bits, signed."""
    return <int32_t><uint32_t><uint64_t>word


cdef inline void _unpack(int64_t word, double* low, double* high) noexcept nogil:
    cdef int64_t low_half = _low_half(word)
    low[0] = <double>low_half
    high[0] = <double>((word - low_half) // (<int64_t>65536 * 65536))  # exact


# The k=None row loops are specialised at compile time, one C function per (measure,
# packed or double sums, dense or listed rows): each takes an empty tag of each kind,
# and the tags fix the constants its loops are written with.  (Inlining a function
# with constant arguments did the same until the module grew past gcc's inlining
# budget and some loops were left to test the measure for every update.)
cdef struct MsdTag:
    char unused
cdef struct CoratedCosineTag:
    char unused
cdef struct PearsonTag:
    char unused
cdef struct DotTag:
    char unused
cdef struct DotPositiveTag:
    char unused
cdef struct JaccardTag:
    char unused
cdef struct PackedTag:   # sums in Coded's packed int64 words
    char unused
cdef struct DoublesTag:  # sums in doubles
    char unused
cdef struct DenseTag:    # every b < a is scored, no touched list
    char unused
cdef struct ListedTag:   # the touched b are listed as they come
    char unused

ctypedef fused measure_tag:
    MsdTag
    CoratedCosineTag
    PearsonTag
    DotTag
    DotPositiveTag
    JaccardTag

ctypedef fused sums_tag:
    PackedTag
    DoublesTag

ctypedef fused rows_tag:
    DenseTag
    ListedTag


cdef inline int _measure_of(measure_tag* tag) noexcept nogil:
    if measure_tag is MsdTag:
        return MSD
    elif measure_tag is CoratedCosineTag:
        return CORATED_COSINE
    elif measure_tag is PearsonTag:
        return PEARSON
    elif measure_tag is DotTag:
        return DOT
    elif measure_tag is DotPositiveTag:
        return DOT_POSITIVE
    else:
        return JACCARD


cdef inline bint _packed(sums_tag* tag) noexcept nogil:
    if sums_tag is PackedTag:
        return True
    else:
        return False


cdef inline bint _dense(rows_tag* tag) noexcept nogil:
    if rows_tag is DenseTag:
        return True
    else:
        return False


cdef inline Py_ssize_t _add_coded(const int measure, const bint track, int64_t* acc,
                                  Py_ssize_t stride, const int64_t* adds, uint32_t entry,
                                  Py_ssize_t* touched, Py_ssize_t n_touched) noexcept nogil:
    """Add what one entry of ``Coded.t_entries`` adds to its row's packed words, given
    the ``adds`` of a's code; with ``track`` list the row if new.  Returns n_touched."""
    cdef Py_ssize_t b = entry >> CODE_BITS
    cdef int64_t* words = acc + b * stride
    cdef const int64_t* adds_b = adds + (entry & CODE_MASK) * stride
    cdef int64_t add0 = adds_b[0], add1 = 0, add2 = 0  # read before any store: the words
    if measure != MSD:                                 # may add as one vector
        add1 = adds_b[1]
    if measure == PEARSON:
        add2 = adds_b[2]
    if track:
        touched[n_touched] = b  # the low half of word 0 counts: 0 if new
        n_touched = n_touched + (words[0] == 0)
    words[0] += add0
    if measure != MSD:
        words[1] += add1
    if measure == PEARSON:
        words[2] += add2
    return n_touched


cdef inline Py_ssize_t _accumulate(measure_tag* measure_is, sums_tag* sums_are,
                                   rows_tag* rows_are, Py_ssize_t a, const value_t* x_data,
                                   const index_t* x_indices, const index_t* x_indptr,
                                   const value_t* t_data, const index_t* t_indices,
                                   const index_t* t_indptr, const index_t* x_in_t,
                                   const RowWork* work) noexcept nogil:
    """Add the statistics of every pair (a, b < a) to ``acc``, columns in order: in
    column c, the rows before a's own entry (``x_in_t``: each entry of X's place in T).

    One loop per combination of tags, without per-entry branches.  Listed rows: each
    newly touched b is listed in ``touched`` (the slot past the last one is written
    too); returns how many.  Packed sums: ``acc`` holds ``_words`` int64 words per row
    (see ``Coded``).
    """
    cdef int measure = _measure_of(measure_is)
    cdef bint coded = _packed(sums_are), track = not _dense(rows_are)
    cdef Py_ssize_t stride = _words(measure) if coded else _stride(measure)
    cdef Py_ssize_t n_touched = 0, p, q, b, c, stop, end = x_indptr[a + 1]
    cdef const Coded* codes = work.codes  # locals: stores to acc could alias *work
    cdef double* acc = work.acc
    cdef Py_ssize_t* touched = work.touched
    cdef bint whole_rows = work.whole_rows
    cdef double xa, xb, xa2
    cdef double* st
    cdef const int64_t* adds
    for p in range(x_indptr[a], end):
        c = x_indices[p]
        if coded:
            adds = &codes.table[codes.x_codes[p] * codes.levels * stride]
            _prefetch_ahead(x_indices, p, end, t_indptr, x_in_t, NULL, codes.t_entries,
                            sizeof(uint32_t), whole_rows)
            q = t_indptr[c]
            stop = x_in_t[p]  # the column's rows are sorted
            while q + 1 < stop:  # two a step: ml-100k user MSD's accumulation ~13% faster
                n_touched = _add_coded(measure, track, <int64_t*>acc, stride, adds,
                                       codes.t_entries[q], touched, n_touched)
                n_touched = _add_coded(measure, track, <int64_t*>acc, stride, adds,
                                       codes.t_entries[q + 1], touched, n_touched)
                q = q + 2
            if q < stop:
                n_touched = _add_coded(measure, track, <int64_t*>acc, stride, adds,
                                       codes.t_entries[q], touched, n_touched)
            continue
        xa = x_data[p]
        xa2 = xa * xa
        _prefetch_ahead(x_indices, p, end, t_indptr, x_in_t, t_indices, t_data,
                        sizeof(value_t), whole_rows)
        for q in range(t_indptr[c], x_in_t[p]):  # the column's rows are sorted
            b = t_indices[q]
            st = &acc[b * stride]
            if track:
                touched[n_touched] = b  # kept only when b is new: no branch
                n_touched = n_touched + (st[0] == 0)
            xb = t_data[q]
            if measure == DOT_POSITIVE:
                st[0] += xa * xb
            elif measure == JACCARD:
                st[0] += 1.0
            elif measure == DOT:
                st[0] += 1.0
                st[1] += xa * xb
            elif measure == MSD:
                st[0] += 1.0
                st[1] += (xa - xb) * (xa - xb)
            elif measure == CORATED_COSINE:
                st[0] += 1.0
                st[1] += xa * xb
                st[2] += xa2
                st[3] += xb * xb
            else:
                st[0] += 1.0
                st[1] += xa * xb
                st[2] += xa2
                st[3] += xb * xb
                st[4] += xa
                st[5] += xb
    return n_touched


cdef inline void _unpacked(const int measure, const int64_t* words, double step,
                           double* st) noexcept nogil:
    """The double statistics (``_stride``'s layout) of one row of packed words, whose
    sums count in values of ``step`` (``Coded``): products scale back by step^2, sums by
    step, both exactly."""
    cdef double area = step * step
    _unpack(words[0], &st[0], &st[1])  # count, then s_dd or s_ab
    st[1] = st[1] * area
    if measure != MSD:
        _unpack(words[1], &st[2], &st[3])  # s_aa, s_bb
        st[2] = st[2] * area
        st[3] = st[3] * area
    if measure == PEARSON:
        _unpack(words[2], &st[4], &st[5])  # s_a, s_b
        st[4] = st[4] * step
        st[5] = st[5] * step


cdef inline double _shrunk(double s, int32_t n_ab, double shrinkage, int shrink_mode) noexcept nogil:
    """Score s of a pair with n_ab co-rated columns, shrunk (SHRINK_MODES) unless 0."""
    if shrinkage == 0:
        return s
    if shrink_mode == SHRINK_BASELINE:
        return s * ((n_ab - 1) / (n_ab - 1 + shrinkage))
    return s * (n_ab / (n_ab + shrinkage))


cdef inline double _stats_score(const int measure, const double* st, Py_ssize_t len_a,
                               Py_ssize_t len_b) noexcept nogil:
    """The unshrunk score of one pair from its statistics in ``_stride``'s layout (not
    DOT_POSITIVE, whose score is st[0]); garbage when its count is 0."""
    cdef int32_t n_ab = <int32_t>st[0]
    if measure == JACCARD:
        return _score(JACCARD, n_ab, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, len_a, len_b)
    if measure == DOT:
        return st[1]
    if measure == MSD:
        return _score(MSD, n_ab, 0.0, 0.0, 0.0, 0.0, 0.0, st[1], 0, 0)
    if measure == CORATED_COSINE:
        return _score(CORATED_COSINE, n_ab, st[1], st[2], st[3], 0.0, 0.0, 0.0, 0, 0)
    return _score(PEARSON, n_ab, st[1], st[2], st[3], st[4], st[5], 0.0, 0, 0)


cdef inline double _packed_score(int measure, const int64_t* words, double step) noexcept nogil:
    """The unshrunk score of MSD, co-rated cosine or Pearson from one row of packed
    words (``similarity_topk``; the k=None rows go through ``_row_score``)."""
    cdef double st[8]
    _unpacked(measure, words, step, st)
    return _stats_score(measure, st, 0, 0)


cdef inline double _pair_score(measure_tag* measure_is, const double* st, double shrinkage,
                               int shrink_mode, Py_ssize_t len_a,
                               Py_ssize_t len_b) noexcept nogil:
    """The (shrunk) score of one accumulated pair; garbage when its count is 0.  One
    function per measure tag: no test of the measure per pair where gcc declines to
    inline it."""
    cdef int measure = _measure_of(measure_is)
    if measure == DOT_POSITIVE:
        return st[0]
    return _shrunk(_stats_score(measure, st, len_a, len_b), <int32_t>st[0], shrinkage,
                   shrink_mode)


cdef inline double _row_count(const bint coded, const double* st) noexcept nogil:
    """The co-rated count of one row of the accumulator (word 0's low half if coded)."""
    if coded:
        return <double>_low_half((<const int64_t*>st)[0])
    return st[0]


cdef inline double _row_score(measure_tag* measure_is, sums_tag* sums_are, const double* st,
                              double step, double shrinkage, int shrink_mode, Py_ssize_t len_a,
                              Py_ssize_t len_b) noexcept nogil:
    """``_pair_score`` of one row of the accumulator, packed (in values of ``step``) or not."""
    cdef double unpacked[8]
    if _packed(sums_are):
        _unpacked(_measure_of(measure_is), <const int64_t*>st, step, unpacked)
        return _pair_score(measure_is, unpacked, shrinkage, shrink_mode, len_a, len_b)
    return _pair_score(measure_is, st, shrinkage, shrink_mode, len_a, len_b)


cdef inline Py_ssize_t _score_lower(measure_tag* measure_is, sums_tag* sums_are,
                                    rows_tag* rows_are, Py_ssize_t a, Py_ssize_t n_touched,
                                    const index_t* x_indptr, const RowWork* work,
                                    value_t* cand_scores, index_t* cand_ids) noexcept nogil:
    """Score the accumulated pairs (a, b < a) in ascending b, reset ``acc``; returns
    how many non-zero scores with enough support went to ``cand_*``, each also counted
    in ``handed[b]``.

    Dense rows: every b < a is scored (untouched ones are dropped by their count), in
    one pass where a score is one division at most, else after a pass listing the b
    with enough support; listed rows: the touched rows are put in order through the
    bit set ``bits`` (left cleared).
    """
    cdef int measure = _measure_of(measure_is)
    cdef bint coded = _packed(sums_are), dense = _dense(rows_are)
    cdef Py_ssize_t stride = _words(measure) if coded else _stride(measure)
    cdef double* acc = work.acc
    cdef Py_ssize_t* touched = work.touched
    cdef uint64_t* bits = work.bits
    cdef double shrinkage = work.shrinkage
    cdef double step = work.codes.step if coded else 1.0
    cdef int shrink_mode = work.shrink_mode
    cdef int64_t min_support = work.min_support
    cdef Py_ssize_t size = 0, t, b, w = 0, n_listed = 0
    cdef Py_ssize_t len_a = x_indptr[a + 1] - x_indptr[a]
    cdef int64_t* handed = work.handed
    cdef uint64_t word
    cdef double* st
    cdef value_t v
    cdef bint kept, in_floats = False
    if dense and measure != CORATED_COSINE and measure != PEARSON:
        if value_t is float:  # all the row's MSD scores first, in place (size <= b below)
            in_floats = coded and measure == MSD and work.msd_in_floats
            if in_floats:
                fastrec_msd_scores_f32(<const int64_t*>acc, a, <float>(step * step), cand_scores)
        for b in range(a):  # a count of 0 scores garbage (NaN in floats), dropped by it
            st = &acc[b * stride]
            if in_floats:
                v = cand_scores[b]
            else:
                v = <value_t>_row_score(measure_is, sums_are, st, step, shrinkage, shrink_mode,
                                        len_a, x_indptr[b + 1] - x_indptr[b])
            if measure == DOT_POSITIVE:
                kept = v != 0
            else:
                kept = (_row_count(coded, st) >= min_support) & (v != 0)
            cand_scores[size] = v
            cand_ids[size] = <index_t>b
            handed[b] += kept
            size = size + kept
        memset(acc, 0, a * stride * sizeof(double))
        return size
    if dense:  # the rows with enough support, in order (no branch)
        for b in range(a):
            cand_ids[n_listed] = <index_t>b
            if measure == DOT_POSITIVE:
                n_listed = n_listed + (acc[b * stride] != 0)
            else:
                n_listed = n_listed + (_row_count(coded, &acc[b * stride]) >= min_support)
    else:  # the touched rows, put in order through the bit set
        for t in range(n_touched):
            b = touched[t]
            bits[b >> 6] |= (<uint64_t>1) << (b & 63)
        for w in range((a + 63) >> 6):
            word = bits[w]
            bits[w] = 0
            while word != 0:
                cand_ids[n_listed] = <index_t>((w << 6) + fastrec_ctz64(word))
                n_listed = n_listed + 1
                word = word & (word - 1)
    for t in range(n_listed):  # in place: size <= t
        b = cand_ids[t]
        st = &acc[b * stride]
        v = <value_t>_row_score(measure_is, sums_are, st, step, shrinkage, shrink_mode, len_a,
                                x_indptr[b + 1] - x_indptr[b])
        cand_scores[size] = v
        cand_ids[size] = <index_t>b
        if measure == DOT_POSITIVE or dense:  # dense: the support is checked
            kept = v != 0
        else:
            kept = (_row_count(coded, st) >= min_support) & (v != 0)
        handed[b] += kept
        size = size + kept
        if not dense:
            memset(st, 0, stride * sizeof(double))
    if dense:
        memset(acc, 0, a * stride * sizeof(double))
    return size


cdef Py_ssize_t _lower_row(measure_tag* measure_is, sums_tag* sums_are, rows_tag* rows_are,
                           Py_ssize_t a, const value_t* xd, const index_t* xi,
                           const index_t* xp, const value_t* td, const index_t* ti,
                           const index_t* tp, const index_t* x_in_t, const RowWork* work,
                           value_t* cand_scores, index_t* cand_ids) noexcept nogil:
    """The pairs (a, b < a) of one row, scored (see ``_accumulate``, ``_score_lower``)."""
    cdef Py_ssize_t n_touched = _accumulate(measure_is, sums_are, rows_are, a, xd, xi, xp,
                                            td, ti, tp, x_in_t, work)
    return _score_lower(measure_is, sums_are, rows_are, a, n_touched, xp, work, cand_scores,
                        cand_ids)


cdef Py_ssize_t _rows_measured(measure_tag* measure_is, bint dense, Py_ssize_t a,
                               const value_t* xd, const index_t* xi, const index_t* xp,
                               const value_t* td, const index_t* ti, const index_t* tp,
                               const index_t* x_in_t, const RowWork* work,
                               value_t* cand_scores, index_t* cand_ids) noexcept nogil:
    """``_lower_row`` with the tags of packed or double sums and dense or listed rows."""
    cdef PackedTag packed
    cdef DoublesTag doubles
    cdef DenseTag every
    cdef ListedTag listed
    if measure_tag is MsdTag or measure_tag is CoratedCosineTag or measure_tag is PearsonTag:
        if work.codes != NULL:
            if dense:
                return _lower_row(measure_is, &packed, &every, a, xd, xi, xp, td, ti, tp, x_in_t, work, cand_scores, cand_ids)
            return _lower_row(measure_is, &packed, &listed, a, xd, xi, xp, td, ti, tp, x_in_t, work, cand_scores, cand_ids)
    if dense:
        return _lower_row(measure_is, &doubles, &every, a, xd, xi, xp, td, ti, tp, x_in_t, work, cand_scores, cand_ids)
    return _lower_row(measure_is, &doubles, &listed, a, xd, xi, xp, td, ti, tp, x_in_t, work, cand_scores, cand_ids)


cdef int _lower_rows(measure_tag* measure_is, const value_t* xd, const index_t* xi,
                     const index_t* xp, const value_t* td, const index_t* ti,
                     const index_t* tp, const index_t* x_in_t, Py_ssize_t n,
                     const RowWork* settings, const int64_t* own_slots, index_t* own_ids,
                     value_t* own_scores, int64_t* own_counts, int64_t* partners,
                     bint count_only, int teams) except -1 nogil:
    """``similarity_lower``'s rows, in parallel: each row's pairs (a, b < a) go to its
    room (unless ``count_only``), their number to ``own_counts[a]``, and thread th's
    count of the pairs handed to row b to ``partners[th * n + b]``.  ``settings``: the
    codes and shrinkage every thread's ``RowWork`` starts from.

    One function per measure: its parallel body holds that measure's four row loops
    and no other, small enough that gcc inlines their scoring (in one body holding
    every measure's, it stopped inlining where the body's growth limit fell).
    """
    cdef Py_ssize_t stride = _stride(_measure_of(measure_is))
    cdef Py_ssize_t i, a, p, c, t, size, reach, start
    cdef RowWork work
    cdef double* acc
    cdef Py_ssize_t* touched
    cdef uint64_t* bits
    cdef value_t* cand_scores
    cdef index_t* cand_ids
    cdef value_t* dst_scores
    cdef index_t* dst_ids
    cdef bint dense
    with parallel(num_threads=teams):
        acc = <double*>calloc(n * stride, sizeof(double))
        touched = <Py_ssize_t*>malloc((n + 1) * sizeof(Py_ssize_t))
        bits = <uint64_t*>calloc((n >> 6) + 1, sizeof(uint64_t))
        cand_scores = <value_t*>malloc(n * sizeof(value_t))
        cand_ids = <index_t*>malloc(n * sizeof(index_t))
        work = settings[0]
        work.acc = acc
        work.touched = touched
        work.bits = bits
        work.handed = &partners[fastrec_omp_thread_num() * n]
        try:
            if acc == NULL or touched == NULL or bits == NULL or cand_scores == NULL or cand_ids == NULL:
                with gil:
                    raise MemoryError("similarity_lower: cannot allocate per-thread scratch")
            for i in prange(n, schedule="dynamic", chunksize=16):
                a = n - 1 - i  # the longest rows first: less waiting at the end
                # rows reaching many entries touch most b < a: score them all, in order
                reach = 0
                for p in range(xp[a], xp[a + 1]):
                    c = xi[p]
                    reach = reach + (tp[c + 1] - tp[c])
                dense = reach >= DENSE_REACH * n
                # scoring writes each b's slot before knowing whether it is kept: straight
                # into the row's room when that holds a entries, else through cand_*
                if not count_only and a > 0 and own_slots[a + 1] - own_slots[a] >= a:
                    dst_scores = &own_scores[own_slots[a]]
                    dst_ids = &own_ids[own_slots[a]]
                else:
                    dst_scores = cand_scores
                    dst_ids = cand_ids
                size = _rows_measured(measure_is, dense, a, xd, xi, xp, td, ti, tp, x_in_t,
                                      &work, dst_scores, dst_ids)
                own_counts[a] = size
                if not count_only and dst_scores == cand_scores:
                    start = own_slots[a]
                    for t in range(size):
                        own_scores[start + t] = cand_scores[t]
                        own_ids[start + t] = cand_ids[t]
        finally:
            free(acc)
            free(touched)
            free(bits)
            free(cand_scores)
            free(cand_ids)
    return 0


cdef int _lower_rows_of(int measure, const value_t* xd, const index_t* xi, const index_t* xp,
                        const value_t* td, const index_t* ti, const index_t* tp,
                        const index_t* x_in_t, Py_ssize_t n, const RowWork* settings,
                        const int64_t* own_slots, index_t* own_ids, value_t* own_scores,
                        int64_t* own_counts, int64_t* partners, bint count_only,
                        int teams) except -1 nogil:
    """``_lower_rows`` with the tag of the measure."""
    cdef MsdTag msd
    cdef CoratedCosineTag corated_cosine
    cdef PearsonTag pearson
    cdef DotTag dot
    cdef DotPositiveTag dot_positive
    cdef JaccardTag jaccard
    if measure == MSD:
        return _lower_rows(&msd, xd, xi, xp, td, ti, tp, x_in_t, n, settings, own_slots, own_ids, own_scores, own_counts, partners, count_only, teams)
    if measure == CORATED_COSINE:
        return _lower_rows(&corated_cosine, xd, xi, xp, td, ti, tp, x_in_t, n, settings, own_slots, own_ids, own_scores, own_counts, partners, count_only, teams)
    if measure == PEARSON:
        return _lower_rows(&pearson, xd, xi, xp, td, ti, tp, x_in_t, n, settings, own_slots, own_ids, own_scores, own_counts, partners, count_only, teams)
    if measure == DOT:
        return _lower_rows(&dot, xd, xi, xp, td, ti, tp, x_in_t, n, settings, own_slots, own_ids, own_scores, own_counts, partners, count_only, teams)
    if measure == DOT_POSITIVE:
        return _lower_rows(&dot_positive, xd, xi, xp, td, ti, tp, x_in_t, n, settings, own_slots, own_ids, own_scores, own_counts, partners, count_only, teams)
    return _lower_rows(&jaccard, xd, xi, xp, td, ti, tp, x_in_t, n, settings, own_slots, own_ids, own_scores, own_counts, partners, count_only, teams)


cdef inline Py_ssize_t _first_from(const index_t* ids, Py_ssize_t p, Py_ssize_t end,
                                   Py_ssize_t value) noexcept nogil:
    """The first place q in [p, end) of ascending ids with ids[q] >= value (end if none),
    by a galloping search from p: O(log) of the distance, O(1) when p is it."""
    cdef Py_ssize_t step = 1, lo = p, hi
    if p >= end or ids[p] >= value:
        return p
    while lo + step < end and ids[lo + step] < value:  # ids[lo] < value throughout
        lo = lo + step
        step = 2 * step
    hi = min(lo + step, end)  # ids[hi] >= value, or hi == end
    while hi - lo > 1:
        p = lo + (hi - lo) // 2
        if ids[p] < value:
            lo = p
        else:
            hi = p
    return hi


cdef bint _place_entries(const value_t* x_data, const index_t* x_indices,
                         const index_t* x_indptr, Py_ssize_t n, const value_t* t_data,
                         const index_t* t_indices, const index_t* t_indptr,
                         Py_ssize_t n_columns, index_t* x_in_t, uint8_t* x_codes,
                         uint32_t* t_entries, const Coded* coding, int num_threads) noexcept nogil:
    """Each entry (a, c) of X: the place of (c, a) in T (``x_in_t``), and with
    ``x_codes`` the code (``coding``) of every entry of X, and T's ``t_entries``; False
    if T is not X's transpose (or, with codes, has values off the coding's levels).

    Rows go in one block a thread, of about equal entries; a block starts each column at
    its first row there, found in T's sorted column.  Every entry is checked to be where
    T has it, and every block to end each column where the next block starts it, before
    anything is written there; a False result leaves ``x_in_t`` and the codes unfinished.
    T's entries come from T's values in T's order: each thread writes its own lines.
    """
    cdef Py_ssize_t blocks = max(num_threads, 1), nnz = x_indptr[n]
    cdef Py_ssize_t block, r0, r1, a, p, c, q, failures = 0, missing = 0
    cdef bint wrong
    cdef index_t* cursor
    cdef double lowest = 0.0, per_step = 1.0
    if x_codes != NULL:
        lowest = coding.lowest
        per_step = 1.0 / coding.step  # 1 or 2: exact
    for block in prange(blocks, schedule="static", chunksize=1, num_threads=blocks):
        r0 = _first_from(x_indptr, 0, n, block * nnz // blocks)
        r1 = _first_from(x_indptr, 0, n, (block + 1) * nnz // blocks) if block + 1 < blocks else n
        cursor = <index_t*>malloc(max(n_columns, 1) * sizeof(index_t))
        if cursor == NULL:
            missing += 1
            continue
        wrong = False
        for c in range(n_columns):
            cursor[c] = <index_t>_first_from(t_indices, t_indptr[c], t_indptr[c + 1], r0)
        for a in range(r0, r1):
            for p in range(x_indptr[a], x_indptr[a + 1]):
                c = x_indices[p]
                q = cursor[c]
                if q >= t_indptr[c + 1] or t_indices[q] != a:
                    wrong = True
                    q = t_indptr[c]  # in bounds; the caller raises
                x_in_t[p] = <index_t>q
                if x_codes != NULL:
                    x_codes[p] = <uint8_t>((x_data[p] - lowest) * per_step)
                cursor[c] = <index_t>(q + 1)
        for c in range(n_columns):  # no entry of T left over before the next block
            if cursor[c] != _first_from(t_indices, t_indptr[c], t_indptr[c + 1], r1):
                wrong = True
        if t_entries != NULL:  # T's entries of this block's share, from T's values
            q = block * nnz // blocks
            if not _code_values(&t_data[q], &t_indices[q], (block + 1) * nnz // blocks - q,
                                coding, NULL, &t_entries[q]):
                wrong = True
        free(cursor)
        failures += wrong
    if missing:
        with gil:
            raise MemoryError("similarity_lower: cannot allocate the column cursors")
    return failures == 0


cdef bint _code_values(const value_t* values, const index_t* rows, Py_ssize_t count,
                       const Coded* coding, uint8_t* codes, uint32_t* entries) noexcept nogil:
    """The code of each value (the steps from ``coding.lowest`` to ``values[i]``): to
    ``codes[i]``, or with ``rows`` to ``entries[i]`` (``Coded.t_entries``); False if a
    value is not on the coding's grid of levels (its code is then garbage within them)."""
    cdef Py_ssize_t i, levels = coding.levels
    cdef double lowest = coding.lowest, per_step = 1.0 / coding.step  # 1 or 2: exact
    cdef double level
    cdef bint known, wrong = False
    cdef uint8_t code
    for i in range(count):
        level = (values[i] - lowest) * per_step
        known = (level >= 0) & (level < levels)
        code = <uint8_t>(level if known else 0)
        if entries != NULL:
            entries[i] = (<uint32_t>rows[i] << CODE_BITS) | code
        else:
            codes[i] = code
        wrong = wrong | (<double>code != level)
    return not wrong


cdef Py_ssize_t _longest_row(const index_t* indptr, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t a, longest = 0
    for a in range(n):
        longest = max(longest, <Py_ssize_t>(indptr[a + 1] - indptr[a]))
    return longest


cdef Py_ssize_t _packable_levels(const value_t* values, const index_t* indptr, Py_ssize_t n,
                                 double* lowest, double* step) noexcept nogil:
    """The number of levels from the smallest value of CSR X (``lowest``) to the largest,
    ``step`` apart, when every value is an integer (step 1) or else a multiple of 0.5
    (step 0.5), they span at most CODE_LEVELS levels, and no co-rated sum counted in
    steps over X's longest row can reach 2**31 in magnitude (the halves of a packed
    word); else 0."""
    cdef Py_ssize_t p, nnz = indptr[n] if n > 0 else 0, longest = _longest_row(indptr, n)
    cdef double lo = INFINITY, hi = -INFINITY, v, top, unit
    cdef double rounding = 6755399441055744.0  # 1.5 * 2**52: x + it - it rounds x
    cdef bint off_integer = False, off_half = False
    if nnz == 0:
        return 0
    for p in range(nnz):  # one pass, no conversions, no early exit
        v = values[p]
        lo = v if v < lo else lo
        hi = v if v > hi else hi
        # v and 2v rounded to integers, exact for |v| < 2**50 (larger fail the bound below)
        off_integer = off_integer | (((v + rounding) - rounding) != v)
        off_half = off_half | (((2.0 * v + rounding) - rounding) != 2.0 * v)
    if off_half:
        return 0
    unit = 0.5 if off_integer else 1.0
    if not ((hi - lo) / unit <= CODE_LEVELS - 1):
        return 0
    top = max(-lo, hi) / unit  # the largest magnitude in steps: sums add at most (2 top)^2
    if not (4.0 * top * top * <double>longest < 2147483648.0):
        return 0
    lowest[0] = lo
    step[0] = unit
    return <Py_ssize_t>((hi - lo) / unit) + 1


cdef int64_t* _pair_adds(int measure, const Coded* coding) noexcept nogil:
    """``Coded.table`` for ``coding``'s levels, values counted in steps (malloc'd; NULL
    if out of memory)."""
    cdef Py_ssize_t words = _words(measure), ca, cb, levels = coding.levels
    cdef int64_t first = <int64_t>(coding.lowest / coding.step)  # an integer: exact
    cdef int64_t va, vb
    cdef int64_t* adds = <int64_t*>calloc(levels * levels * words, sizeof(int64_t))
    cdef int64_t* pair
    if adds == NULL:
        return NULL
    for ca in range(levels):
        for cb in range(levels):
            va = first + ca
            vb = first + cb
            pair = &adds[(ca * levels + cb) * words]
            if measure == MSD:
                pair[0] = _pack(1, (va - vb) * (va - vb))
            else:
                pair[0] = _pack(1, va * vb)
                pair[1] = _pack(va * va, vb * vb)
                if measure == PEARSON:
                    pair[2] = _pack(va, vb)
    return adds


cdef Py_ssize_t _start_codes(int measure, bint packed, const value_t[::1] x_data,
                             const index_t[::1] x_indptr, Py_ssize_t t_entries,
                             Coded* codes) except -1:
    """Set ``codes`` up for packed sums when ``packed``, the measure and X's values allow
    them: its levels (returned), lowest value and step, its table, and room for the
    codes of X's and of T's ``t_entries`` entries, which the caller fills.  Else 0,
    with no arrays.  Free with ``_free_codes``."""
    cdef Py_ssize_t n = x_indptr.shape[0] - 1
    codes.levels = 0
    codes.lowest = 0.0
    codes.step = 1.0
    codes.x_codes = codes.table = NULL
    codes.t_entries = NULL
    if (n < 1 or n > CODED_ROWS or not packed
            or not (measure == MSD or measure == CORATED_COSINE or measure == PEARSON)):
        return 0
    codes.levels = _packable_levels(&x_data[0] if x_data.shape[0] else NULL, &x_indptr[0], n,
                                    &codes.lowest, &codes.step)
    if codes.levels == 0:
        return 0
    codes.x_codes = <uint8_t*>malloc(max(x_indptr[n], 1))
    codes.t_entries = <uint32_t*>malloc(max(t_entries, 1) * sizeof(uint32_t))
    codes.table = _pair_adds(measure, codes)
    if codes.x_codes == NULL or codes.t_entries == NULL or codes.table == NULL:
        _free_codes(codes)
        raise MemoryError("cannot allocate the value codes of the packed sums")
    return codes.levels


cdef void _free_codes(Coded* codes) noexcept nogil:
    free(<void*>codes.x_codes)
    free(<void*>codes.t_entries)
    free(<void*>codes.table)
    codes.x_codes = codes.table = NULL
    codes.t_entries = NULL
    codes.levels = 0


cdef bint _msd_in_floats(const Coded* codes, const index_t* x_indptr, Py_ssize_t n,
                         double shrinkage) noexcept nogil:
    """Whether packed MSD scores may divide in float32 for float32 results: unshrunk,
    and every count c and d * step^2 + c exact there (below 2**22, which also holds
    quarter steps), bounding d by the largest squared difference over X's longest row."""
    cdef double longest = <double>_longest_row(x_indptr, n)
    cdef double widest = <double>(codes.levels - 1)
    return shrinkage == 0 and longest * (1.0 + widest * widest * codes.step * codes.step) < 4194304.0


def packed_levels(const value_t[::1] x_data, const index_t[::1] x_indptr):
    """``(levels, step)``: how many levels ``step`` apart (1 or 0.5) the kernels pack X's
    values into; levels is 0 when they keep doubles (values off whole and half steps,
    over CODE_LEVELS levels, or sums that could reach 2**31).  MSD, co-rated cosine and
    Pearson pack when it is not 0."""
    cdef double lowest = 0.0, step = 1.0
    cdef Py_ssize_t n = x_indptr.shape[0] - 1, levels = 0
    if n >= 1:
        levels = _packable_levels(&x_data[0] if x_data.shape[0] else NULL, &x_indptr[0], n,
                                  &lowest, &step)
    return levels, step  # step stays 1.0 unless the values pack


def similarity_lower(const value_t[::1] x_data, const index_t[::1] x_indices,
                     const index_t[::1] x_indptr,
                     const value_t[::1] t_data, const index_t[::1] t_indices,
                     const index_t[::1] t_indptr,
                     int measure, double shrinkage, int shrink_mode, int64_t min_support,
                     const int64_t[::1] own_slots, index_t[::1] own_ids,
                     value_t[::1] own_scores, int64_t[::1] own_counts,
                     int64_t[::1] handed_counts, bint count_only, int num_threads,
                     bint packed=True):
    """Every pair (a, b < a) of rows of X with a non-zero score, for ``mirror_rows``.

    Contract: X as CSR (``x_*``) and as the CSR of its transpose (``t_*``), as for
    ``similarity_topk``; row a writes its pairs in ascending b to ``own_ids`` /
    ``own_scores`` from ``own_slots[a]`` on (at most ``own_slots[a+1] - own_slots[a]``)
    and their number to ``own_counts[a]``; ``handed_counts[b]`` gets the number of
    pairs whose b it is (what mirror_rows hands to row b); ``count_only`` only counts.
    Scores are those of ``similarity_topk`` bit for bit; the result does not depend on
    ``num_threads``.  ``packed``: MSD, co-rated cosine and Pearson of values in whole
    or half steps may add their sums as packed integers (``Coded``); False keeps
    doubles (the same scores, for tests).
    """
    cdef Py_ssize_t n = x_indptr.shape[0] - 1, n_columns = t_indptr.shape[0] - 1
    cdef Py_ssize_t nnz = x_indptr[n] if n > 0 else 0
    cdef Py_ssize_t th, row
    cdef Coded codes
    cdef const Coded* packed_codes = NULL  # &codes when the sums are packed
    cdef RowWork settings
    cdef bint coded = False
    cdef Py_ssize_t teams = max(num_threads, 1)
    cdef int64_t total
    cdef index_t* x_in_t  # each entry (a, c) of X: the place of (c, a) in T
    cdef bint placed
    # thread th's count of the pairs whose b is each row (summed after: no atomics)
    cdef int64_t* partners
    if own_slots.shape[0] != n + 1 or own_counts.shape[0] != n or handed_counts.shape[0] != n:
        raise ValueError("similarity_lower: own_slots, own_counts and handed_counts must match X's rows")
    if measure not in (DOT, JACCARD, MSD, CORATED_COSINE, PEARSON, DOT_POSITIVE):
        raise ValueError(f"similarity_lower: unknown measure {measure}")
    if n == 0:
        return
    coded = _start_codes(measure, packed, x_data, x_indptr, t_indices.shape[0], &codes) > 0
    partners = <int64_t*>calloc(teams * n, sizeof(int64_t))
    x_in_t = <index_t*>malloc(max(nnz, 1) * sizeof(index_t))
    try:
        if partners == NULL or x_in_t == NULL:
            raise MemoryError("similarity_lower: cannot allocate the per-thread counts and entry places")
        with nogil:
            placed = _place_entries(&x_data[0], &x_indices[0], &x_indptr[0], n, &t_data[0],
                                    &t_indices[0], &t_indptr[0], n_columns, x_in_t,
                                    <uint8_t*>codes.x_codes, <uint32_t*>codes.t_entries, &codes,
                                    teams)
        if not placed:
            raise ValueError("similarity_lower: T is not the transpose of X")
        if coded:
            packed_codes = &codes
        settings = RowWork(codes=packed_codes, acc=NULL, touched=NULL, bits=NULL, handed=NULL,
                           whole_rows=_whole_rows(nnz, coded, sizeof(index_t), sizeof(value_t)),
                           msd_in_floats=coded and measure == MSD and _msd_in_floats(
                               &codes, &x_indptr[0], n, shrinkage),
                           shrinkage=shrinkage, shrink_mode=shrink_mode, min_support=min_support)
        with nogil:
            _lower_rows_of(measure, &x_data[0], &x_indices[0], &x_indptr[0], &t_data[0],
                           &t_indices[0], &t_indptr[0], x_in_t, n, &settings, &own_slots[0],
                           &own_ids[0] if own_ids.shape[0] else NULL,
                           &own_scores[0] if own_scores.shape[0] else NULL, &own_counts[0],
                           partners, count_only, teams)
        for row in range(n):
            total = 0
            for th in range(teams):
                total = total + partners[th * n + row]
            handed_counts[row] = total
    finally:
        free(partners)
        free(x_in_t)
        _free_codes(&codes)


cdef inline void _score_range(const value_t* s, Py_ssize_t m, double* hi,
                              double* lo) noexcept nogil:
    """The largest and smallest of m scores (-inf and inf when m is 0, NaN skipped)."""
    cdef Py_ssize_t i = 0
    cdef double v, top = -INFINITY, bottom = INFINITY
    if value_t is float:
        i = fastrec_range_f32_by_4(s, m, &top, &bottom)
    for i in range(i, m):
        v = s[i]
        top = v if v > top else top
        bottom = v if v < bottom else bottom
    hi[0] = top
    lo[0] = bottom


cdef inline double _key_scale(double top, double hi, double lo) noexcept nogil:
    """The factor that maps a score s in [lo, hi] to the key (hi - s) * factor in [0, top]
    (0 when hi == lo or hi - lo underflows)."""
    cdef double scale = top / (hi - lo) if hi > lo else 0.0
    return scale if scale < INFINITY else 0.0


cdef inline Py_ssize_t _insertion_pass(value_t* s, index_t* ids, Py_ssize_t m,
                                     bint by_id) noexcept nogil:
    """Finish ordering m pairs already ordered but for different scores in a few short
    runs: a stable insertion pass in place, which only stores when a pair moves.  By
    score alone, which leaves equal scores as they came (in id order, for mirror_rows),
    or ``by_id``, by score then id.  Too many moves (a crowded run) hand the row to
    rank_sort, which compares ids too.  Returns the moves made."""
    cdef Py_ssize_t i = 1, j, moves = 0, budget = INSERTION_BUDGET * m
    cdef value_t v
    cdef index_t w
    while i < m:
        if not by_id:  # straight to the next pair ranking above the one before it
            if value_t is float:
                i = fastrec_next_rise_f32(s, i, m)
            else:
                i = fastrec_next_rise_f64(s, i, m)
            if i == m:
                break
        v = s[i]
        w = ids[i]
        # rare once keyed: move it up past the pairs ranking below it
        if v > s[i - 1] or (by_id and v == s[i - 1] and w < ids[i - 1]):
            j = i - 1
            while j >= 0 and (v > s[j] or (by_id and v == s[j] and w < ids[j])):
                s[j + 1] = s[j]
                ids[j + 1] = ids[j]
                j -= 1
            s[j + 1] = v
            ids[j + 1] = w
            moves += i - 1 - j
            if moves > budget:
                rank_sort(s, ids, m)
                return moves
        i = i + 1
    return moves


cdef inline Py_ssize_t _bucket_rank_sort(value_t* s, index_t* ids, Py_ssize_t m, double hi,
                                         double lo, Py_ssize_t n_buckets, value_t* tmp_s,
                                         index_t* tmp_ids, uint32_t* bucket,
                                         uint32_t* starts, bint by_id=False) noexcept nogil:
    """rank_sort of m pairs scoring in [lo, hi] whose equal scores are in id order (or in
    any order, ``by_id``); returns the insertion pass's moves.

    Scratch: ``tmp_*`` and ``bucket`` of m entries, ``starts`` of ``n_buckets`` + 1
    (a power of two, at least 4m when m is the longest row).  A stable counting pass on
    the score's position between hi and lo, in 2m to 4m buckets (higher scores first;
    the map is monotone, so an earlier bucket holds strictly higher scores and equal
    scores share one, in id order), then ``_insertion_pass``.
    """
    cdef Py_ssize_t i
    cdef double scale
    cdef uint32_t k, top
    if m < 2:
        return 0
    if m >= SMALL_ROW:
        while n_buckets > 2 and n_buckets >= 4 * m:
            n_buckets = n_buckets // 2
        top = <uint32_t>(n_buckets - 1)
        scale = _key_scale(top, hi, lo)
        memset(starts, 0, (n_buckets + 1) * sizeof(uint32_t))
        for i in range(m):
            k = <uint32_t>((hi - <double>s[i]) * scale)
            k = k if k < top else top
            bucket[i] = k
            starts[k + 1] += 1
        fastrec_prefix_sum_u32(starts, n_buckets + 1)
        memcpy(tmp_s, s, m * sizeof(value_t))
        memcpy(tmp_ids, ids, m * sizeof(index_t))
        for i in range(m):
            k = bucket[i]
            s[starts[k]] = tmp_s[i]
            ids[starts[k]] = tmp_ids[i]
            starts[k] += 1
    return _insertion_pass(s, ids, m, by_id)


cdef inline void _radix_rank_sort(value_t* s, index_t* ids, Py_ssize_t m, double hi, double lo,
                                  value_t* tmp_s, index_t* tmp_ids, uint16_t* keys,
                                  uint32_t* counts) noexcept nogil:
    """``_bucket_rank_sort`` for rows whose scores crowd a few buckets: 65,536 of them.

    Scratch: ``tmp_*`` of m entries, ``keys`` of 2m, ``counts`` of 512.  Each score
    gets a 16-bit key, its position between hi and lo (a lower key: a higher score;
    equal scores share a key); two stable counting passes on the key's low then high
    byte order the row by key, equal keys in id order; then ``_insertion_pass``.
    """
    cdef Py_ssize_t i, j
    cdef double scale
    cdef uint32_t k, count, low_total = 0, high_total = 0
    cdef uint16_t* tmp_keys = keys + m
    cdef uint32_t* low = counts  # the 256 low-byte counts, then their starts
    cdef uint32_t* high = counts + 256
    if m < 2:
        return
    if m >= SMALL_ROW:
        scale = _key_scale(KEY_TOP, hi, lo)
        memset(counts, 0, 512 * sizeof(uint32_t))
        for i in range(m):
            k = <uint32_t>((hi - <double>s[i]) * scale)
            k = k if k < KEY_TOP else KEY_TOP
            keys[i] = <uint16_t>k
            low[k & 255] += 1
            high[k >> 8] += 1
        for i in range(256):
            count = low[i]
            low[i] = low_total
            low_total += count
            count = high[i]
            high[i] = high_total
            high_total += count
        for i in range(m):  # by the low byte, into tmp
            k = keys[i] & 255
            j = low[k]
            low[k] += 1
            tmp_s[j] = s[i]
            tmp_ids[j] = ids[i]
            tmp_keys[j] = keys[i]
        for i in range(m):  # by the high byte, back
            k = tmp_keys[i] >> 8
            j = high[k]
            high[k] += 1
            s[j] = tmp_s[i]
            ids[j] = tmp_ids[i]
    _insertion_pass(s, ids, m, False)


def sorted_best(value_t[::1] scores, index_t[::1] ids, Py_ssize_t k):
    """The row selection of similarity_topk alone, in place: the k best (score, id) pairs
    to the front, best first (ties to the lower id); returns how many (min(size, k)).
    Scores must not be NaN (similarity_topk offers none).  For the tests."""
    cdef Py_ssize_t m = scores.shape[0], kept
    cdef Selection scratch
    if ids.shape[0] != m:
        raise ValueError("sorted_best: scores and ids must have the same length")
    k = max(k, 0)
    scratch = _new_selection(m, k, sizeof(value_t), sizeof(index_t))
    try:
        if not _selection_ok(&scratch):
            raise MemoryError("sorted_best: cannot allocate scratch")
        kept = _sorted_best(&scores[0] if m else NULL, &ids[0] if m else NULL, m, k, &scratch)
    finally:
        _free_selection(&scratch)
    return kept


def mirror_rows(const int64_t[::1] own_slots, const int64_t[::1] own_counts,
                const int64_t[::1] handed_counts, const index_t[::1] own_ids,
                const value_t[::1] own_scores, int64_t[::1] out_indptr, index_t[::1] out_ids,
                value_t[::1] out_scores, int num_threads):
    """The CSR of every pair from ``similarity_lower``'s own entries, rows sorted.

    Contract: ``own_*`` and ``handed_counts`` as similarity_lower leaves them;
    ``out_indptr`` has n + 1 entries and gets the row starts; ``out_ids`` /
    ``out_scores`` hold twice the own entries.  Each row is stored by score descending,
    ties to the lower id; the result does not depend on ``num_threads``.

    Rows are filled a band at a time (up to 1 MB of output, 8 bands a thread where
    smaller): a band's rows get their own entries, then the entries every later row
    hands them, in row order, and are sorted while still in cache; the scattered writes
    stay within the band's pages.
    """
    cdef Py_ssize_t n = own_counts.shape[0]
    cdef Py_ssize_t a, b, t, p, end, start, dst, m
    cdef Py_ssize_t n_bands, band, first, last, row, n_buckets = 2, radix_left
    cdef int64_t total = 0, offset, band_bytes
    cdef Py_ssize_t* bands
    cdef Py_ssize_t* cursor
    cdef Py_ssize_t* read_at
    cdef double hi, lo
    cdef value_t* tmp_s
    cdef index_t* tmp_ids
    cdef uint32_t* starts
    cdef uint32_t* bucket
    cdef value_t v
    if (own_slots.shape[0] != n + 1 or out_indptr.shape[0] != n + 1
            or handed_counts.shape[0] != n):
        raise ValueError("mirror_rows: own_slots and out_indptr need n + 1 entries, handed_counts n")
    for a in range(n):
        total += own_counts[a]
    if out_ids.shape[0] != 2 * total or out_scores.shape[0] != 2 * total:
        raise ValueError("mirror_rows: out_ids and out_scores must hold twice the own entries")
    out_indptr[0] = 0
    if n == 0:
        return
    while n_buckets < 4 * n:
        n_buckets = 2 * n_buckets
    bands = <Py_ssize_t*>malloc((n + 1) * sizeof(Py_ssize_t))
    cursor = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
    if bands == NULL or cursor == NULL:
        free(bands)
        free(cursor)
        raise MemoryError("mirror_rows: cannot allocate the row cursors")
    try:
        # row starts, and bands of rows with about band_bytes of output each: a few
        # bands per thread (dynamic schedule), as large as that allows up to BAND_BYTES
        band_bytes = (2 * total * (sizeof(value_t) + sizeof(index_t))
                      // (BANDS_PER_THREAD * max(num_threads, 1)))
        band_bytes = max(BAND_MIN_BYTES, min(<int64_t>BAND_BYTES, band_bytes))
        offset = 0
        n_bands = 0
        bands[0] = 0
        for b in range(n):
            out_indptr[b] = offset
            offset = offset + own_counts[b] + handed_counts[b]
            if (offset - out_indptr[bands[n_bands]]) * (sizeof(value_t) + sizeof(index_t)) >= band_bytes:
                n_bands += 1
                bands[n_bands] = b + 1
        out_indptr[n] = offset
        if offset != 2 * total:
            raise ValueError("mirror_rows: handed_counts do not add up to the own entries")
        if bands[n_bands] < n:
            n_bands += 1
            bands[n_bands] = n
        with nogil, parallel(num_threads=num_threads):
            tmp_s = <value_t*>malloc(n * sizeof(value_t))
            tmp_ids = <index_t*>malloc(n * sizeof(index_t))
            starts = <uint32_t*>malloc(max(n_buckets + 1, 512) * sizeof(uint32_t))
            bucket = <uint32_t*>malloc(n * sizeof(uint32_t))  # or 2n 16-bit keys
            # where this thread reads each row's own entries next: a thread's bands come
            # in increasing order (dynamic schedule), so it only moves forward
            read_at = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
            try:
                if (tmp_s == NULL or tmp_ids == NULL or starts == NULL or bucket == NULL
                        or read_at == NULL):
                    with gil:
                        raise MemoryError("mirror_rows: cannot allocate per-thread scratch")
                for row in range(n):
                    read_at[row] = own_slots[row]
                for band in prange(n_bands, schedule="dynamic", chunksize=1):
                    first = bands[band]
                    last = bands[band + 1]
                    for b in range(first, last):  # own entries: the ids below b, in order
                        start = own_slots[b]
                        dst = out_indptr[b]
                        if own_counts[b] > 0:
                            memcpy(&out_scores[dst], &own_scores[start], own_counts[b] * sizeof(value_t))
                            memcpy(&out_ids[dst], &own_ids[start], own_counts[b] * sizeof(index_t))
                        cursor[b] = dst + own_counts[b]
                        # the room for the handed entries, zeroed in one sweep: the scattered
                        # stores below then find their lines in cache instead of each line
                        # waiting for its own fetch (ml-100k: mirror_rows 10-16% faster)
                        if handed_counts[b] > 0:
                            memset(&out_ids[cursor[b]], 0, handed_counts[b] * sizeof(index_t))
                            memset(&out_scores[cursor[b]], 0, handed_counts[b] * sizeof(value_t))
                    for a in range(first + 1, n):  # what later rows hand to the band
                        p = read_at[a]
                        end = own_slots[a] + own_counts[a]
                        p = _first_from(&own_ids[0], p, end, first)
                        while p < end and own_ids[p] < last:
                            b = own_ids[p]
                            v = own_scores[p]
                            dst = cursor[b]
                            out_ids[dst] = <index_t>a
                            out_scores[dst] = v
                            cursor[b] = dst + 1
                            p = p + 1
                        read_at[a] = p
                    # rows are bucketed in 2m to 4m buckets, unless the last such row of the
                    # band crowded them (scores bunched in a narrow range, as co-rated
                    # cosines near 1): then a run of rows goes on 65,536 keys in two passes
                    radix_left = 0
                    for b in range(first, last):
                        start = out_indptr[b]
                        m = out_indptr[b + 1] - start
                        _score_range(&out_scores[start], m, &hi, &lo)
                        if radix_left > 0:
                            _radix_rank_sort(&out_scores[start], &out_ids[start], m, hi, lo,
                                             tmp_s, tmp_ids, <uint16_t*>bucket, starts)
                            radix_left = radix_left - 1
                        elif CROWDED * _bucket_rank_sort(&out_scores[start], &out_ids[start], m, hi,
                                                         lo, n_buckets, tmp_s, tmp_ids, bucket,
                                                         starts) > m:
                            radix_left = RADIX_RUN
            finally:
                free(tmp_s)
                free(tmp_ids)
                free(starts)
                free(bucket)
                free(read_at)
    finally:
        free(bands)
        free(cursor)
