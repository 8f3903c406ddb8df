"""SciPy reference for the similarity kernel (twin of ``fastrec._kernels.similarity``).

Every co-rated statistic of a pair of rows (a, b) of X is a sparse product:
with P the 0/1 pattern of X and Q = X o X,

.. math::

    n_{ab} = (P P^T)_{ab}, \\quad \\sum_{co} x_a x_b = (X X^T)_{ab}, \\quad
    \\sum_{co} x_a^2 = (Q P^T)_{ab}, \\quad \\sum_{co} x_a = (X P^T)_{ab}

(and the mirrored products for b).  Rows are processed in blocks, so memory stays
bounded by the block's products.
"""
import functools

import numpy as np
import scipy.sparse as sp

MEASURES = ("dot", "dot_positive", "jaccard", "msd", "corated_cosine", "pearson")
SHRINK_MODES = ("support", "baseline")


def similarity_topk(x, measure, *, shrinkage=0.0, shrink_mode="support", min_support=1,
                    k=None, dtype=np.float64, block_rows=2048):
    """Top-k neighbours of every row of ``x`` as an (n, n) CSR, rows sorted by score.

    Same contract as the kernel: scores are computed in float64 from ``x``'s values,
    cast to ``dtype``; the row itself, pairs with fewer than ``min_support`` co-rated
    columns and zero scores are left out; ties go to the lower id; ``k=None`` keeps all.
    """
    x = sp.csr_array(x, dtype=np.float64)
    x.sum_duplicates()
    n = x.shape[0]
    pattern = sp.csr_array((np.ones_like(x.data), x.indices, x.indptr), shape=x.shape)
    squares = sp.csr_array((x.data ** 2, x.indices, x.indptr), shape=x.shape)
    lengths = np.diff(x.indptr)
    rows_out, cols_out, vals_out = [], [], []
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        block = slice(start, stop)
        if measure in ("dot", "dot_positive") and min_support <= 1 and not shrinkage:
            # the plain product suffices: its pattern is every pair with a non-zero sum
            product = (x[block] @ x.T).tocoo()
            a, b, score = product.row + start, product.col, product.data.astype(dtype)
            keep = (a != b) & (score != 0)
            _append_best(rows_out, cols_out, vals_out, a[keep], b[keep], score[keep], k)
            continue
        counts = (pattern[block] @ pattern.T).tocoo()
        rows, cols, n_ab = counts.row, counts.col, counts.data
        a, b = rows + start, cols

        on_pattern = functools.partial(_values_at, rows=rows, cols=cols)
        stats = {}
        if measure in ("dot", "dot_positive", "msd", "corated_cosine", "pearson"):
            stats["s_ab"] = on_pattern(x[block] @ x.T)
        if measure in ("msd", "corated_cosine", "pearson"):
            stats["s_aa"] = on_pattern(squares[block] @ pattern.T)
            stats["s_bb"] = on_pattern(pattern[block] @ squares.T)
        if measure == "pearson":
            stats["s_a"] = on_pattern(x[block] @ pattern.T)
            stats["s_b"] = on_pattern(pattern[block] @ x.T)
        if measure == "jaccard":
            stats["len_a"], stats["len_b"] = lengths[a], lengths[b]
        score = score_pairs(measure, n_ab, shrinkage=shrinkage, shrink_mode=shrink_mode, **stats)
        score = score.astype(dtype)
        keep = (n_ab >= min_support) & (a != b) & (score != 0)
        _append_best(rows_out, cols_out, vals_out, a[keep], b[keep], score[keep], k)
    rows, cols, vals = (np.concatenate(v) for v in (rows_out, cols_out, vals_out))
    return rows_to_csr(rows, cols, vals, n, k)


