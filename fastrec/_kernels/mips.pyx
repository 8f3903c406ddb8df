"""Exact top-k of inner products, most of them skipped by an upper bound
(twin: ``fastrec.reference.mips``; the bounds come from ``fastrec.mips``).

For each row r the caller gives an upper bound of every score (a cheap product of
rotated head coordinates and tail norms) and an allowance ``slack[r]`` for the
bound's rounding.  The kernel computes an item's exact score, users[r] . items[j]
in double plus an optional sparse bonus, only where the bound reaches the row's
current k-th best; the result is the exact top-k, ranked by score descending with
ties to the lower id, whatever the bounds' tightness.

The bonus is built per row in the kernel, in per-thread scratch: a sum of sparse
product rows, each normalised over all columns and weighted (a blend's kNN members),
then items scored as weighted means of others' bonus (a blend's content-scored items).
"""
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport INFINITY, NAN, fabs
from libc.stdint cimport int32_t, int64_t, uint8_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fastrec._kernels._heap cimport heap_offer, heap_sort, value_t
from fastrec._kernels._product cimport (RowScratch, RowStats, product_row, scratch_at, scratch_bytes,
                                        scratch_clear, scratch_list, stats_add, stats_finish, stats_start,
                                        touched_stats)

ctypedef fused pattern_t:  # the excluded and bonus columns' CSR
    int32_t
    int64_t

cdef extern from *:
    """
    /* the exact score: a double dot product whose summation order is fixed at build time */
    static inline double fastrec_dot_f(const float* a, const float* b, Py_ssize_t n) {
        double total = 0.0;
        #pragma omp simd reduction(+:total)
        for (Py_ssize_t d = 0; d < n; d++) total += (double)a[d] * (double)b[d];
        return total;
    }
    static inline double fastrec_dot_d(const double* a, const double* b, Py_ssize_t n) {
        double total = 0.0;
        #pragma omp simd reduction(+:total)
        for (Py_ssize_t d = 0; d < n; d++) total += a[d] * b[d];
        return total;
    }
    /* whether any of x[0..n) reaches t: one vector compare per lane group, no branch */
    static inline int fastrec_any_ge_f(const float* x, Py_ssize_t n, float t) {
        int hit = 0;
        #pragma omp simd reduction(|:hit)
        for (Py_ssize_t j = 0; j < n; j++) hit |= x[j] >= t;
        return hit;
    }
    /* the largest of x[0..n), n > 0 (finite values) */
    static inline float fastrec_max_f(const float* x, Py_ssize_t n) {
        float top = x[0];
        #pragma omp simd reduction(max:top)
        for (Py_ssize_t j = 1; j < n; j++) top = x[j] > top ? x[j] : top;
        return top;
    }
    static inline double fastrec_max_d(const double* x, Py_ssize_t n) {
        double top = x[0];
        #pragma omp simd reduction(max:top)
        for (Py_ssize_t j = 1; j < n; j++) top = x[j] > top ? x[j] : top;
        return top;
    }
    static inline int fastrec_any_ge_d(const double* x, Py_ssize_t n, double t) {
        int hit = 0;
        #pragma omp simd reduction(|:hit)
        for (Py_ssize_t j = 0; j < n; j++) hit |= x[j] >= t;
        return hit;
    }
    """
    float fastrec_max_f(const float* x, Py_ssize_t n) noexcept nogil
    double fastrec_max_d(const double* x, Py_ssize_t n) noexcept nogil
    int fastrec_any_ge_f(const float* x, Py_ssize_t n, float t) noexcept nogil
    int fastrec_any_ge_d(const double* x, Py_ssize_t n, double t) noexcept nogil
    double fastrec_dot_f(const float* a, const float* b, Py_ssize_t n) noexcept nogil
    double fastrec_dot_d(const double* a, const double* b, Py_ssize_t n) noexcept nogil

cdef enum:
    SKIP_CHUNK = 32  # bounds tested together before any is looked at one by one


cdef struct Term:  # one term of the bonus: weight * normalise(X[row] @ T), over every column
    const void* x_data
    const void* x_indices
    const int64_t* x_indptr
    const void* t_data
    const void* t_indices
    const int64_t* t_indptr
    bint wide_values   # double values, else float
    bint wide_indices  # int64 indices, else int32
    bint positive      # every x * t > 0 (no underflow): product_row's by_value listing
    int normalize      # _product.pxd's ZSCORE, MINMAX or NONE
    double weight


cdef struct Picks:
    # a row's candidate bonus columns (not warm, masked or excluded) with the largest bonus,
    # picked while the bonus is listed, for the two-level search to score first.  The
    # unscaled bonus orders them: its factor's sign is known before the pass, its size after
    Py_ssize_t* at      # their listing positions, best first (the earlier of equal keys first)
    double* key         # their sign * unscaled bonus
    Py_ssize_t size
    Py_ssize_t room     # how many to pick: 0 for none
    double sign         # the factor's: +1 picks the largest values, -1 the smallest
    const uint8_t* is_warm
    const uint8_t* mask
    const uint8_t* excluded


cdef inline void _pick(Picks* picks, Py_ssize_t p, int64_t q, double value) noexcept nogil:
    """Offer listing position p (column q, unscaled bonus ``value``) to the picks; the
    flags are read only for a value that would enter."""
    cdef double key = picks.sign * value
    if picks.room == 0 or (picks.size == picks.room and not (key > picks.key[picks.size - 1])):
        return
    if picks.is_warm[q] | picks.mask[q] | picks.excluded[q]:
        return
    picks.size = _keep_best(picks.at, picks.key, picks.size, picks.room, p, key)


