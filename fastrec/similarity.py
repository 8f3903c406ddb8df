"""Item-item and user-user similarity with top-k neighbours, on sparse data only.

One name, one meaning everywhere in fastrec.  With :math:`x_a` the vector of row a
(an item's ratings by user for item similarity, a user's ratings by item for user
similarity), :math:`C_{ab}` the columns both rows have, :math:`n_{ab} = |C_{ab}|`:

Whole-vector measures (what implicit and scikit-learn compute):

- ``"cosine"``: :math:`x_a \\cdot x_b / (\\lVert x_a \\rVert \\lVert x_b \\rVert)`;
- ``"adjusted_cosine"``: cosine of ratings centred by their user's mean rating;
- ``"jaccard"``: :math:`n_{ab} / (|x_a| + |x_b| - n_{ab})` on the binary pattern;
- ``"tfidf"``: cosine of :math:`\\sqrt{x} \\cdot \\mathrm{idf}`, with
  :math:`\\mathrm{idf}_c = \\log N - \\log(1 + \\mathrm{df}_c)` (implicit's TFIDFRecommender);
- ``"bm25"``: dot product of BM25-weighted vectors,
  :math:`x (K_1 + 1) / (K_1 ((1 - B) + B\\, |x_a|_1 / \\mathrm{avg}) + x) \\cdot \\mathrm{idf}`
  (implicit's BM25Recommender; ``bm25_k1``, ``bm25_b``).

scikit-surprise's measures, with its exact definitions (sums over :math:`C_{ab}` only):

- ``"corated_cosine"``: :math:`\\sum x_a x_b / \\sqrt{\\sum x_a^2 \\sum x_b^2}`
  (Surprise's ``cosine``);
- ``"msd"``: :math:`1 / (\\frac{1}{n_{ab}} \\sum (x_a - x_b)^2 + 1)`;
- ``"pearson"``: the Pearson correlation over :math:`C_{ab}` (co-rated means);
- ``"pearson_baseline"``: co-rated cosine of :math:`r - (\\mu + b_u + b_i)`, with the
  biases of a :class:`fastrec.Baseline`, shrunk by
  :math:`(n_{ab} - 1) / (n_{ab} - 1 + \\lambda)` (default :math:`\\lambda = 100`, and
  ``min_support`` at least 2), as Surprise does.

Every other measure is shrunk by :math:`n_{ab} / (n_{ab} + \\lambda)` when
``shrinkage`` = :math:`\\lambda > 0`; pairs with :math:`n_{ab}` < ``min_support`` score 0.

Memory: top-k keeps O(nnz + n k + threads n), never an n x n matrix; only problems
whose every pair fits ``TOPK_FROM_ALL_PAIRS_BYTES`` (64 MB) take their top k as the
first k of every pair's sorted rows, which is faster there.  ``k=None`` holds every
non-zero pair, as it returns them.
"""
import dataclasses

import numpy as np
import scipy.sparse as sp

from fastrec._checks import check_choice, check_non_negative_float, check_positive_int
from fastrec._scratch import empty_together
from fastrec._threads import effective_num_threads
from fastrec.data import Interactions, as_interactions

BACKENDS = ("auto", "compiled", "numpy")
BM25_K1, BM25_B = 1.2, 0.75  # implicit's defaults
FULL_PASS_BYTES = 256 * 2**20  # k=None: room for the pairs scored once, allowed before counting them
MIRROR_TOP_BYTES = 256 * 2**20  # top-k: per-thread candidate buffers allowed for scoring pairs once
TOPK_FROM_ALL_PAIRS_BYTES = 64 * 2**20  # top-k: taken from every pair's rows while those fit this...
TOPK_FROM_ALL_PAIRS_MIN_UPDATES = 1.0   # ...and a pair gets this many updates on average
MIRROR_TOP_MIN_UPDATES = 1.0    # top-k: scores each pair once from this many updates per possible pair


