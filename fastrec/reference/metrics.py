"""Vectorised NumPy twin of ``fastrec._kernels.metrics`` (the straightforward way)."""
import numpy as np

METRICS = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")


def ranking_rows(top_items, rows, users, test_indptr, test_indices, n_items, ks):
    """Metric values ``(6, len(ks), len(rows))`` of ``top_items[rows]``; the kernel's contract."""
    top_items = np.asarray(top_items, dtype=np.int64)[np.asarray(rows, dtype=np.int64)]
    users = np.asarray(users, dtype=np.int64)
    relevant = np.diff(test_indptr)[users].astype(np.float64)
    # a hit is a (user, item) key of the test CSR, whose keys are sorted
    test_rows = np.repeat(np.arange(test_indptr.size - 1), np.diff(test_indptr))
    test_keys = test_rows.astype(np.int64) * n_items + test_indices
    keys = users[:, None] * n_items + top_items
    pos = np.minimum(np.searchsorted(test_keys, keys), max(test_keys.size - 1, 0))
    hits = (top_items >= 0) & (test_keys[pos] == keys) if test_keys.size else np.zeros(keys.shape, bool)
    ranks = np.arange(1, top_items.shape[1] + 1)
    discounts = 1.0 / np.log2(ranks + 1.0)
    cumulative_hits = np.cumsum(hits, axis=1)
    precision_at = cumulative_hits / ranks
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
    return out