cdef inline Picks _picks_at(char* base, Py_ssize_t room, const uint8_t* is_warm,
                           const uint8_t* excluded) noexcept nogil:
    """Empty picks of ``room`` columns in a thread's workspace at ``base`` (returned by
    value: assigned inside a parallel block, each thread's own); the caller sets ``sign``
    and ``mask`` per row."""
    cdef Picks picks
    picks.at = <Py_ssize_t*>base
    picks.key = <double*>(base + FIRST_BONUS * sizeof(Py_ssize_t))
    picks.room = room
    picks.size = 0
    picks.sign = 1.0
    picks.is_warm = is_warm
    picks.mask = NULL
    picks.excluded = excluded
    return picks


cdef Term _term(tuple arrays) except *:
    """A Term over the arrays ``(x_data, x_indices, x_indptr, t_data, t_indices, t_indptr,
    normalize, weight, positive)``; the caller keeps them alive and consistent."""
    cdef Term term
    x_data, x_indices, x_indptr, t_data, t_indices, t_indptr, normalize, weight, positive = arrays
    term.x_data = <const void*><uintptr_t>x_data.ctypes.data
    term.x_indices = <const void*><uintptr_t>x_indices.ctypes.data
    term.x_indptr = <const int64_t*><uintptr_t>x_indptr.ctypes.data
    term.t_data = <const void*><uintptr_t>t_data.ctypes.data
    term.t_indices = <const void*><uintptr_t>t_indices.ctypes.data
    term.t_indptr = <const int64_t*><uintptr_t>t_indptr.ctypes.data
    term.wide_values = x_data.itemsize == 8
    term.wide_indices = x_indices.itemsize == 8
    term.positive = positive
    term.normalize = normalize
    term.weight = weight
    return term


cdef Py_ssize_t _term_row(const Term* term, Py_ssize_t row, RowScratch* work,
                         const bint by_value) noexcept nogil:
    """Row ``row`` of the term's product into ``work``, through its dtypes' scatter
    (``by_value`` listing only for a ``positive`` term)."""
    if term.wide_values and term.wide_indices:
        return product_row(row, <const double*>term.x_data, <const int64_t*>term.x_indices, term.x_indptr,
                           <const double*>term.t_data, <const int64_t*>term.t_indices, term.t_indptr, work,
                           by_value)
    if term.wide_values:
        return product_row(row, <const double*>term.x_data, <const int32_t*>term.x_indices, term.x_indptr,
                           <const double*>term.t_data, <const int32_t*>term.t_indices, term.t_indptr, work,
                           by_value)
    if term.wide_indices:
        return product_row(row, <const float*>term.x_data, <const int64_t*>term.x_indices, term.x_indptr,
                           <const float*>term.t_data, <const int64_t*>term.t_indices, term.t_indptr, work,
                           by_value)
    return product_row(row, <const float*>term.x_data, <const int32_t*>term.x_indices, term.x_indptr,
                       <const float*>term.t_data, <const int32_t*>term.t_indices, term.t_indptr, work,
                       by_value)


cdef inline void _listed_stats(const RowScratch* work, Py_ssize_t touched, Py_ssize_t n, int normalize,
                               double* scale, double* shift, double* magnitude, double* listed_values,
                               Picks* picks) noexcept nogil:
    """``touched_stats``, copying the listed values in listing order to ``listed_values``
    (read in sequence after) and picking the bonus columns, in the same pass."""
    cdef Py_ssize_t p
    cdef double value
    cdef RowStats stats = stats_start(work, touched, n)
    for p in range(touched):
        value = work.values[work.seen[p]]
        listed_values[p] = value
        stats_add(&stats, value)
        _pick(picks, p, work.seen[p], value)
    stats_finish(&stats, touched, n, normalize, scale, shift, magnitude)


cdef Py_ssize_t _one_term_bonus(const Term* term, Py_ssize_t row, Py_ssize_t n, RowScratch* bonus,
                                double* factor, double* largest, double* shift,
                                double* listed_values, Picks* picks) noexcept nogil:
    """``_row_bonus`` for a single term and no means: the product row is scattered
    straight into ``bonus`` and left unscaled; the bonus is ``factor`` times it (the
    same values as scaling it in place, without the pass).  ``largest``: the bonus's
    largest absolute value; ``listed_values``: the unscaled row's listed values, in
    listing order; ``picks``: its first candidate columns (``_listed_stats``)."""
    cdef Py_ssize_t touched
    cdef double scale, centre, magnitude
    if term.positive:
        touched = _term_row(term, row, bonus, True)
    else:
        touched = _term_row(term, row, bonus, False)
    picks.sign = -1.0 if term.weight < 0 else 1.0
    _listed_stats(bonus, touched, n, term.normalize, &scale, &centre, &magnitude, listed_values, picks)
    factor[0] = term.weight * scale
    largest[0] = fabs(factor[0]) * magnitude  # rounding is monotone: the largest product
    shift[0] = factor[0] * centre
    return touched