@dataclasses.dataclass(frozen=True)
class _Metric:
    measure: str                  # kernel measure
    needs_ratings: bool = False
    shrink_mode: str = "support"
    default_shrinkage: float = 0.0
    min_support_floor: int = 1


METRICS = {
    "cosine": _Metric("dot"),                 # the kernel sees unit-length rows
    "adjusted_cosine": _Metric("dot", needs_ratings=True),
    "jaccard": _Metric("jaccard"),
    "tfidf": _Metric("dot"),
    "bm25": _Metric("dot"),                   # implicit's BM25: no normalisation
    "corated_cosine": _Metric("corated_cosine", needs_ratings=True),
    "msd": _Metric("msd", needs_ratings=True),
    "pearson": _Metric("pearson", needs_ratings=True),
    "pearson_baseline": _Metric("corated_cosine", needs_ratings=True, shrink_mode="baseline",
                                default_shrinkage=100.0, min_support_floor=2),
}
CONTENT_METRICS = ("cosine", "jaccard", "tfidf", "bm25")
RAW_VALUE_METRICS = ("jaccard", "corated_cosine", "msd", "pearson")  # compare the stored values


def item_similarity(data, metric="cosine", k=50, *, shrinkage=None, min_support=1,
                    num_threads=None, dtype=np.float32, backend="auto", baseline=None,
                    bm25_k1=BM25_K1, bm25_b=BM25_B):
    """Top-k most similar items of every item.

    Parameters
    ----------
    data : Interactions or scipy sparse (n_users, n_items)
        Converted once, never densified.
    metric : str
        One of the measures in this module's docstring.
    k : int >= 1 or None
        Neighbours kept per item; None keeps every non-zero score.
    shrinkage : float >= 0, optional
        Default 0, or 100 for ``"pearson_baseline"``.
    min_support : int >= 1
        Pairs with fewer co-rated users score 0.
    num_threads : int, optional
        None or 0 for every core; the result does not depend on it.
    dtype : float32 or float64
        Of the scores (accumulation is always in float64).
    backend : {"auto", "compiled", "numpy"}
        "numpy" runs the SciPy reference.
    baseline : fitted fastrec.Baseline, optional
        Biases for ``"pearson_baseline"`` (default: ``Baseline()`` fitted on ``data``).
    bm25_k1, bm25_b : float
        BM25 parameters.

    Returns
    -------
    scipy.sparse.csr_array (n_items, n_items)
        At most k entries per row, the item itself excluded, each row stored in
        descending score order (ties: lower id); ids are the data's item indices.
        :func:`topk_arrays` turns it into padded ``(ids, scores)`` arrays.
    """
    return _similarity(data, "items", metric, k, shrinkage, min_support, num_threads, dtype,
                       backend, baseline, bm25_k1, bm25_b)


def user_similarity(data, metric="cosine", k=50, *, shrinkage=None, min_support=1,
                    num_threads=None, dtype=np.float32, backend="auto", baseline=None,
                    bm25_k1=BM25_K1, bm25_b=BM25_B):
    """Top-k most similar users of every user; parameters as :func:`item_similarity`."""
    return _similarity(data, "users", metric, k, shrinkage, min_support, num_threads, dtype,
                       backend, baseline, bm25_k1, bm25_b)


def content_similarity(features, metric="cosine", k=50, *, shrinkage=None, min_support=1,
                       num_threads=None, dtype=np.float32, backend="auto", bm25_k1=BM25_K1,
                       bm25_b=BM25_B):
    """Item-item similarity from side information (genres, tags) for cold-start items.

    ``features`` is an Interactions with ``item_features`` or a sparse
    (n_items, n_features) matrix; ``metric`` is one of cosine, jaccard, tfidf, bm25.
    """
    if isinstance(features, Interactions):
        if features.item_features is None:
            raise ValueError("this Interactions has no item_features; attach them with with_item_features")
        features = features.item_features
    if not sp.issparse(features):
        raise TypeError(f"features must be a scipy sparse matrix, got {type(features).__name__}")
    check_choice(metric, "metric", CONTENT_METRICS)
    # items are compared as "users" of a features x items matrix: rows of features
    matrix = Interactions.from_sparse(sp.csr_array(features).T, implicit=True)
    return _similarity(matrix, "items", metric, k, shrinkage, min_support, num_threads, dtype,
                       backend, None, bm25_k1, bm25_b)


