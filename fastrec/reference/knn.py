"""NumPy/SciPy twins of ``fastrec._kernels.knn``, written for clarity.

Each works on all pairs (or rows) at once: it lists every (query, candidate) entry,
ranks the candidates of a query with ``lexsort`` and sums with ``bincount``.
"""
import numpy as np
import scipy.sparse as sp

from fastrec.reference.similarity import _values_at


def knn_estimate(sim, yr, x, y, k, self_similarity=1.0):
    """Per pair (x[p], y[p]): ``(mean, count)`` of the k most similar rated neighbours.

    ``sim`` (n_x, n_x) sparse similarities (no diagonal; s(x, x) is
    ``self_similarity``); ``yr`` (n_y, n_x) CSR with sorted indices whose values are
    the deviations of row y's entries.  The neighbours of a pair are the columns x2 of
    ``yr[y]`` with s(x, x2) > 0; the k largest (ties: lower x2) are kept and ``mean``
    is sum(s * dev) / sum(s) over them, 0 when there are none.
    """
    sim = sp.csr_array(sim, copy=True)  # _values_at sorts its rows in place
    yr = sp.csr_array(yr)
    x, y = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)
    lengths = np.diff(yr.indptr)[y]
    pair = np.repeat(np.arange(x.size), lengths)
    position = np.repeat(yr.indptr[y] - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    neighbor = yr.indices[position].astype(np.int64)
    deviation = yr.data[position].astype(np.float64)
    s = _values_at(sim, x[pair], neighbor).astype(np.float64)
    s[neighbor == x[pair]] = self_similarity
    keep = s > 0
    pair, neighbor, deviation, s = pair[keep], neighbor[keep], deviation[keep], s[keep]
    order = np.lexsort((neighbor, -s, pair))
    pair, deviation, s = pair[order], deviation[order], s[order]
    rank = np.arange(pair.size) - np.searchsorted(pair, pair)
    keep = rank < k
    pair, deviation, s = pair[keep], deviation[keep], s[keep]
    count = np.bincount(pair, minlength=x.size)
    total = np.bincount(pair, weights=s, minlength=x.size)
    weighted = np.bincount(pair, weights=s * deviation, minlength=x.size)
    mean = np.divide(weighted, total, out=np.zeros(x.size), where=count > 0)
    return mean, count


def product_topk(x, t, rows, n, excluded=None, column_mask=None):
    """Top-``n`` columns of ``x[rows] @ t`` per row: ``(ids, scores)`` padded with -1 / -inf.

    Zero scores, the stored columns of ``excluded`` (one row per row of ``x``) and
    columns where ``column_mask`` is True are never returned; ties go to the lower column.
    """
    x, t = sp.csr_array(x, dtype=np.float64), sp.csr_array(t, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    picked = x[np.maximum(rows, 0)] if rows.size else sp.csr_array((0, x.shape[1]))
    picked = sp.csr_array(picked.multiply((rows >= 0)[:, None]))
    product = (picked @ t).tocoo()
    r, c, score = product.row.astype(np.int64), product.col.astype(np.int64), product.data
    keep = score != 0
    if excluded is not None:
        banned = sp.csr_array(excluded)[np.maximum(rows, 0)].tocoo()
        width = t.shape[1]
        banned_keys = banned.row.astype(np.int64) * width + banned.col
        keep &= ~np.isin(r * width + c, banned_keys[rows[banned.row] >= 0])
    if column_mask is not None:
        keep &= ~np.asarray(column_mask, dtype=bool)[c]
    r, c, score = r[keep], c[keep], score[keep]
    order = np.lexsort((c, -score, r))
    r, c, score = r[order], c[order], score[order]
    rank = np.arange(r.size) - np.searchsorted(r, r)
    keep = rank < n
    ids = np.full((rows.size, n), -1, dtype=np.int64)
    scores = np.full((rows.size, n), -np.inf)
    ids[r[keep], rank[keep]] = c[keep]
    scores[r[keep], rank[keep]] = score[keep]
    return ids, scores


def pair_dot(a, b, a_rows, b_rows):
    """``<a[a_rows[p]], b[b_rows[p]]>`` per pair; a row -1 is empty."""
    a, b = sp.csr_array(a, dtype=np.float64), sp.csr_array(b, dtype=np.float64)
    a_rows, b_rows = np.asarray(a_rows), np.asarray(b_rows)
    valid = (a_rows >= 0) & (b_rows >= 0)
    left = a[np.maximum(a_rows, 0)]
    right = b[np.maximum(b_rows, 0)]
    return np.where(valid, np.asarray(left.multiply(right).sum(axis=1)).ravel(), 0.0)


def product_dense(x, t, rows, out):
    """``out[r] += x[rows[r]] @ t`` for rows >= 0, dense (the kernel's contract)."""
    x, t = sp.csr_array(x, dtype=np.float64), sp.csr_array(t, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    valid = rows >= 0
    out[valid] += (x[rows[valid]] @ t).toarray()
    return out
