"""NumPy reference for row-wise top-k selection (twin of ``fastrec._kernels.topk``)."""
import numpy as np


def dense_topk(scores, k, dense_mask=None, sparse_mask=None):
    """The k best columns of each row: ``(ids, scores)`` of shape (n_rows, k).

    Rows are sorted by score descending, ties by the lower column id; a column is a
    candidate unless masked, NaN or -inf; rows with fewer than k candidates are padded
    with id -1 and score -inf.  ``dense_mask`` is a boolean (n_cols,) or (n_rows, n_cols)
    array, ``sparse_mask`` a scipy sparse (n_rows, n_cols) matrix whose stored entries
    are excluded.  Implemented with ``np.partition`` + ``np.lexsort``.
    """
    scores = np.asarray(scores)
    n_rows, n_cols = scores.shape
    work = np.array(scores, dtype=np.float64)
    work[np.isnan(work)] = -np.inf
    if dense_mask is not None:
        work[np.broadcast_to(np.asarray(dense_mask, dtype=bool), work.shape)] = -np.inf
    if sparse_mask is not None:
        coo = sparse_mask.tocoo()
        work[coo.row, coo.col] = -np.inf

    out_ids = np.full((n_rows, k), -1, dtype=np.int64)
    out_scores = np.full((n_rows, k), -np.inf, dtype=scores.dtype)
    if k == 0 or n_rows == 0 or n_cols == 0:
        return out_ids, out_scores

    # the k-th best score of each row is the threshold; ties at it are settled by id
    kth = min(k, n_cols) - 1
    threshold = -np.partition(-work, kth, axis=1)[:, kth]
    rows, cols = np.nonzero((work >= threshold[:, None]) & (work > -np.inf))
    order = np.lexsort((cols, -work[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    row_start = np.searchsorted(rows, np.arange(n_rows))
    rank = np.arange(rows.size) - row_start[rows]
    keep = rank < k
    out_ids[rows[keep], rank[keep]] = cols[keep]
    out_scores[rows[keep], rank[keep]] = scores[rows[keep], cols[keep]]
    return out_ids, out_scores