def topk_arrays(similarity, k=None):
    """``(ids, scores)`` of shape (n, k) from a neighbour matrix, padded with -1 / -inf.

    Rows are ordered by score descending, ties by the lower id; ``k`` defaults to the
    longest row.
    """
    sim = sp.csr_array(similarity)
    n = sim.shape[0]
    lengths = np.diff(sim.indptr)
    width = int(lengths.max(initial=0)) if k is None else check_positive_int(k, "k", minimum=0)
    rows = np.repeat(np.arange(n), lengths)
    order = np.lexsort((sim.indices, -sim.data, rows))
    rank = np.arange(rows.size) - sim.indptr[rows]
    keep = rank < width
    ids = np.full((n, width), -1, dtype=sim.indices.dtype)
    scores = np.full((n, width), -np.inf, dtype=sim.dtype)
    ids[rows[keep], rank[keep]] = sim.indices[order][keep]
    scores[rows[keep], rank[keep]] = sim.data[order][keep]
    return ids, scores


# ---------------------------------------------------------------------------------
def _similarity(data, orientation, metric, k, shrinkage, min_support, num_threads, dtype,
                backend, baseline, bm25_k1, bm25_b):
    """Check everything, prepare the two orientations of the values, run a backend."""
    check_choice(metric, "metric", tuple(METRICS))
    spec = METRICS[metric]
    k = check_positive_int(k, "k", allow_none=True)
    shrinkage = spec.default_shrinkage if shrinkage is None else check_non_negative_float(shrinkage, "shrinkage")
    min_support = max(check_positive_int(min_support, "min_support"), spec.min_support_floor)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    check_choice(backend, "backend", BACKENDS)
    threads = effective_num_threads(num_threads)
    data = as_interactions(data)
    _check_data_for(metric, spec, data, bm25_k1, bm25_b)

    # the stored values need no float64 copy of their own: astype(dtype) copies them, as
    # _prepared_values gives the others in dtype
    values = (data.values.astype(dtype) if metric in RAW_VALUE_METRICS
              else _prepared_values(data, metric, orientation, baseline, bm25_k1, bm25_b,
                                    dtype=dtype, threads=threads, backend=backend))
    n, m = (data.n_items, data.n_users) if orientation == "items" else (data.n_users, data.n_items)
    index_dtype = data.csr.indices.dtype
    if spec.measure == "dot" and min_support <= 1 and not shrinkage and values.min(initial=1) > 0:
        spec = dataclasses.replace(spec, measure="dot_positive")  # no support count needed
    # (data, indices, indptr) of R and of R^T as CSR, not scipy matrices: on ml-100k each
    # matrix built costs more than its arrays (~0.1-0.2 ms, right after the kernels)
    by_user = (values, data.csr.indices, data.csr.indptr.astype(index_dtype, copy=False))
    if backend == "numpy":
        from fastrec.reference.similarity import similarity_topk as reference

        x = sp.csr_array(by_user, shape=data.shape)
        if orientation == "items":  # the CSC's arrays are the CSR of R^T
            x = x.tocsc()
            x = sp.csr_array((x.data, x.indices, x.indptr), shape=(n, m))
        result = reference(x, spec.measure, shrinkage=shrinkage, shrink_mode=spec.shrink_mode,
                           min_support=min_support, k=k, dtype=dtype)
        result.indices = result.indices.astype(index_dtype)
        return result
    # R^T: the arrays of the data's own (cached) CSC when the values are the stored ones,
    # else those tocsc would give, made in parallel
    if metric in RAW_VALUE_METRICS:
        csc = data.csc
        by_item = (csc.data.astype(np.float64, copy=False).astype(dtype),
                   csc.indices.astype(index_dtype, copy=False),
                   csc.indptr.astype(index_dtype, copy=False))
    else:
        by_item = _transposed(by_user, data.n_items, threads)
    parts = (by_item, by_user) if orientation == "items" else (by_user, by_item)
    return _run_kernel(parts, n, spec, shrinkage, min_support, k, dtype, threads, index_dtype)