cdef Py_ssize_t _row_bonus(const Term* terms, Py_ssize_t n_terms, Py_ssize_t row, Py_ssize_t n,
                           const int64_t* mean_items, Py_ssize_t n_means, const int64_t* mean_indptr,
                           const int64_t* mean_of, const double* mean_weights, RowScratch* term_row,
                           RowScratch* bonus, double* shift) noexcept nogil:
    """A row's bonus into ``bonus`` (listing its columns; returns how many): each term's
    product row, normalised over n columns and weighted, summed in term order; then each
    mean item's bonus, the weighted sum of its sources' (never mean items themselves).
    ``shift`` receives the per-row constant the normalisations subtract (sum of
    weight * scale * shift), which the bonus leaves out."""
    cdef Py_ssize_t m, p, touched, listed = 0
    cdef int64_t j
    cdef double scale, centre, factor, value, total_shift = 0.0
    for m in range(n_terms):
        touched = _term_row(&terms[m], row, term_row, False)
        touched_stats(term_row, touched, n, terms[m].normalize, &scale, &centre, NULL)
        factor = terms[m].weight * scale
        total_shift = total_shift + factor * centre
        for p in range(touched):
            j = term_row.seen[p]
            listed = scratch_list(bonus, listed, j)
            bonus.values[j] = bonus.values[j] + factor * term_row.values[j]
        scratch_clear(term_row, touched, False)
    for m in range(n_means):
        value = 0.0
        for p in range(mean_indptr[m], mean_indptr[m + 1]):
            value = value + mean_weights[p] * bonus.values[mean_of[p]]
        j = mean_items[m]
        listed = scratch_list(bonus, listed, j)
        bonus.values[j] = bonus.values[j] + value
    shift[0] = total_shift
    return listed


cdef inline double _dot(const value_t* a, const value_t* b, Py_ssize_t n) noexcept nogil:
    if value_t is float:
        return fastrec_dot_f(a, b, n)
    else:
        return fastrec_dot_d(a, b, n)


cdef inline value_t _largest(const value_t* x, Py_ssize_t n) noexcept nogil:
    if value_t is float:
        return fastrec_max_f(x, n)
    else:
        return fastrec_max_d(x, n)


cdef inline bint _any_reaches(const value_t* x, Py_ssize_t n, value_t t) noexcept nogil:
    if value_t is float:
        return fastrec_any_ge_f(x, n, t)
    else:
        return fastrec_any_ge_d(x, n, t)


cdef inline Py_ssize_t _next_reaching(const value_t* bounds, Py_ssize_t j, Py_ssize_t n,
                                       value_t limit) noexcept nogil:
    """The first position from j on whose bound is not below ``limit`` (n if none),
    passing over SKIP_CHUNK-aligned runs of bounds below it with one vector compare."""
    while j < n:
        if j % SKIP_CHUNK == 0 and j + SKIP_CHUNK <= n and not _any_reaches(bounds + j, SKIP_CHUNK, limit):
            j += SKIP_CHUNK
            continue
        if not (bounds[j] < limit):
            return j
        j += 1
    return n


cdef inline void _offer(int64_t item, const value_t* user, const value_t* items, Py_ssize_t dims,
                        const double* extra, double factor, Py_ssize_t k, double slack,
                        value_t* out_scores, int64_t* out_ids, Py_ssize_t* size,
                        value_t* threshold) noexcept nogil:
    """Score ``item`` exactly (plus its bonus ``factor * extra[item]``, if ``extra``) and
    offer it to the row's heap; once the heap is full, ``threshold`` follows its k-th
    best less ``slack``."""
    cdef double score = _dot(user, items + item * dims, dims)
    if extra != NULL:
        score = score + factor * extra[item]
    if not (score > -INFINITY):  # NaN or -inf
        return
    heap_offer(out_scores, out_ids, size, k, <value_t>score, item)
    if size[0] == k:
        threshold[0] = <value_t>(out_scores[0] - slack)


cdef inline int64_t _offer_warm(const int64_t* warm, Py_ssize_t n_warm, const uint8_t* mask,
                               const uint8_t* excluded, const value_t* user,
                               const value_t* items, Py_ssize_t dims, const double* extra, double factor,
                               Py_ssize_t k, double slack, value_t* out_scores, int64_t* out_ids,
                               Py_ssize_t* size, value_t* threshold) noexcept nogil:
    """Score the warm items (those not excluded: ``mask`` or the row's ``excluded``) first,
    to raise the threshold early; returns how many were scored."""
    cdef Py_ssize_t q
    cdef int64_t item, exact = 0
    for q in range(n_warm):
        item = warm[q]
        if mask[item] or excluded[item]:
            continue
        exact += 1
        _offer(item, user, items, dims, extra, factor, k, slack, out_scores, out_ids, size, threshold)
    return exact


cdef inline bint _has_bonus(Py_ssize_t q, Py_ssize_t n_bonus, const RowScratch* bonus,
                            bint by_value) noexcept nogil:
    """Whether column q is one of the row's bonus columns (handled in their own pass)."""
    if n_bonus == 0:
        return False
    return bonus.values[q] != 0 if by_value else bonus.listed[q] != 0


cdef inline double _bonus_slack(double slack, double largest_bonus, bint wide) noexcept nogil:
    """The bound's allowance with the bonus's own rounding added: a few ulps of its size
    (``wide``: double scores, else float)."""
    return slack + 4.0 * largest_bonus * (1e-15 if wide else 1.2e-7)


