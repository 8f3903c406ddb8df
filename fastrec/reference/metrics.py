"""Vectorised NumPy twin of ``fastrec._kernels.metrics`` (the straightforward way)."""
import numpy as np

METRICS = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate", "auc")


def _keys(indptr, indices, n_items):
    """Sorted (row * n_items + column) keys of a CSR with sorted rows."""
    rows = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
    return rows * n_items + np.asarray(indices, dtype=np.int64)


def _member(sorted_keys, keys):
    if not sorted_keys.size:
        return np.zeros(keys.shape, bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[pos] == keys


def ranking_rows(top_items, rows, users, test_indptr, test_indices, train_indptr, train_indices,
                 n_items, ks):
    """Metric values ``(7, len(ks), len(rows))`` of ``top_items[rows]``; the kernel's contract."""
    top_items = np.asarray(top_items, dtype=np.int64)[np.asarray(rows, dtype=np.int64)]
    users = np.asarray(users, dtype=np.int64)
    relevant = np.diff(test_indptr)[users].astype(np.float64)
    test_keys = _keys(test_indptr, test_indices, n_items)
    train_keys = _keys(train_indptr, train_indices, n_items)
    keys = users[:, None] * n_items + top_items
    listed = top_items >= 0
    hits = listed & _member(test_keys, keys)
    negative = listed & ~hits & ~_member(train_keys, keys)
    # negatives: items outside the user's training and test items
    train_only = np.diff(train_indptr)[users] - np.bincount(
        test_keys[_member(train_keys, test_keys)] // n_items, minlength=test_indptr.size - 1)[users]
    negatives = n_items - relevant - train_only
    ranks = np.arange(1, top_items.shape[1] + 1)
    discounts = 1.0 / np.log2(ranks + 1.0)
    cumulative_hits = np.cumsum(hits, axis=1)
    cumulative_negatives = np.cumsum(negative, axis=1)
    precision_at = cumulative_hits / ranks
    # each hit ranks above every negative not listed before it
    pairs_at = np.cumsum(hits * (negatives[:, None] - cumulative_negatives), axis=1)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    out = np.empty((len(METRICS), len(ks), users.size))
    for c, k in enumerate(ks):
        n_hits = cumulative_hits[:, k - 1]
        ideal_n = np.minimum(relevant, k).astype(np.int64)
        ideal = np.cumsum(discounts)[ideal_n - 1]
        out[0, c] = n_hits / k
        out[1, c] = n_hits / relevant
        out[2, c] = (hits[:, :k] @ discounts[:k]) / ideal
        out[3, c] = (hits[:, :k] * precision_at[:, :k]).sum(axis=1) / ideal_n
        out[4, c] = np.where((first > 0) & (first <= k), 1.0 / np.maximum(first, 1), 0.0)
        out[5, c] = n_hits > 0
        unlisted_ties = 0.5 * (relevant - n_hits) * (negatives - cumulative_negatives[:, k - 1])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[6, c] = np.where(negatives > 0, (pairs_at[:, k - 1] + unlisted_ties)
                                 / (relevant * negatives), 1.0)
    return out


def list_similarity_rows(top_items, similarity):
    """Per list: summed s(a, b) over ordered pairs of distinct listed items, and the
    number of distinct items; the kernel's contract (``similarity`` a SciPy CSR)."""
    top_items = np.asarray(top_items, dtype=np.int64)
    width = top_items.shape[1]
    earlier = np.tril(np.ones((width, width), bool), -1)
    repeated = ((top_items[:, :, None] == top_items[:, None, :]) & earlier).any(axis=2)
    keep = (top_items >= 0) & ~repeated
    pairs = keep[:, :, None] & keep[:, None, :] & ~np.eye(width, dtype=bool)
    r, a, b = np.nonzero(pairs)
    csr = similarity.tocsr(copy=True)
    csr.sum_duplicates()
    n = csr.shape[1]
    stored = _keys(csr.indptr, csr.indices, n)
    keys = top_items[r, a] * n + top_items[r, b]
    pos = np.minimum(np.searchsorted(stored, keys), max(stored.size - 1, 0))
    found = stored[pos] == keys if stored.size else np.zeros(keys.shape, bool)
    values = np.where(found, csr.data[pos] if stored.size else 0.0, 0.0)
    return np.bincount(r, weights=values, minlength=top_items.shape[0]), keep.sum(axis=1)