def _check_data_for(metric, spec, data, bm25_k1, bm25_b):
    if spec.needs_ratings and data.is_implicit:
        raise ValueError(f"metric {metric!r} needs explicit ratings; this data is implicit "
                         "(use cosine, jaccard, tfidf or bm25)")
    if metric == "bm25":
        check_non_negative_float(bm25_k1, "bm25_k1")
        check_non_negative_float(bm25_b, "bm25_b")
    # no count can exceed nnz: skip the item count (a bincount over nnz) below that
    if data.nnz >= 2**31 - 1 and max(data.user_counts.max(initial=0),
                                     data.item_counts.max(initial=0)) >= 2**31 - 1:
        raise ValueError("a user or item has 2**31 or more interactions; not supported")
    if metric in ("tfidf", "bm25") and data.nnz and data.values.min() < 0:
        raise ValueError(f"metric {metric!r} weights counts and needs non-negative values")


def _run_kernel(parts, n, spec, shrinkage, min_support, k, dtype, threads, index_dtype):
    """Run the kernels into per-row slots (k) or every pair (None); a CSR matrix."""
    from fastrec._kernels import similarity as kernels

    arrays = [np.ascontiguousarray(arr) for part in parts for arr in part]
    measure = kernels.MEASURES[spec.measure]
    shrink_mode = kernels.SHRINK_MODES[spec.shrink_mode]
    pair_bytes = np.dtype(dtype).itemsize + np.dtype(index_dtype).itemsize
    all_pairs = (arrays, n, measure, shrinkage, shrink_mode, min_support, dtype, threads,
                 index_dtype, pair_bytes)
    if k is None:  # every pair is scored once and handed to both rows
        return _all_pairs(*all_pairs)
    column_lengths = np.diff(parts[1][2]).astype(np.int64)
    # an integer sum, not a float dot: BLAS threads left spinning would slow the kernel
    updates_per_pair = int((column_lengths * column_lengths).sum()) / max(n * n, 1)
    # all pairs' rows come sorted, so their first k are the top k.  On small problems
    # whose pairs share columns that beats keeping a running top k, at a bounded cost in
    # memory (k=40, 2 threads: ml-100k user MSD 5.8 against 11.4 ms, item MSD 10.8
    # against 18.7, item cosine 12.0 against 12.7; 2,800 items at 0.04-0.4 updates a
    # pair: MSD gains up to 30%, cosine loses 5-15%)
    if (n * (n - 1) * pair_bytes <= TOPK_FROM_ALL_PAIRS_BYTES
            and updates_per_pair >= TOPK_FROM_ALL_PAIRS_MIN_UPDATES):
        every = _all_pairs(*all_pairs)
        slots = every.indptr.astype(np.int64)
        return _first_in_slots(slots, np.minimum(np.diff(slots), k), every.indices, every.data,
                               n, threads)
    width = min(k, max(n - 1, 0))
    # every measure is symmetric: score each pair once and hand the score to both rows.
    # With top-k, the hand-over goes through per-thread buffers (threads * n * 2k pairs)
    # and costs a scattered write per pair: worth it when the accumulation it halves is
    # larger, i.e. a pair gets several updates (kernel time on the synthetic cosine
    # cases: 0.05 updates per possible pair lose ~25%, 0.4 lose ~15%, 4 gain ~25%), and
    # while the buffers are small.
    if (width >= 1 and updates_per_pair >= MIRROR_TOP_MIN_UPDATES
            and threads * n * 2 * width * pair_bytes <= MIRROR_TOP_BYTES):
        mirror = kernels.MIRROR_MODES["top"]
    else:
        mirror = kernels.MIRROR_MODES["none"]
    slots = np.arange(n + 1, dtype=np.int64) * width
    counts = np.zeros(n, dtype=np.int64)
    ids, scores = empty_together(slots[-1], (index_dtype, dtype))
    kernels.similarity_topk(*arrays, measure, float(shrinkage), shrink_mode, min_support,
                            slots, ids, scores, counts, mirror, threads)
    return _first_in_slots(slots, counts, ids, scores, n, threads)