cdef inline void _finish_row(RowScratch* bonus, Py_ssize_t n_bonus, bint by_value, Py_ssize_t k,
                             Py_ssize_t size, int64_t* out_ids, value_t* out_scores) noexcept nogil:
    """Rank the row's heap, pad it to k with -1 / -inf, and clear its bonus."""
    cdef Py_ssize_t q
    heap_sort(out_scores, out_ids, size)
    for q in range(size, k):
        out_scores[q] = -INFINITY
        out_ids[q] = -1
    if by_value:
        scratch_clear(bonus, n_bonus, True)
    else:
        scratch_clear(bonus, n_bonus, False)


cdef int64_t _row_topk(const value_t* row, Py_ssize_t n, const value_t* user, const value_t* items,
                       Py_ssize_t dims, double slack, const int64_t* warm, Py_ssize_t n_warm,
                       const uint8_t* is_warm, const uint8_t* mask, const uint8_t* excluded,
                       RowScratch* bonus, Py_ssize_t n_bonus, double factor,
                       double largest_bonus, bint by_value, Py_ssize_t k, int64_t* out_ids,
                       value_t* out_scores) noexcept nogil:
    """One row of ``pruned_topk`` over item bounds: the row's bonus is ``factor`` times
    ``bonus`` on its ``n_bonus`` listed columns (zero elsewhere, not read when there are
    none; listed by value if ``by_value``), at most ``largest_bonus`` in absolute value;
    it is cleared on return.

    Order: the warm items, then the bounds row in sequence (the bonus columns left out),
    then the bonus columns, whose bound is the row's plus their bonus: by then the row is
    in cache, where a bonus added into it first would fetch a line per column."""
    cdef Py_ssize_t q, p, size = 0
    cdef int64_t exact = 0
    cdef const double* extra = bonus.values if n_bonus else NULL
    cdef value_t threshold = -INFINITY  # bound below which nothing can enter, once full
    slack = _bonus_slack(slack, largest_bonus, value_t is double)

    exact += _offer_warm(warm, n_warm, mask, excluded, user, items, dims, extra, factor, k, slack,
                         out_scores, out_ids, &size, &threshold)

    q = _next_reaching(row, 0, n, threshold)
    while q < n:
        if not (is_warm[q] or mask[q] or excluded[q] or _has_bonus(q, n_bonus, bonus, by_value)):
            exact += 1
            _offer(q, user, items, dims, extra, factor, k, slack, out_scores, out_ids, &size, &threshold)
        q = _next_reaching(row, q + 1, n, threshold)

    for p in range(n_bonus):
        q = bonus.seen[p]
        if <value_t>(row[q] + factor * extra[q]) < threshold or is_warm[q] or mask[q] or excluded[q]:
            continue
        exact += 1
        _offer(q, user, items, dims, extra, factor, k, slack, out_scores, out_ids, &size, &threshold)

    _finish_row(bonus, n_bonus, by_value, k, size, out_ids, out_scores)
    return exact