def score_pairs(measure, n_ab, *, s_ab=None, s_aa=None, s_bb=None, s_a=None, s_b=None,
                len_a=None, len_b=None, shrinkage=0.0, shrink_mode="support"):
    """Scores of pairs from their co-rated statistics (arrays), shrinkage applied.

    ``n_ab`` co-rated count, ``s_ab`` = sum x_a x_b, ``s_aa`` / ``s_bb`` = sums of
    squares and ``s_a`` / ``s_b`` = sums over the co-rated columns, ``len_*`` the rows'
    lengths (jaccard).  The formulas are the kernel's (MSD in Surprise's order,
    1 / (msd + 1); the kernel divides once, n / (sum of squared differences + n));
    pairs with no co-rated column must be left out by the caller.
    """
    n_ab = np.asarray(n_ab, dtype=np.float64)
    if measure in ("dot", "dot_positive"):
        score = np.asarray(s_ab, dtype=np.float64)
    elif measure == "jaccard":
        score = n_ab / (len_a + len_b - n_ab)
    elif measure == "msd":
        score = 1.0 / ((s_aa + s_bb - 2 * s_ab) / n_ab + 1.0)
    elif measure == "corated_cosine":
        den = np.sqrt(s_aa * s_bb)
        score = np.divide(s_ab, den, out=np.zeros_like(n_ab), where=den != 0)
    elif measure == "pearson":
        num = n_ab * s_ab - s_a * s_b
        den = np.sqrt((n_ab * s_aa - s_a * s_a) * (n_ab * s_bb - s_b * s_b))
        score = np.divide(num, den, out=np.zeros_like(n_ab), where=den != 0)
    else:
        raise ValueError(f"unknown measure {measure!r}")
    if shrinkage:
        support = n_ab - 1 if shrink_mode == "baseline" else n_ab
        score = score * (support / (support + shrinkage))
    return score


def _append_best(rows_out, cols_out, vals_out, rows, cols, scores, k):
    """Keep each row's k best of a block (every row lies in one block)."""
    order = np.lexsort((cols, -scores, rows))
    rows, cols, scores = rows[order], cols[order], scores[order]
    if k is not None:
        keep = np.arange(rows.size) - np.searchsorted(rows, rows) < k
        rows, cols, scores = rows[keep], cols[keep], scores[keep]
    rows_out.append(rows)
    cols_out.append(cols)
    vals_out.append(scores)


def rows_to_csr(rows, cols, scores, n, k):
    """CSR holding, per row, the k best (score desc, then lower col) entries in that order."""
    order = np.lexsort((cols, -scores, rows))
    rows, cols, scores = rows[order], cols[order], scores[order]
    rank = np.arange(rows.size) - np.searchsorted(rows, rows)
    if k is not None:
        keep = rank < k
        rows, cols, scores = rows[keep], cols[keep], scores[keep]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return sp.csr_array((scores, cols, indptr), shape=(n, n))


def _values_at(product, rows, cols):
    """``product[rows, cols]`` for sorted (row, col) pairs of its rows, 0 where absent."""
    product = product.tocsr()
    product.sum_duplicates()
    coo = product.tocoo()
    width = max(product.shape[1], 1)
    keys = coo.row.astype(np.int64) * width + coo.col
    wanted = rows.astype(np.int64) * width + cols
    order = np.argsort(keys)
    keys, values = keys[order], coo.data[order]
    pos = np.minimum(np.searchsorted(keys, wanted), max(keys.size - 1, 0))
    found = (keys[pos] == wanted) if keys.size else np.zeros(wanted.size, bool)
    return np.where(found, values[pos] if keys.size else 0.0, 0.0)


def sorted_best(scores, ids, k):
    """The k best (score, id) pairs, best first: higher score, ties to the lower id (twin
    of the kernel's row selection, which works in place and returns how many it kept)."""
    order = np.lexsort((ids, -np.asarray(scores, dtype=np.float64)))[:max(k, 0)]
    return scores[order], ids[order]


def scale_to_unit_length(values, indices, indptr, n_columns, by_column, dtype):
    """The CSR matrix's values scaled to unit length by row, or by column (``by_column``);
    all-zero ones stay zero.  Twin of the kernel, in float64, then cast to ``dtype``."""
    values = np.asarray(values, dtype=np.float64)
    n_rows = indptr.size - 1
    groups = indices[:values.size] if by_column else np.repeat(np.arange(n_rows), np.diff(indptr))
    n = n_columns if by_column else n_rows
    norms = np.sqrt(np.bincount(groups, weights=values * values, minlength=n))
    factors = np.divide(1.0, norms, out=np.zeros(n), where=norms > 0)
    return (values * factors[groups]).astype(dtype)


def baseline_residuals(values, indices, indptr, mean, user_bias, item_bias, dtype):
    """Each rating of the users x items CSR matrix less its baseline (``mean`` plus its
    user's and item's biases), in float64, then cast to ``dtype``.  Twin of the kernel."""
    users = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    values = np.asarray(values, dtype=np.float64)
    return (values - (mean + user_bias[users] + item_bias[indices[:values.size]])).astype(dtype)


def compact_rows(slots, counts, ids, scores):
    """Keep the first ``counts[a]`` entries of each row's ``slots[a]:slots[a+1]`` range."""
    widths = np.diff(slots)
    rank = np.arange(slots[-1]) - np.repeat(slots[:-1], widths)
    keep = rank < np.repeat(counts, widths)
    return ids[keep], scores[keep]