def _first_in_slots(slots, counts, ids, scores, n, threads):
    """The n x n CSR of the first ``counts[a]`` entries from ``slots[a]`` of each row."""
    from fastrec._kernels import similarity as kernels

    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    if indptr[-1] != slots[-1]:  # rows did not fill their slots: close the gaps
        packed_ids, packed_scores = empty_together(indptr[-1], (ids.dtype, scores.dtype))
        kernels.compact_rows(slots, counts, ids, scores, indptr, packed_ids, packed_scores, threads)
        ids, scores = packed_ids, packed_scores
    return _csr_rows(scores, ids, indptr, n)


def _csr_rows(scores, ids, indptr, n):
    """The n x n csr_array, its indptr in the ids' dtype where that holds it."""
    if indptr[-1] < np.iinfo(ids.dtype).max:
        indptr = indptr.astype(ids.dtype)
    return sp.csr_array((scores, ids, indptr), shape=(n, n))


def _all_pairs(arrays, n, measure, shrinkage, shrink_mode, min_support, dtype, threads,
               index_dtype, pair_bytes):
    """k=None: each pair scored once by its higher row, then handed to both rows."""
    from fastrec._kernels import similarity as kernels

    # room for the pairs (a, b < a): a slots for row a (untouched room costs no memory)
    # while that fits the budget, else as many as b < a sharing a column with a, and
    # when even those do not fit, a first pass that only counts the pairs
    own_counts = np.empty(n, dtype=np.int64)
    handed_counts = np.empty(n, dtype=np.int64)
    rows = np.arange(n + 1, dtype=np.int64)
    own_slots = rows * (rows - 1) // 2
    if own_slots[-1] * pair_bytes > FULL_PASS_BYTES:
        x_indptr, x_indices, t_indptr = arrays[2], arrays[1], arrays[5]
        reach = np.bincount(_row_ids(x_indptr), weights=np.diff(t_indptr)[x_indices], minlength=n)
        bound = np.minimum(reach.astype(np.int64), rows[:-1])
        if bound.sum() * pair_bytes > FULL_PASS_BYTES:
            kernels.similarity_lower(*arrays, measure, float(shrinkage), shrink_mode, min_support,
                                     own_slots, np.empty(0, index_dtype), np.empty(0, dtype),
                                     own_counts, handed_counts, True, threads)
            bound = own_counts
        own_slots[0] = 0
        np.cumsum(bound, out=own_slots[1:])
    # the own entries never leave this call: reused buffers spare their page faults
    own_ids, own_scores = empty_together(own_slots[-1], (index_dtype, dtype), "similarity.own")
    kernels.similarity_lower(*arrays, measure, float(shrinkage), shrink_mode, min_support,
                             own_slots, own_ids, own_scores, own_counts, handed_counts, False,
                             threads)
    size = 2 * int(own_counts.sum())
    indptr = np.empty(n + 1, dtype=np.int64)
    ids, scores = empty_together(size, (index_dtype, dtype))
    kernels.mirror_rows(own_slots, own_counts, handed_counts, own_ids, own_scores, indptr, ids,
                        scores, threads)
    return _csr_rows(scores, ids, indptr, n)