def pruned_topk(const value_t[:, ::1] bounds, const value_t[:, ::1] users, const value_t[:, ::1] items,
                const double[::1] slack, const int64_t[::1] warm, const uint8_t[::1] is_warm,
                const uint8_t[:, ::1] dense_mask, const pattern_t[::1] seen_indptr,
                const pattern_t[::1] seen_indices, list terms, const int64_t[::1] term_rows,
                const int64_t[::1] mean_items, const int64_t[::1] mean_indptr, const int64_t[::1] mean_of,
                const double[::1] mean_weights, int64_t[:, ::1] out_ids, value_t[:, ::1] out_scores,
                double[::1] out_shift, uint8_t[::1] workspace, int num_threads, tuple groups=None):
    """Top-k of ``users @ items.T + bonus`` per row; returns how many exact scores it took.

    Contract (checked by ``fastrec.mips``): ``bounds`` (rows, n) are upper bounds of
    ``users @ items.T`` to within ``slack``.  ``warm`` lists items scored first, to raise the
    threshold early (it may be empty), and ``is_warm`` (n,) marks them.  ``dense_mask`` (1 or rows, n):
    non-zero excludes the column; ``seen_*``: a CSR of excluded columns per row, sorted.
    The bonus of row r: each of ``terms`` (tuples of ``Term``'s arrays, X and T CSR with
    the same dtypes, T with n columns, and ``positive`` only if every x * t is > 0 in
    double) contributes ``weight * normalise(X[term_rows[r]] @ T)``,
    less the normalisation's constant, which goes to ``out_shift[r]`` (summed over terms);
    then item ``mean_items[m]`` gets ``mean_weights @ bonus[mean_of]`` over its CSR row
    ``mean_indptr[m]:mean_indptr[m + 1]`` (no mean item among the ``mean_of``).  Every
    array is at least one long (``term_rows`` one per row), whatever its used length.
    A NaN or -inf score is never a candidate; rows with fewer than k candidates are
    padded with id -1 and score -inf.  ``workspace``: ``workspace_bytes(n, num_threads)``
    bytes of any content, 8-byte aligned (the per-thread scratch, reused across calls).

    Two levels: ``groups`` is ``(box_slack, side, item_side, group_indptr, group_items,
    position, group_of, box, root)``: the items in groups (``group_indptr`` over
    ``group_items``, the items in group order; ``position`` each item's place in that
    order and ``group_of`` its group, int32; ``item_side`` (n, width) their bound vectors
    in that order), ``side`` (rows, width) the rows' bound vectors, so that
    ``item_side . side[r]`` bounds a score to within ``slack[r]``.  ``bounds`` (rows,
    groups) then bounds every item bound of a group to within ``box_slack[r]``: they are
    ``side+ . box[:width] + side- . box[width:]`` (``box`` (2 width, groups) each group's
    highest then lowest coordinates), and ``root[r]`` (double) is at least every one of
    them.  ``bounds`` with no columns: the kernel computes a row's group bounds itself
    where ``root`` reaches its threshold.
    """
    cdef Py_ssize_t n_rows = bounds.shape[0], n = items.shape[0], dims = users.shape[1]
    cdef Py_ssize_t k = out_ids.shape[1], r, n_terms = len(terms), n_means = mean_indptr.shape[0] - 1
    cdef Py_ssize_t n_bonus, m, p
    cdef double factor, largest
    cdef bint by_value
    cdef bint shared_mask = dense_mask.shape[0] == 1, has_bonus = n_terms > 0 or n_means > 0
    cdef bint grouped = groups is not None
    cdef int64_t exact = 0
    cdef RowScratch term_row, bonus
    cdef Py_ssize_t room = scratch_bytes(n)
    cdef double* listed_bonus  # per thread: the bonus columns' values, in listing order
    cdef Picks picks
    cdef uint8_t* excluded  # per thread: 1 on the row's seen columns
    cdef char* base
    cdef Term* term_array
    cdef Groups group_set
    cdef const double[::1] box_slack
    cdef const value_t[:, ::1] side, item_side
    cdef const int64_t[::1] group_indptr, group_items, position
    cdef const int32_t[::1] group_of
    cdef const value_t[:, ::1] box
    cdef const double[::1] root
    cdef const double* box_slack_at = NULL  # the groups' arrays, for the parallel block
    cdef const double* root_at = NULL
    cdef const value_t* side_at = NULL
    cdef value_t* lazy_bounds  # per thread: a row's group bounds, where the kernel computes them
    cdef bint lazy = grouped and bounds.shape[1] == 0
    cdef const int64_t* warm_at = &warm[0] if warm.shape[0] else NULL  # none: a bonus leads
    if n_rows == 0 or k == 0:
        return 0
    if workspace.shape[0] < workspace_bytes(n, num_threads) or <uintptr_t>&workspace[0] % 8:
        raise ValueError("pruned_topk: the workspace is too small or not 8-byte aligned")
    if grouped:
        box_slack, side, item_side, group_indptr, group_items, position, group_of, box, root = groups
        group_set.count = group_indptr.shape[0] - 1
        group_set.width = side.shape[1]
        group_set.indptr = &group_indptr[0]
        group_set.items = &group_items[0]
        group_set.position = &position[0]
        group_set.group_of = &group_of[0]
        group_set.item_side = &item_side[0, 0]
        group_set.box = &box[0, 0]
        if ((bounds.shape[1] != group_set.count and not lazy) or item_side.shape[0] != n
                or item_side.shape[1] != side.shape[1] or side.shape[0] != n_rows
                or group_indptr[group_set.count] != n or position.shape[0] != n or group_of.shape[0] != n
                or box.shape[0] != 2 * side.shape[1] or box.shape[1] != group_set.count
                or root.shape[0] != n_rows or box_slack.shape[0] != n_rows):
            raise ValueError("pruned_topk: the groups do not match the bounds and the items")
        box_slack_at = &box_slack[0]
        root_at = &root[0]
        side_at = &side[0, 0]
    elif bounds.shape[1] != n:
        raise ValueError("pruned_topk: the bounds do not match the items")
    term_array = <Term*>malloc((n_terms + 1) * sizeof(Term))
    if term_array == NULL:
        raise MemoryError("pruned_topk: cannot allocate the bonus terms")
    try:
        for m in range(n_terms):
            term_array[m] = _term(terms[m])
        with nogil, parallel(num_threads=num_threads):
            base = <char*>&workspace[0] + _thread_bytes(n) * threadid()
            term_row = scratch_at(base, n if has_bonus else 0)  # assigned here: private to the thread
            bonus = scratch_at(base + room, n if has_bonus else 0)
            listed_bonus = <double*>(base + _room_at(n, LISTED_ROOM))
            excluded = <uint8_t*>(base + _room_at(n, EXCLUDED_ROOM))
            lazy_bounds = <value_t*>(base + _room_at(n, LAZY_ROOM))
            memset(excluded, 0, n + 1)
            picks = _picks_at(base + _room_at(n, PICKS_ROOM),
                              min(max(k, <Py_ssize_t>FIRST_GROUPS), <Py_ssize_t>FIRST_BONUS) if grouped else 0,
                              &is_warm[0], excluded)
            for r in prange(n_rows, schedule="dynamic"):
                for p in range(seen_indptr[r], seen_indptr[r + 1]):  # the row's seen, as flags
                    excluded[seen_indices[p]] = 1
                n_bonus = 0
                out_shift[r] = 0.0
                factor = 1.0
                largest = 0.0
                by_value = False
                picks.size = 0
                picks.sign = 1.0
                picks.mask = &dense_mask[0 if shared_mask else r, 0]
                if n_terms == 1 and n_means == 0:
                    n_bonus = _one_term_bonus(&term_array[0], term_rows[r], n, &bonus, &factor,
                                              &largest, &out_shift[r], listed_bonus, &picks)
                    by_value = term_array[0].positive
                elif has_bonus:
                    n_bonus = _row_bonus(term_array, n_terms, term_rows[r], n, &mean_items[0],
                                         n_means, &mean_indptr[0], &mean_of[0],
                                         &mean_weights[0], &term_row, &bonus, &out_shift[r])
                    for p in range(n_bonus):
                        listed_bonus[p] = bonus.values[bonus.seen[p]]
                        largest = max(largest, fabs(listed_bonus[p]))
                        _pick(&picks, p, bonus.seen[p], listed_bonus[p])
                if grouped:
                    exact += _grouped_row(NULL if lazy else &bounds[r, 0], root_at[r], lazy_bounds, box_slack_at[r],
                                          &group_set, side_at + r * group_set.width,
                                          &users[r, 0],
                                          &items[0, 0], dims, slack[r], warm_at, warm.shape[0], &is_warm[0],
                                          &dense_mask[0 if shared_mask else r, 0], excluded,
                                          &bonus, n_bonus, factor, largest, by_value, listed_bonus, &picks, k,
                                          &out_ids[r, 0], &out_scores[r, 0])
                else:
                    exact += _row_topk(&bounds[r, 0], n, &users[r, 0], &items[0, 0], dims, slack[r],
                                       warm_at, warm.shape[0], &is_warm[0],
                                       &dense_mask[0 if shared_mask else r, 0], excluded,
                                       &bonus, n_bonus, factor, largest, by_value, k, &out_ids[r, 0],
                                       &out_scores[r, 0])
                for p in range(seen_indptr[r], seen_indptr[r + 1]):
                    excluded[seen_indices[p]] = 0
    finally:
        free(term_array)
    return exact


