"""Accuracy metrics: rating errors and top-N ranking quality.

Ranking metrics take a top-N array of item indices (as ``recommend`` produces, -1
padded) and the test interactions; every item a user has in the test set counts as
relevant.  Users with no test items are skipped and counted.
"""
import numpy as np


def _pair(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("no predictions to score")
    return y_true, y_pred


def mse(y_true, y_pred):
    """Mean squared error."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean((y_true - y_pred) ** 2))


def rmse(y_true, y_pred):
    """Root mean squared error."""
    return float(np.sqrt(mse(y_true, y_pred)))


def mae(y_true, y_pred):
    """Mean absolute error."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def ranking_metrics(top_items, users, test, ks=(10,)):
    """Precision, recall, NDCG and hit rate at every cut-off in ``ks``.

    Parameters
    ----------
    top_items : int array (n_rows, n)
        Item indices in rank order, -1 padded; n >= max(ks).
    users : int array (n_rows,)
        The user index of each row.
    test : Interactions
        Held-out interactions sharing the id maps of the training data.
    ks : iterable of int

    Returns
    -------
    dict
        ``{"precision@10": ..., "recall@10": ..., "ndcg@10": ..., "hit_rate@10": ...,
        "n_users": evaluated users, "n_skipped_users": rows without test items}``.
    """
    top_items = np.asarray(top_items)
    users = np.asarray(users)
    ks = sorted({int(k) for k in ks})
    if top_items.ndim != 2 or top_items.shape[0] != users.size:
        raise ValueError("top_items must be (len(users), n)")
    if ks[0] < 1 or ks[-1] > top_items.shape[1]:
        raise ValueError(f"cut-offs must lie in [1, {top_items.shape[1]}], got {ks}")
    n_relevant = test.user_counts[users].astype(np.float64)
    evaluated = n_relevant > 0
    top_items, users, n_relevant = top_items[evaluated], users[evaluated], n_relevant[evaluated]
    # a hit is a (user, item) key present in the test CSR, whose keys are sorted
    test_keys = test.entry_users.astype(np.int64) * test.n_items + test.csr.indices
    keys = users[:, None].astype(np.int64) * test.n_items + top_items
    pos = np.minimum(np.searchsorted(test_keys, keys), max(test_keys.size - 1, 0))
    hits = (top_items >= 0) & (test_keys[pos] == keys) if test_keys.size else np.zeros(keys.shape, bool)
    discounts = 1.0 / np.log2(np.arange(2, top_items.shape[1] + 2))
    result = {}
    for k in ks:
        hits_k = hits[:, :k]
        n_hits = hits_k.sum(axis=1)
        ideal = np.cumsum(discounts[:k])[np.minimum(n_relevant, k).astype(np.int64) - 1]
        result[f"precision@{k}"] = float(np.mean(n_hits / k)) if n_hits.size else float("nan")
        result[f"recall@{k}"] = float(np.mean(n_hits / n_relevant)) if n_hits.size else float("nan")
        result[f"ndcg@{k}"] = float(np.mean((hits_k @ discounts[:k]) / ideal)) if n_hits.size else float("nan")
        result[f"hit_rate@{k}"] = float(np.mean(n_hits > 0)) if n_hits.size else float("nan")
    result["n_users"] = int(evaluated.sum())
    result["n_skipped_users"] = int((~evaluated).sum())
    return result


def coverage(top_items, n_items):
    """Share of the catalogue that appears in at least one list."""
    top_items = np.asarray(top_items)
    return float(np.unique(top_items[top_items >= 0]).size / n_items) if n_items else 0.0