def _prepared_values(data, metric, orientation, baseline, bm25_k1, bm25_b, *,
                     dtype=np.float64, threads=1, backend="auto"):
    """The values the kernel compares, aligned with ``data.csr`` (a new ``dtype`` array);
    rows of the cosine family are scaled to unit length, so a dot product is the cosine
    (an item row is a column of ``data.csr``)."""
    if metric == "pearson_baseline":
        return _baseline_residuals(data, baseline, dtype, threads, backend)
    values = _transformed_values(data, metric, orientation, baseline, bm25_k1, bm25_b)
    if metric not in ("cosine", "adjusted_cosine", "tfidf"):
        return values.astype(dtype, copy=False)
    csr, by_column = data.csr, orientation == "items"
    if backend == "numpy":
        from fastrec.reference.similarity import scale_to_unit_length

        return scale_to_unit_length(values, csr.indices, csr.indptr, data.n_items, by_column, dtype)
    from fastrec._kernels import similarity as kernels

    scaled = np.empty(values.size, dtype=dtype)
    index_dtype = csr.indices.dtype
    kernels.scale_to_unit_length(values, csr.indices, csr.indptr.astype(index_dtype, copy=False),
                                 data.n_items, by_column, scaled, threads)
    return scaled


def _baseline_residuals(data, baseline, dtype, threads, backend):
    """pearson_baseline's values in ``dtype``: each rating less its baseline."""
    model = _fitted_baseline(data, baseline)
    csr = data.csr
    arrays = (csr.data.astype(np.float64, copy=False), csr.indices,
              csr.indptr.astype(csr.indices.dtype, copy=False), float(model.global_mean_),
              model.user_bias_.astype(np.float64, copy=False),
              model.item_bias_.astype(np.float64, copy=False))
    if backend == "numpy":
        from fastrec.reference.similarity import baseline_residuals

        return baseline_residuals(*arrays, dtype)
    from fastrec._kernels import similarity as kernels

    out = np.empty(csr.nnz, dtype=dtype)
    kernels.baseline_residuals(*arrays, out, threads)
    return out


def prepared_user_matrix(data, metric, baseline=None, bm25_k1=BM25_K1, bm25_b=BM25_B):
    """The training side of :func:`similarity_to_history`: users' prepared values (CSC)."""
    values = _prepared_values(data, metric, "users", baseline, bm25_k1, bm25_b)
    return sp.csr_array((values, data.csr.indices, data.csr.indptr), shape=data.shape).tocsc()


def similarity_to_history(data, metric, codes, values, *, shrinkage=None, min_support=1,
                          baseline=None, bm25_k1=BM25_K1, bm25_b=BM25_B, prepared=None):
    """Scores of a user not in ``data`` (sorted item ``codes``, ``values``) against every user.

    The user-based twin of one row of :func:`user_similarity`, with the training
    data's statistics (item idf, mean length, baseline biases) held fixed; the new
    user's baseline bias is its ALS update against them.  ``prepared``: the training
    side, :func:`prepared_user_matrix`, when the caller keeps it across calls.  Returns ``(user_codes, scores)`` of the non-zero scores.
    """
    from fastrec.reference.similarity import score_pairs

    spec = METRICS[metric]
    shrinkage = spec.default_shrinkage if shrinkage is None else shrinkage
    min_support = max(min_support, spec.min_support_floor)
    if prepared is None:
        prepared = prepared_user_matrix(data, metric, baseline, bm25_k1, bm25_b)
    x = _history_values(data, metric, codes, np.asarray(values, dtype=np.float64), baseline,
                        bm25_k1, bm25_b)
    columns = sp.csr_array(prepared[:, codes])
    pattern = sp.csr_array((np.ones(columns.nnz), columns.indices, columns.indptr), shape=columns.shape)
    n_ab = pattern @ np.ones(codes.size)
    stats = {"s_ab": columns @ x, "s_aa": pattern @ x ** 2,
             "s_bb": sp.csr_array((columns.data ** 2, columns.indices, columns.indptr),
                                  shape=columns.shape) @ np.ones(codes.size),
             "s_a": pattern @ x, "s_b": columns @ np.ones(codes.size),
             "len_a": codes.size, "len_b": data.user_counts}
    users = np.flatnonzero(n_ab >= min_support)
    chosen = {key: (value[users] if np.ndim(value) else value) for key, value in stats.items()}
    scores = score_pairs(spec.measure if spec.measure != "dot_positive" else "dot", n_ab[users],
                         shrinkage=shrinkage, shrink_mode=spec.shrink_mode, **chosen)
    keep = scores != 0
    return users[keep], scores[keep]