cdef enum:  # the parts of a thread's workspace after its two RowScratch, in order
    LISTED_ROOM = 0    # a double per column: the bonus columns' values, in listing order
    EXCLUDED_ROOM = 1  # a flag per column: the row's seen columns
    LAZY_ROOM = 2      # a double per column: the row's group bounds, where the kernel computes them
    PICKS_ROOM = 3     # the picks: FIRST_BONUS positions and keys
    END_ROOM = 4


cdef inline Py_ssize_t _room_at(Py_ssize_t n, int part) noexcept nogil:
    """Where ``part`` of a thread's workspace starts (8-byte aligned); END_ROOM: its size."""
    cdef Py_ssize_t at = 2 * scratch_bytes(n)
    if part > LISTED_ROOM:
        at += (n + 1) * sizeof(double)
    if part > EXCLUDED_ROOM:
        at += (n + 8) // 8 * 8
    if part > LAZY_ROOM:
        at += (n + 1) * sizeof(double)
    if part > PICKS_ROOM:
        at += FIRST_BONUS * (sizeof(Py_ssize_t) + sizeof(double))
    return at


cdef inline Py_ssize_t _thread_bytes(Py_ssize_t n) noexcept nogil:
    """A thread's part of the workspace: two RowScratch, then the parts of ``_room_at``."""
    return _room_at(n, END_ROOM)


def workspace_bytes(Py_ssize_t n, int num_threads):
    """The bytes of ``pruned_topk``'s workspace for n items and ``num_threads`` threads."""
    return _thread_bytes(n) * max(num_threads, 1)


# ------------------------------------------------------------- two-level search
cdef enum:
    FIRST_GROUPS = 8  # the best group bounds, taken best first before the sequential pass
    FIRST_BONUS = 32  # at most this many candidate bonus columns, the largest bonus first, before the groups

FIRST_BONUS_COLUMNS = FIRST_BONUS  # for fastrec.mips: up to this k a bonus's first columns can fill the top k


cdef struct Groups:  # the two-level search's items in groups (see ``pruned_topk``)
    Py_ssize_t count
    Py_ssize_t width        # of a bound vector: head + 1
    const int64_t* indptr   # group g's items: items[indptr[g]:indptr[g + 1]]
    const int64_t* items    # the items in group order
    const int64_t* position  # item j's place in group order
    const int32_t* group_of  # item j's group
    const void* item_side   # (n, width) the items' bound vectors, in group order
    const void* box         # (2 width, count): each group's highest coordinates, then lowest


cdef inline Py_ssize_t _keep_best(Py_ssize_t* best, value_t* best_bound, Py_ssize_t size,
                                  Py_ssize_t capacity, Py_ssize_t which, value_t bound) noexcept nogil:
    """Insert ``which`` into the list of the ``capacity`` best bounds, kept descending
    (the earlier of equal bounds first); returns the list's new size."""
    cdef Py_ssize_t t
    if size == capacity and not (bound > best_bound[size - 1]):
        return size
    t = size if size < capacity else capacity - 1
    while t > 0 and best_bound[t - 1] < bound:
        best_bound[t] = best_bound[t - 1]
        best[t] = best[t - 1]
        t = t - 1
    best_bound[t] = bound
    best[t] = which
    return size + 1 if size < capacity else size


cdef inline bint _listed(const Py_ssize_t* values, Py_ssize_t size, Py_ssize_t which) noexcept nogil:
    """Whether ``which`` is among the ``size`` values (a short list: no branch per entry)."""
    cdef Py_ssize_t t
    cdef bint found = False
    for t in range(size):
        found = found or values[t] == which
    return found


