"""``evaluate``: fit a model, time it, and score its ratings and top-N lists on held-out data."""
import time

import numpy as np

from fastrec import metrics


class EvaluationResult:
    """Metrics and timings of one model on one split; ``to_dict()`` / ``to_frame()``."""

    def __init__(self, model_name, values):
        self.model_name = model_name
        self.values = values

    def to_dict(self):
        return {"model": self.model_name, **self.values}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([self.to_dict()]).set_index("model")

    def __getitem__(self, key):
        return self.values[key]

    def __repr__(self):
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in self.values.items())
        return f"<EvaluationResult {self.model_name}: {shown}>"


def evaluate(model, train, test, k=(10,), *, fit=True, name=None, num_threads=None):
    """Fit ``model`` on ``train`` (unless ``fit=False``) and score it on ``test``.

    Rating metrics (RMSE, MAE) are computed for models that predict ratings on
    explicit data; ranking metrics (precision, recall, NDCG, hit rate at each k) and
    catalogue coverage from ``recommend`` with seen items excluded, for every user
    with test items.  ``train`` and ``test`` must share their id maps (as the splits
    in ``fastrec.model_selection`` produce).
    """
    if not train.same_ids(test):
        raise ValueError("train and test must share id maps; build them with fastrec.model_selection")
    ks = (k,) if np.ndim(k) == 0 else tuple(k)
    values = {}
    start = time.perf_counter()
    if fit:
        model.fit(train)
    values["fit_seconds"] = time.perf_counter() - start

    users, items, ratings, _ = test.to_arrays()
    start = time.perf_counter()
    if model.predicts_ratings and not test.is_implicit:
        predicted = model.predict(users, items)
        values["rmse"] = metrics.rmse(ratings, predicted)
        values["mae"] = metrics.mae(ratings, predicted)
    else:
        values["rmse"] = values["mae"] = float("nan")
    values["predict_seconds"] = time.perf_counter() - start

    test_users = np.flatnonzero(test.user_counts > 0)
    start = time.perf_counter()
    codes, _, _ = model._recommend_codes(test.user_ids[test_users], max(ks), num_threads=num_threads)
    values["recommend_seconds"] = time.perf_counter() - start
    values.update(metrics.ranking_metrics(codes, test_users, test, ks))
    values["coverage"] = metrics.coverage(codes, test.n_items)
    return EvaluationResult(name or repr(model), values)

