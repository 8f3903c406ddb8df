"""Baseline estimates: global mean + regularised user and item biases (Surprise's BaselineOnly)."""
import numpy as np

from fastrec._checks import check_choice, check_non_negative_float, check_positive_int
from fastrec.models.base import Recommender

DEFAULT_EPOCHS = {"als": 10, "sgd": 20}


class Baseline(Recommender):
    """Predict :math:`\\hat r_{ui} = \\mu + b_u + b_i` with regularised biases.

    The same model, defaults and update rules as scikit-surprise's ``BaselineOnly``
    (Koren 2010, section 2.1), so its predictions match Surprise's:

    - ``method="als"`` alternates, for ``n_epochs`` (default 10),
      :math:`b_i = \\sum_{u \\in U_i}(r_{ui} - \\mu - b_u) / (\\lambda_i + |U_i|)` and
      :math:`b_u = \\sum_{i \\in I_u}(r_{ui} - \\mu - b_i) / (\\lambda_u + |I_u|)`;
    - ``method="sgd"`` runs ``n_epochs`` (default 20) passes of
      :math:`b_u \\mathrel{+}= \\gamma (e_{ui} - \\lambda b_u)`,
      :math:`b_i \\mathrel{+}= \\gamma (e_{ui} - \\lambda b_i)` over the ratings in
      user-then-item order (a compiled Numba loop).

    Unknown users and items contribute a zero bias; predictions are clipped to the
    training data's rating scale when ``clip`` is True (as Surprise's ``predict``).

    Parameters
    ----------
    method : {"als", "sgd"}
    n_epochs : int, optional
        Default 10 for ALS, 20 for SGD.
    reg_u, reg_i : float
        ALS regularisation of user and item biases (15 and 10).
    reg, learning_rate : float
        SGD regularisation and step size (0.02 and 0.005).
    clip : bool

    Attributes
    ----------
    global_mean_ : float
    user_bias_ : float64 array (n_users,)
    item_bias_ : float64 array (n_items,)
    """

    _learned = ("global_mean_", "user_bias_", "item_bias_")
    requires_ratings = True

    def __init__(self, method="als", n_epochs=None, reg_u=15.0, reg_i=10.0, reg=0.02,
                 learning_rate=0.005, clip=True):
        self.method = method
        self.n_epochs = n_epochs
        self.reg_u = reg_u
        self.reg_i = reg_i
        self.reg = reg
        self.learning_rate = learning_rate
        self.clip = clip

    def _check_params(self):
        check_choice(self.method, "method", ("als", "sgd"))
        check_positive_int(self.n_epochs, "n_epochs", minimum=0, allow_none=True)
        for name in ("reg_u", "reg_i", "reg"):
            check_non_negative_float(getattr(self, name), name)
        check_non_negative_float(self.learning_rate, "learning_rate", strictly_positive=True)

    def _fit(self, data):
        if data.is_implicit:
            raise ValueError("Baseline needs explicit ratings; for implicit feedback use Popularity")
        n_epochs = DEFAULT_EPOCHS[self.method] if self.n_epochs is None else self.n_epochs
        ratings = data.values.astype(np.float64)
        users, items = data.entry_users, data.csr.indices
        mu = float(ratings.mean())
        if self.method == "als":
            bu, bi = _fit_als(ratings, users, items, mu, data.user_counts, data.item_counts,
                              n_epochs, self.reg_u, self.reg_i)
        else:
            from fastrec._kernels.baseline_nb import baseline_sgd

            bu = np.zeros(data.n_users)
            bi = np.zeros(data.n_items)
            baseline_sgd(ratings, users.astype(np.int64), items.astype(np.int64), mu, bu, bi,
                         n_epochs, float(self.reg), float(self.learning_rate))
            if not (np.isfinite(bu).all() and np.isfinite(bi).all()):
                raise ValueError("SGD diverged (non-finite biases); lower learning_rate")
        self.global_mean_, self.user_bias_, self.item_bias_ = mu, bu, bi

    def _predict_indices(self, u, i):
        estimate = (self.global_mean_
                    + np.where(u >= 0, self.user_bias_[np.maximum(u, 0)], 0.0)
                    + np.where(i >= 0, self.item_bias_[np.maximum(i, 0)], 0.0))
        scale = self.interactions_.rating_scale
        if self.clip and scale is not None:
            np.clip(estimate, scale[0], scale[1], out=estimate)
        return estimate

    def _score_users(self, u):
        """Unclipped estimates (clipping would create ties that hide the ranking)."""
        return self._user_part(u)[:, None] + self.item_bias_[None, :]

    def _user_part(self, u):
        return self.global_mean_ + np.where(u >= 0, self.user_bias_[np.maximum(u, 0)], 0.0)

    def _linear_scoring(self):
        """``(key, users, items)`` as ``MatrixFactorization._linear_scoring``: [1, mu + b_u]
        against [b_i, 1]."""
        bias = self.item_bias_
        return (bias, lambda u: np.column_stack([np.ones(u.size), self._user_part(u)]),
                lambda: np.column_stack([bias, np.ones(bias.size)]))


def _fit_als(ratings, users, items, mu, user_counts, item_counts, n_epochs, reg_u, reg_i):
    """Alternating closed-form bias updates, vectorised (items first, as Surprise)."""
    bu = np.zeros(user_counts.size)
    bi = np.zeros(item_counts.size)
    residual = ratings - mu
    for _ in range(n_epochs):
        bi = np.bincount(items, weights=residual - bu[users], minlength=bi.size) / (reg_i + item_counts)
        bu = np.bincount(users, weights=residual - bi[items], minlength=bu.size) / (reg_u + user_counts)
    return bu, bi