cdef void _fill_group_bounds(const Groups* groups, const value_t* side, value_t* out) noexcept nogil:
    """Every group's bound for one row, ``side+ . high + side- . low`` (what the caller's
    BLAS product gives for the others), one axpy per coordinate."""
    cdef Py_ssize_t g, d, count = groups.count, width = groups.width
    cdef const value_t* box = <const value_t*>groups.box
    cdef const value_t* row
    cdef value_t coef
    for g in range(count):
        out[g] = 0
    for d in range(2 * width):
        coef = max(side[d], <value_t>0) if d < width else min(side[d - width], <value_t>0)
        row = box + d * count
        for g in range(count):
            out[g] = out[g] + coef * row[g]


cdef int64_t _group(Py_ssize_t g, const Groups* groups, const value_t* side, const value_t* user,
                    const value_t* items, Py_ssize_t dims, double slack, const uint8_t* is_warm,
                    const uint8_t* mask, const uint8_t* excluded, const RowScratch* bonus, Py_ssize_t n_bonus, bint by_value, Py_ssize_t k,
                    value_t* out_scores, int64_t* out_ids, Py_ssize_t* size,
                    value_t* threshold) noexcept nogil:
    """Bound every item of group g and score exactly those whose bound reaches the
    threshold (the bonus columns left to their own pass: their bonus is not in the bound)."""
    cdef Py_ssize_t p
    cdef int64_t item, exact = 0
    cdef const value_t* item_side = <const value_t*>groups.item_side
    for p in range(groups.indptr[g], groups.indptr[g + 1]):
        if <value_t>_dot(item_side + p * groups.width, side, groups.width) < threshold[0]:
            continue
        item = groups.items[p]
        if is_warm[item] or mask[item] or excluded[item] or _has_bonus(item, n_bonus, bonus, by_value):
            continue
        exact += 1
        _offer(item, user, items, dims, NULL, 1.0, k, slack, out_scores, out_ids, size, threshold)
    return exact


cdef inline int64_t _bonus_column(Py_ssize_t q, double column_bonus, const value_t* group_bounds,
                                  double root, value_t box_extra, const Groups* groups, const value_t* side,
                                  const value_t* user, const value_t* items, Py_ssize_t dims, double slack,
                                  const double* extra, double factor, Py_ssize_t k,
                                  value_t* out_scores, int64_t* out_ids, Py_ssize_t* size,
                                  value_t* threshold) noexcept nogil:
    """Score bonus column q (a candidate, whose bonus is ``column_bonus``) exactly if its
    group's bound plus its bonus (and the box's allowance) reaches the threshold, then its
    own bound plus its bonus; without ``group_bounds`` (not computed for the row),
    ``root``, the bound of every group, stands for its group's.  Returns 1 if scored."""
    cdef const value_t* item_side = <const value_t*>groups.item_side
    cdef double group_bound = group_bounds[groups.group_of[q]] if group_bounds != NULL else root
    if <value_t>(group_bound + column_bonus + box_extra) < threshold[0]:
        return 0
    if <value_t>(_dot(item_side + groups.position[q] * groups.width, side, groups.width)
                 + column_bonus) < threshold[0]:
        return 0
    _offer(q, user, items, dims, extra, factor, k, slack, out_scores, out_ids, size, threshold)
    return 1