def _history_values(data, metric, codes, values, baseline, bm25_k1, bm25_b):
    """A new user's values transformed as ``_prepared_values`` transforms a training user's."""
    if metric == "adjusted_cosine" and values.size:
        values = values - values.mean()
    elif metric == "pearson_baseline":
        model = _fitted_baseline(data, baseline)
        residual = values - model.global_mean_ - model.item_bias_[codes]
        user_bias = residual.sum() / (model.reg_u + values.size) if values.size else 0.0
        values = residual - user_bias
    elif metric in ("tfidf", "bm25"):
        idf = np.log(data.n_users) - np.log1p(data.item_counts[codes])
        if metric == "tfidf":
            values = np.sqrt(values) * idf
        else:
            average = np.bincount(data.entry_users, weights=data.values, minlength=data.n_users).mean()
            length_norm = (1.0 - bm25_b) + bm25_b * values.sum() / average
            values = values * (bm25_k1 + 1.0) / (bm25_k1 * length_norm + values) * idf
    if metric in ("cosine", "adjusted_cosine", "tfidf"):
        norm = np.sqrt(np.sum(values ** 2))
        values = values / norm if norm > 0 else np.zeros_like(values)
    return values


def _transposed(csr, n_columns, threads):
    """``(data, indices, indptr)`` of the CSR of the transpose of the CSR ``csr`` (a
    ``(data, indices, indptr)`` triple with ``n_columns``): the arrays tocsc would give."""
    from fastrec._kernels import similarity as kernels

    data, indices, indptr = csr
    out = (np.empty_like(data), np.empty_like(indices), np.empty(n_columns + 1, dtype=indices.dtype))
    kernels.transpose(data, indices, indptr, *out, threads)
    return out


def _row_ids(indptr):
    return np.repeat(np.arange(indptr.size - 1), np.diff(indptr))


def _transformed_values(data, metric, orientation, baseline, bm25_k1, bm25_b):
    """The values the measure compares, aligned with ``data.csr`` entries (float64)."""
    values = data.values.astype(np.float64)
    # entry_users is an nnz-long repeat: only the branches that need it build it
    if metric == "adjusted_cosine":
        users = data.entry_users
        means = np.bincount(users, weights=values, minlength=data.n_users) / np.maximum(data.user_counts, 1)
        return values - means[users]
    if metric in ("tfidf", "bm25"):
        users, items = data.entry_users, data.csr.indices
        # rows compared ("documents") and the columns they are made of ("terms")
        rows, terms = (items, users) if orientation == "items" else (users, items)
        n_rows, n_terms = (data.n_items, data.n_users) if orientation == "items" else (data.n_users, data.n_items)
        idf = np.log(n_rows) - np.log1p(np.bincount(terms, minlength=n_terms))
        if metric == "tfidf":
            return np.sqrt(values) * idf[terms]
        row_sums = np.bincount(rows, weights=values, minlength=n_rows)
        length_norm = (1.0 - bm25_b) + bm25_b * row_sums / row_sums.mean()
        return values * (bm25_k1 + 1.0) / (bm25_k1 * length_norm[rows] + values) * idf[terms]
    return values


def _fitted_baseline(data, baseline):
    from fastrec.models.baseline import Baseline

    if baseline is None:
        return Baseline().fit(data)
    if not isinstance(baseline, Baseline) or not hasattr(baseline, "user_bias_"):
        raise TypeError("baseline must be a fitted fastrec.Baseline")
    if not baseline.interactions_.same_ids(data):
        raise ValueError("baseline was fitted on data with other user/item ids")
    return baseline