cdef int64_t _grouped_row(const value_t* group_bounds, double root, value_t* lazy_bounds,
                          double box_slack, const Groups* groups,
                          const value_t* side, const value_t* user, const value_t* items, Py_ssize_t dims,
                          double slack, const int64_t* warm, Py_ssize_t n_warm, const uint8_t* is_warm,
                          const uint8_t* mask, const uint8_t* excluded, RowScratch* bonus, Py_ssize_t n_bonus,
                          double factor, double largest_bonus, bint by_value, double* listed_bonus,
                          const Picks* picks, Py_ssize_t k, int64_t* out_ids, value_t* out_scores) noexcept nogil:
    """One row of ``pruned_topk`` over group bounds (the bonus as for ``_row_topk``;
    ``listed_bonus`` the bonus columns' values before ``factor``, in listing order, where
    the row marks the columns it takes by NaN; ``picks`` its first candidate columns).
    ``group_bounds`` NULL: computed into ``lazy_bounds`` only if ``root``, the bound of
    the box of every item, reaches the threshold once the first bonus columns are in (a
    leading bonus usually spares them).

    Order: the warm items (the caller may give none where a bonus leads); the picks, the
    max(k, FIRST_GROUPS), at most FIRST_BONUS, candidate bonus columns with the largest
    bonus (a bonus lifts the columns it touches: they raise the threshold most); the
    FIRST_GROUPS best groups, best first; every other group whose bound reaches the k-th best, in
    sequence; then the other bonus columns.  A bonus column is bounded by the row's best
    group bound plus its bonus, then its group's, then its own."""
    cdef Py_ssize_t g, p, t, size = 0, n_first = 0
    cdef double value
    cdef Py_ssize_t first[FIRST_GROUPS]
    cdef value_t first_bound[FIRST_GROUPS]
    cdef value_t threshold = -INFINITY
    cdef int64_t exact = 0
    cdef const double* extra = bonus.values if n_bonus else NULL
    # a group is passed over while its bound is below the threshold (which allows for the
    # items' bounds) less the group bound's own rounding allowance
    cdef value_t box_extra = <value_t>box_slack
    slack = _bonus_slack(slack, largest_bonus, value_t is double)

    exact += _offer_warm(warm, n_warm, mask, excluded, user, items, dims, extra, factor, k, slack,
                         out_scores, out_ids, &size, &threshold)

    for t in range(picks.size):
        p = picks.at[t]
        value = factor * listed_bonus[p]
        listed_bonus[p] = NAN  # taken
        exact += _bonus_column(bonus.seen[p], value, group_bounds, root, box_extra, groups, side, user, items,
                               dims, slack, extra, factor, k, out_scores, out_ids, &size, &threshold)

    if group_bounds == NULL:
        if <value_t>root < threshold - box_extra:  # no group can reach: the bonus columns alone
            return _bonus_pass(listed_bonus, root, NULL, box_extra, groups, side, user, items, dims, slack,
                               is_warm, mask, excluded,
                               bonus, n_bonus, factor, by_value, k, out_ids, out_scores, size, threshold, exact)
        _fill_group_bounds(groups, side, lazy_bounds)
        group_bounds = lazy_bounds
    g = _next_reaching(group_bounds, 0, groups.count, threshold - box_extra)
    while g < groups.count:
        n_first = _keep_best(first, first_bound, n_first, FIRST_GROUPS, g, group_bounds[g])
        g = _next_reaching(group_bounds, g + 1, groups.count, threshold - box_extra)
    for t in range(n_first):
        if first_bound[t] < threshold - box_extra:
            break
        exact += _group(first[t], groups, side, user, items, dims, slack, is_warm, mask, excluded,
                        bonus, n_bonus, by_value, k, out_scores, out_ids, &size, &threshold)
    g = _next_reaching(group_bounds, 0, groups.count, threshold - box_extra)
    while g < groups.count:
        if not _listed(first, n_first, g):
            exact += _group(g, groups, side, user, items, dims, slack, is_warm, mask, excluded,
                            bonus, n_bonus, by_value, k, out_scores, out_ids, &size, &threshold)
        g = _next_reaching(group_bounds, g + 1, groups.count, threshold - box_extra)

    return _bonus_pass(listed_bonus, _largest(group_bounds, groups.count) if n_bonus else root, group_bounds,
                       box_extra, groups, side, user, items, dims, slack, is_warm, mask, excluded,
                       bonus, n_bonus, factor, by_value, k,
                       out_ids, out_scores, size, threshold, exact)


cdef inline double _bonus_cut(double factor, double threshold, double top_group,
                              double box_extra) noexcept nogil:
    """An unscaled bonus below which a column's bound (``factor`` times it plus
    ``top_group`` and ``box_extra``) stays below ``threshold``, with room to spare for
    rounding; -inf unless ``factor`` > 0 (every column is then looked at)."""
    cdef double cut
    if not (factor > 0) or not (threshold > -INFINITY):
        return -INFINITY
    cut = (threshold - top_group - box_extra
           - 1e-6 * (fabs(threshold) + fabs(top_group) + fabs(box_extra))) / factor
    return cut - 1e-9 * fabs(cut)


cdef int64_t _bonus_pass(const double* listed_bonus, double top_group, const value_t* group_bounds,
                         value_t box_extra, const Groups* groups, const value_t* side, const value_t* user,
                         const value_t* items, Py_ssize_t dims, double slack, const uint8_t* is_warm,
                         const uint8_t* mask, const uint8_t* excluded, RowScratch* bonus,
                         Py_ssize_t n_bonus, double factor, bint by_value, Py_ssize_t k, int64_t* out_ids,
                         value_t* out_scores, Py_ssize_t size, value_t threshold, int64_t exact) noexcept nogil:
    """The end of ``_grouped_row``: the candidate bonus columns not taken yet (their
    unscaled bonus in ``listed_bonus``, NaN once taken), those whose bonus cannot lift
    ``top_group``, the best group bound, passed over (SKIP_CHUNK at a time below
    ``_bonus_cut``); then the row ranked and its bonus cleared.  Returns
    ``exact`` plus the exact scores taken."""
    cdef Py_ssize_t p
    cdef int64_t q
    cdef double value
    cdef const double* extra = bonus.values if n_bonus else NULL
    cdef double cut = _bonus_cut(factor, threshold, top_group, box_extra)
    p = _next_reaching(listed_bonus, 0, n_bonus, cut)
    while p < n_bonus:
        value = factor * listed_bonus[p]
        q = bonus.seen[p]
        # NaN marks a column taken: told apart explicitly, since a threshold still at
        # -inf (fewer candidates than k so far) passes every bound
        if (value > -INFINITY and not (<value_t>(value + top_group + box_extra) < threshold)
                and not (is_warm[q] | mask[q] | excluded[q])):
            if _bonus_column(q, value, group_bounds, top_group, box_extra, groups, side,
                             user, items, dims, slack, extra, factor, k, out_scores, out_ids, &size, &threshold):
                exact += 1
                cut = _bonus_cut(factor, threshold, top_group, box_extra)
        p = _next_reaching(listed_bonus, p + 1, n_bonus, cut)
    _finish_row(bonus, n_bonus, by_value, k, size, out_ids, out_scores)
    return exact
