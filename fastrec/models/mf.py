"""Matrix factorisation trained by (stochastic) gradient descent.

``loss="mse"`` with SGD is scikit-surprise's SVD (same defaults and update rule);
``"logistic"`` (binary cross-entropy with sampled negatives) and ``"bpr"`` (pairwise)
are for implicit feedback.  The SGD kernel (``_kernels/mf_nb.py``) runs a blocked
schedule whose result does not depend on the thread count.
"""

import numpy as np
import scipy.sparse as sp

from fastrec._checks import (as_1d, check_choice, check_non_negative_float, check_positive_int,
                             check_random_state)
from fastrec._threads import effective_num_threads, limit_blas_threads, numba_threads
from fastrec.models._training import EpochTraining
from fastrec.models.base import Explanation, Recommender, _raw_ids

LOSSES = ("mse", "logistic", "bpr")
OPTIMIZERS = ("sgd", "adagrad", "gd")
ADAGRAD_EPS = 1e-8
FOLD_IN_EPOCHS = 30  # SGD passes over a new user's history for the implicit losses


class MatrixFactorization(EpochTraining, Recommender):
    """Biased matrix factorisation :math:`\\hat r_{ui} = \\mu + b_u + b_i + p_u \\cdot q_i`.

    - ``loss="mse"``, ``optimizer="sgd"``: scikit-surprise's ``SVD`` — for each rating,
      :math:`e = r - \\hat r`, :math:`b_u \\mathrel{+}= \\gamma_b (e - \\lambda_b b_u)`,
      :math:`p_u \\mathrel{+}= \\gamma (e q_i - \\lambda p_u)`,
      :math:`q_i \\mathrel{+}= \\gamma (e p_u - \\lambda q_i)`; ``biased=False`` drops
      :math:`\\mu` and the biases, as Surprise does.
    - ``loss="logistic"``: the same steps with :math:`e = y - \\sigma(\\hat r)`, on each
      positive (y = 1) and ``neg_samples`` sampled negatives (y = 0); no :math:`\\mu`.
    - ``loss="bpr"``: Bayesian personalised ranking on (u, i, j) with ``neg_samples``
      negatives j per positive; :math:`b_u` cancels and is not learned.
    - ``optimizer="adagrad"``: the same steps scaled per row by Adagrad, lr /
      sqrt(running sum of the row's mean squared gradient + eps) (user and item rows,
      biases alike); it suits larger ``lr`` (e.g. 0.05-0.1) and sparse rows.
    - ``optimizer="gd"``: full-batch gradient descent on the summed squared error (mse
      only); ``lr`` then scales summed gradients.

    SGD visits the ratings on a blocked schedule: users and items are split into
    ``n_blocks`` groups each (balanced by activity), and in each of ``n_blocks`` strata
    per epoch the threads take blocks that share no user or item.  Within a block two
    lanes of users alternate, each user by user; negatives are drawn within the
    block's item group from a random stream of the block's own.  So with a fixed
    ``random_state`` the factors are bit-identical run after run, and the same for
    every ``num_threads`` once ``n_blocks`` is fixed (by default it is the thread count).

    Parameters
    ----------
    n_factors, n_epochs : int
    lr, reg : float
        Step size and regularisation of the factors (Surprise's ``lr_all``, ``reg_all``).
    biased : bool
    loss : {"mse", "logistic", "bpr"}
    optimizer : {"sgd", "adagrad", "gd"}
    init_mean, init_std : float
        Factors start from normal draws.
    lr_bias, reg_bias : float, optional
        For the biases; default ``lr`` and ``reg``.
    neg_samples : int
        Negatives per positive (logistic, bpr); a draw that is a positive is skipped.
    n_blocks : int, optional
        Grid size of the schedule (at most ``n_blocks`` threads work at once); default
        the number of threads.  The result depends on it, not on ``num_threads``.
    dtype : float32 or float64
    num_threads : int, optional
    random_state : int, numpy Generator or None
    validation : Interactions, optional
        Same ids as the training data; its loss (RMSE for mse) is recorded per epoch.
    early_stopping : int, optional
        Stop after this many epochs without a better validation loss, keeping the best.
    callback : callable, optional
        ``callback(epoch, elapsed_seconds, train_loss)`` after every epoch.
    show_progress : bool
        A tqdm bar when tqdm is installed.

    Attributes
    ----------
    user_factors_, item_factors_ : arrays (n_users | n_items, n_factors), ``dtype``
    user_bias_, item_bias_ : arrays, ``dtype`` (zeros when not biased)
    global_mean_ : float
    history_ : dict with "train" and "validation" loss per epoch (NaN without validation)
    """

    _dense_blas_scores = True
    _learned = ("user_factors_", "item_factors_", "user_bias_", "item_bias_", "global_mean_",
                "loss_history_", "epochs_done_", "seed_", "adagrad_sums_")
    _unsaved_params = ("validation", "callback")  # data and code: saved as None

    def __init__(self, n_factors=100, n_epochs=20, lr=0.005, reg=0.02, *, biased=True,
                 loss="mse", optimizer="sgd", init_mean=0.0, init_std=0.1, lr_bias=None,
                 reg_bias=None, neg_samples=1, n_blocks=None, dtype=np.float32, num_threads=None,
                 random_state=None, validation=None, early_stopping=None, callback=None,
                 show_progress=False):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.lr = lr
        self.reg = reg
        self.biased = biased
        self.loss = loss
        self.optimizer = optimizer
        self.init_mean = init_mean
        self.init_std = init_std
        self.lr_bias = lr_bias
        self.reg_bias = reg_bias
        self.neg_samples = neg_samples
        self.n_blocks = n_blocks
        self.dtype = dtype
        self.num_threads = num_threads
        self.random_state = random_state
        self.validation = validation
        self.early_stopping = early_stopping
        self.callback = callback
        self.show_progress = show_progress

    # --------------------------------------------------------------- params
    @property
    def predicts_ratings(self):
        return self.loss == "mse"

    @property
    def requires_ratings(self):
        return self.loss == "mse"

    @property
    def fallback(self):
        return "biases only" if self.biased else "popularity"

    def _check_params(self):
        check_positive_int(self.n_factors, "n_factors")
        check_positive_int(self.n_epochs, "n_epochs", minimum=0)
        check_non_negative_float(self.lr, "lr", strictly_positive=True)
        check_non_negative_float(self.reg, "reg")
        for name in ("lr_bias", "reg_bias"):
            if getattr(self, name) is not None:
                check_non_negative_float(getattr(self, name), name, strictly_positive=name == "lr_bias")
        check_choice(self.loss, "loss", LOSSES)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        if self.optimizer == "gd" and self.loss != "mse":
            raise ValueError(f"optimizer='gd' supports loss='mse' only, not {self.loss!r}")
        if not np.isfinite(self.init_mean):
            raise ValueError(f"init_mean must be finite, got {self.init_mean!r}")
        check_non_negative_float(self.init_std, "init_std")
        check_positive_int(self.neg_samples, "neg_samples")
        check_positive_int(self.n_blocks, "n_blocks", allow_none=True)
        if np.dtype(self.dtype) not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {np.dtype(self.dtype)}")
        self._check_training_params()

    # ------------------------------------------------------------------ fit
    def _initialise(self, data):
        if self.loss == "mse" and data.is_implicit:
            raise ValueError("loss='mse' needs explicit ratings; for implicit feedback use "
                             "loss='logistic' or 'bpr'")
        dtype = np.dtype(self.dtype)
        rng = check_random_state(self.random_state)
        k = self.n_factors
        threads = effective_num_threads(self.num_threads)
        self.user_factors_ = _normal(rng, (data.n_users, k), self.init_mean, self.init_std, dtype, threads)
        self.item_factors_ = _normal(rng, (data.n_items, k), self.init_mean, self.init_std, dtype, threads)
        self.user_bias_ = np.zeros(data.n_users, dtype=dtype)
        self.item_bias_ = np.zeros(data.n_items, dtype=dtype)
        use_mean = self.loss == "mse" and self.biased
        self.global_mean_ = float(data.values.mean()) if use_mean and data.nnz else 0.0
        self.seed_ = np.array(rng.integers(0, 2**63 - 1), dtype=np.int64)
        self.epochs_done_ = np.array(0)
        self.loss_history_ = np.zeros((0, 2))
        # Adagrad's running sums of squared gradients: users, items, user and item biases
        sizes = (data.n_users, data.n_items) * 2 if self.optimizer == "adagrad" else ()
        self.adagrad_sums_ = np.zeros(sum(sizes), dtype=dtype)

    def _train(self, data, n_epochs):
        dtype = np.dtype(self.dtype)
        threads = effective_num_threads(self.num_threads)
        plan = None if self.optimizer == "gd" else _Schedule(data, self.n_blocks or threads, dtype,
                                                             self.n_factors * dtype.itemsize)
        lr_bias = self.lr if self.lr_bias is None else self.lr_bias
        reg_bias = self.reg if self.reg_bias is None else self.reg_bias
        scalars = [dtype.type(v) for v in (self.global_mean_, self.lr, self.reg, lr_bias, reg_bias)]
        params = (self.user_bias_, self.item_bias_, self.user_factors_, self.item_factors_)

        def run_epoch(epoch):
            if plan is None:
                with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
                    train_loss = _gd_epoch(data, *scalars, *params, self.biased)
            else:
                with numba_threads(threads):
                    train_loss = plan.run(self.loss, self.neg_samples, int(self.seed_), epoch,
                                          scalars, params, self.biased, self._adagrad_sums())
            # every step adds its loss, so a non-finite parameter shows in the epoch's loss
            if not np.isfinite(train_loss) or (plan is None and not all(np.isfinite(p).all() for p in params)):
                raise ValueError(f"training diverged at epoch {epoch + 1}: non-finite factors; "
                                 f"use a smaller lr (now {self.lr})")
            return train_loss

        def restore(saved):
            for target, values in zip(params, saved, strict=True):
                target[...] = values

        self._run_epochs(data, n_epochs, run_epoch, lambda: [p.copy() for p in params], restore)
        # the factors changed (also in place: early stopping's restore)
        self._scoring_items = self._scoring_index_cache = None

    def _adagrad_sums(self):
        """Views of ``adagrad_sums_`` per parameter group, or None for plain SGD."""
        if self.optimizer != "adagrad":
            return None
        n_users, n_items = self.user_factors_.shape[0], self.item_factors_.shape[0]
        cuts = np.cumsum([n_users, n_items, n_users])
        return np.split(self.adagrad_sums_, cuts)

    def _validation_loss(self, validation):
        """RMSE (mse), mean BCE over positives and as many sampled items (logistic),
        mean -log sigmoid(x_ui - x_uj) (bpr); negatives drawn from a fixed seed."""
        u, i = validation.entry_users, validation.csr.indices
        score = self._raw_scores(u, i)
        if self.loss == "mse":
            return float(np.sqrt(np.mean((validation.values - score) ** 2)))
        j = np.random.default_rng(0).integers(0, validation.n_items, u.size)
        other = self._raw_scores(u, j)
        if self.loss == "logistic":
            return float(np.mean(np.logaddexp(0, -score)) / 2 + np.mean(np.logaddexp(0, other)) / 2)
        return float(np.mean(np.logaddexp(0, -(score - other))))

    # -------------------------------------------------------------- predict
    def _raw_scores(self, u, i):
        """mu + b_u + b_i + p_u.q_i for known indices (float64)."""
        dot = np.einsum("ij,ij->i", self.user_factors_[u], self.item_factors_[i], dtype=np.float64)
        return self.global_mean_ + dot + (self.user_bias_[u] + self.item_bias_[i] if self.biased else 0.0)

    def _predict_indices(self, u, i):
        known_u, known_i = u >= 0, i >= 0
        both = known_u & known_i
        out = np.full(u.size, self.global_mean_)
        if self.biased:
            out += np.where(known_u, self.user_bias_[np.maximum(u, 0)], 0.0)
            out += np.where(known_i, self.item_bias_[np.maximum(i, 0)], 0.0)
        out[both] += np.einsum("ij,ij->i", self.user_factors_[u[both]], self.item_factors_[i[both]],
                               dtype=np.float64)
        if self.loss == "logistic":
            return 1.0 / (1.0 + np.exp(-out))
        scale = self.interactions_.rating_scale
        if self.loss == "mse" and scale is not None:
            np.clip(out, scale[0], scale[1], out=out)
        return out

    def _score_users(self, u):
        """Dense scores (unclipped; logits for logistic) of every item for users ``u``.

        One matrix product gives the whole score: the user rows are extended with
        [1, mu + b_u] and the item rows with [b_i, 1] (biased models), so no pass over
        the scores follows it.  Unknown users get mu + b_i, or popularity when unbiased.
        """
        known = u >= 0
        threads = effective_num_threads(self.num_threads)
        items = self._items_for_scoring()
        users = self._users_for_scoring(u)
        scores = np.empty((u.size, items.shape[1]), dtype=items.dtype)
        with limit_blas_threads(threads):
            np.matmul(users, items, out=scores)
        if not self.biased:
            scores[~known] = self.interactions_.item_counts
        return scores

    def _users_for_scoring(self, u):
        """The user side of ``_score_users``' product, (len(u), k [+ 2]); unknown users
        (-1) get zero factors."""
        known = u >= 0
        k = self.n_factors
        users = np.zeros((u.size, k + 2 if self.biased else k), dtype=self.item_factors_.dtype)
        users[known, :k] = self.user_factors_[u[known]]
        if self.biased:
            users[:, k] = 1
            users[:, k + 1] = self.global_mean_
            users[known, k + 1] += self.user_bias_[u[known]]
        return users

    def _linear_scoring(self):
        """Scores as inner products, for a blend's pruned search: ``(key, users, items)``
        with ``users(u) @ items().T`` the dense scores of known users ``u`` and ``key`` an
        array replaced whenever they change."""
        items = self._items_for_scoring()
        return items, self._users_for_scoring, lambda: items.T

    def _block_topk(self, rows, n, candidates, seen, num_threads):
        """Top-n through the pruned exact search (``fastrec.mips``) when the factors are
        wide enough for its bounds to pay; unbiased models' unknown users (popularity)
        and narrow models take the dense scores."""
        index = self._scoring_index()
        if index is None:
            return super()._block_topk(rows, n, candidates, seen, num_threads)

        def search(known, known_seen):
            return index.topk(self._users_for_scoring(known), n, dense_mask=candidates, seen=known_seen,
                              num_threads=num_threads)[:2]

        if self.biased:  # an unknown user's vector holds the biases alone: the search takes it
            return search(rows, seen)
        return self._search_known_rows(rows, n, candidates, seen, num_threads, search)

    def _row_bytes(self):
        index = self._scoring_index()
        return super()._row_bytes() if index is None else index.row_bytes()

    def _scoring_index(self):
        """The pruned search over ``_items_for_scoring``' rows, or None where it would not
        pay: factors too narrow for a bound a third of the product's width, or bounds that
        prune too little on a probe of the users (``InnerProductIndex.pruning_pays``).
        Cached as ``_scoring_items`` is."""
        if getattr(self, "_scoring_index_cache", None) is None:
            self._scoring_index_cache = self._build_scoring_index() or False
        return self._scoring_index_cache or None

    def _build_scoring_index(self):
        from fastrec.mips import InnerProductIndex, head_dims_for

        items = self._items_for_scoring()
        if head_dims_for(items.shape[0]) == items.shape[0]:  # too narrow to bound: the product is as cheap
            return None
        mean_user = np.zeros(items.shape[0])  # the prior: items it scores best go first
        if self.user_factors_.shape[0]:
            mean_user[:self.n_factors] = self.user_factors_.mean(axis=0, dtype=np.float64)
        if self.biased:
            mean_user[self.n_factors:] = 1.0, self.global_mean_ + self.user_bias_.mean(dtype=np.float64)
        index = InnerProductIndex(items.T, prior=mean_user)
        probe = self._users_for_scoring(index.probe_rows(self.user_factors_.shape[0]))
        return index if index.pruning_pays(probe) else None

    def _items_for_scoring(self):
        """The item side of ``_score_users``' product, (k [+ 2]) x n_items, C-contiguous;
        cached until training changes the factors (``_train`` drops it)."""
        if getattr(self, "_scoring_items", None) is None:
            q = self.item_factors_
            if self.biased:
                q = np.hstack([q, self.item_bias_[:, None], np.ones((q.shape[0], 1), dtype=q.dtype)])
            self._scoring_items = np.ascontiguousarray(q.T)
        return self._scoring_items

    # -------------------------------------------------------------- fold in
    def fold_in(self, items, ratings=None):
        """Factors and bias of a user unseen in training, from their history, without refitting.

        mse: the ridge solution against the fixed item factors (regularised per rating,
        as SGD is); logistic / bpr: ``FOLD_IN_EPOCHS`` SGD passes on the user's vector
        only, with negatives from a fixed seed.  Returns ``(factors, bias)``.
        """
        codes, values = self._history_codes(items, ratings)
        return self._fold_in_codes(codes, values)

    def _fold_in_codes(self, codes, values):
        k = self.n_factors
        q = self.item_factors_[codes].astype(np.float64)
        if codes.size == 0:
            return np.zeros(k), 0.0
        if self.loss == "mse":
            target = values - self.global_mean_ - (self.item_bias_[codes] if self.biased else 0.0)
            design = np.hstack([q, np.ones((codes.size, 1))]) if self.biased else q
            reg_bias = self.reg if self.reg_bias is None else self.reg_bias
            penalty = np.r_[np.full(k, self.reg), [reg_bias] if self.biased else []] * codes.size
            solution = np.linalg.solve(design.T @ design + np.diag(penalty), design.T @ target)
            return solution[:k], (float(solution[k]) if self.biased else 0.0)
        return self._fold_in_sgd(codes, q)

    def _fold_in_sgd(self, codes, q):
        """SGD on the new user's factors (and bias) only, items fixed."""
        rng = np.random.default_rng(0)
        p = np.zeros(self.n_factors)
        bias = 0.0
        item_bias = self.item_bias_.astype(np.float64) if self.biased else np.zeros(self.item_factors_.shape[0])
        all_q = self.item_factors_
        lr, reg = self.lr, self.reg
        for _ in range(FOLD_IN_EPOCHS):
            negatives = rng.integers(0, all_q.shape[0], (codes.size, self.neg_samples))
            for pos in range(codes.size):
                qi = q[pos]
                for j in negatives[pos]:
                    if j in codes:
                        continue
                    qj = all_q[j].astype(np.float64)
                    if self.loss == "bpr":
                        x = p @ (qi - qj) + item_bias[codes[pos]] - item_bias[j]
                        g = 1.0 / (1.0 + np.exp(x))
                        p += lr * (g * (qi - qj) - reg * p)
                    else:
                        for target, qv, bv in ((1.0, qi, item_bias[codes[pos]]), (0.0, qj, item_bias[j])):
                            err = target - 1.0 / (1.0 + np.exp(-(p @ qv + bias + bv)))
                            p += lr * (err * qv - reg * p)
                            bias += lr * (err - reg * bias) if self.biased else 0.0
        return p, bias

    def _history_scores(self, codes, values):
        p, bias = self._fold_in_codes(codes, values)
        scores = self.item_factors_.astype(np.float64) @ p
        if self.biased:
            scores += self.global_mean_ + bias + self.item_bias_
        return scores

    def _history_fallback(self):
        return self.global_mean_

    # ------------------------------------------------------ neighbours, why
    def similar_items(self, items, n=10):
        """Items with the most similar factors (cosine): ``(item_ids, scores)``, padded."""
        from fastrec.topk import top_k

        self._check_fitted()
        n = check_positive_int(n, "n", minimum=0)
        codes = self.interactions_.item_index(as_1d(np.atleast_1d(np.asarray(items)), "items"),
                                              unknown="ignore")
        q = self.item_factors_.astype(np.float64)
        norms = np.linalg.norm(q, axis=1)
        unit = q / np.where(norms > 0, norms, 1.0)[:, None]
        scores = unit[np.maximum(codes, 0)] @ unit.T
        scores[np.arange(codes.size), np.maximum(codes, 0)] = -np.inf  # not the item itself
        scores[codes < 0] = -np.inf
        ids, top = top_k(scores, n, num_threads=self.num_threads)
        return _raw_ids(self.interactions_.item_ids, ids), top

    def explain(self, user, item, n=5):
        """Which of the user's rated items pull the score of ``item`` up or down most.

        The user's factors are written as the ridge fold-in of their history, which
        is linear in it: each rated item j contributes ``weight_j * y_j``, where
        ``weight_j = q_item . (Q^T Q + lambda I)^-1 q_j`` (``similarity``) and ``y_j``
        its rating less the baseline.  ``base`` plus the contributions is the fold-in
        estimate, close to the trained one; parts are listed by |contribution|.
        """
        self._check_fitted()
        n = check_positive_int(n, "n", minimum=0)
        data = self.interactions_
        u, _ = self._known_users(np.atleast_1d(np.asarray(user)))
        i, known_item = self._known_items(np.atleast_1d(np.asarray(item)))
        estimate = float(self._predict_indices(u, i)[0])
        empty = np.zeros(0)
        if u[0] < 0 or not known_item[0]:
            return Explanation(user, item, estimate, estimate, data.item_ids[:0], empty, empty, empty)
        row = data.csr[[u[0]]]
        codes, values = row.indices.astype(np.int64), row.data.astype(np.float64)
        q = self.item_factors_[codes].astype(np.float64)
        reg = self.reg * codes.size
        weights = np.linalg.solve(q.T @ q + reg * np.eye(self.n_factors), q.T).T @ \
            self.item_factors_[i[0]].astype(np.float64)
        baseline = (self.global_mean_ + self.item_bias_[codes] + self.user_bias_[u[0]]) if self.biased else 0.0
        y = values - baseline if self.loss == "mse" else np.ones(codes.size)
        contribution = weights * y
        base = (self.global_mean_ + self.user_bias_[u[0]] + self.item_bias_[i[0]]) if self.biased else 0.0
        order = np.lexsort((codes, -np.abs(contribution)))[:n]
        return Explanation(user, item, estimate, float(base), data.item_ids[codes[order]], weights[order],
                           values[order], contribution[order])


class _Schedule:
    """The blocked SGD schedule of one training set: groups, visiting order, arrays.

    Users are cut into contiguous ranges with balanced rating counts (a block's user
    rows are then one stretch of memory), and each range into chunks of about
    ``CHUNK_BYTES`` of factor rows that meet every item group back to back; items are
    dealt by popularity in snake order (each group gets popular and rare items alike,
    so negatives drawn within a group are representative).  Inside a block the
    ratings of two halves of its users alternate, each half user by user: consecutive
    steps then touch different users, so the CPU overlaps them instead of waiting on
    the previous step's stores.
    """

    def __init__(self, data, n_blocks, dtype, row_bytes=0):
        self.n_blocks = b = n_blocks
        user_group = _contiguous_groups(data.user_counts, b)
        item_group = _deal(data.item_counts, b)
        # each group's users in chunks of about CHUNK_BYTES of factor rows (with b > 1):
        # a chunk meets every item group while its rows are still in cache
        group_rows = data.n_users * row_bytes / b
        n_chunks = max(1, int(np.ceil(group_rows / CHUNK_BYTES))) if b > 1 else 1
        chunk = _chunks_within(user_group, data.user_counts, b, n_chunks)
        users, items = data.entry_users, data.csr.indices
        block = (chunk[users] * b + user_group[users]) * b + item_group[items]
        n_keys = n_chunks * b * b
        if n_keys <= np.iinfo(np.int16).max:
            block = block.astype(np.int16)  # a stable argsort of 16-bit keys is a radix sort
        self.block_ptr = np.zeros(n_keys + 1, dtype=np.int64)
        np.cumsum(np.bincount(block, minlength=n_keys), out=self.block_ptr[1:])
        order = _two_lanes(np.argsort(block, kind="stable"), users, self.block_ptr)
        index_dtype = data.csr.indices.dtype
        self.users = users[order].astype(index_dtype)
        self.items = items[order]
        self.ratings = data.values[order].astype(dtype)
        self.group_items = np.argsort(item_group, kind="stable").astype(np.int64)
        self.group_ptr = np.zeros(b + 1, dtype=np.int64)
        np.cumsum(np.bincount(item_group, minlength=b), out=self.group_ptr[1:])
        self.indptr = data.csr.indptr.astype(np.int64)
        self.indices = data.csr.indices

    def run(self, loss, neg_samples, seed, epoch, scalars, params, biased, adagrad=None):
        """One epoch; returns the mean loss of its steps (before each step).

        ``adagrad``: None for plain SGD, else the running sums of squared gradients
        (users, items, user biases, item biases), updated in place.
        """
        from fastrec._kernels.mf_nb import LOSSES as CODES, sgd_epoch

        block_loss = np.zeros(self.block_ptr.size - 1)
        block_count = np.zeros(self.block_ptr.size - 1, dtype=np.int64)
        mu, lr, reg, lr_bias, reg_bias = scalars
        decay = lr.dtype.type(1) - lr * reg if adagrad is None else reg
        sums = adagrad if adagrad is not None else [np.zeros(0, dtype=lr.dtype)] * 4
        sgd_epoch(CODES[loss], self.block_ptr, self.n_blocks, self.users, self.items, self.ratings,
                  self.group_items, self.group_ptr, self.indptr, self.indices, neg_samples, seed,
                  epoch, mu, *params, lr, decay, lr_bias, reg_bias, biased, block_loss, block_count,
                  adagrad is not None, *sums, ADAGRAD_EPS)
        total = block_loss.sum()
        return float(np.sqrt(total / max(block_count.sum(), 1)) if loss == "mse"
                     else total / max(block_count.sum(), 1))

    def plan(self, neg_samples, seed, epoch):
        """The kernel's visiting order and negatives for ``epoch`` (see ``mf_nb.epoch_plan``)."""
        from fastrec._kernels.mf_nb import epoch_plan

        return epoch_plan(self.block_ptr, self.n_blocks, self.users, self.items, self.group_items,
                          self.group_ptr, self.indptr, self.indices, neg_samples, seed, epoch)


CHUNK_BYTES = 512 * 1024  # factor rows of one user chunk: about half a core's L2


def _chunks_within(group, counts, n_groups, n_chunks):
    """Chunk of each row: each group's rows (contiguous) cut into ``n_chunks`` ranges of
    about equal totals, so the blocks of one chunk step are balanced across threads."""
    chunk = np.zeros(group.size, dtype=np.int64)
    for g in range(n_groups):
        rows = np.flatnonzero(group == g)
        if rows.size:
            chunk[rows] = _contiguous_groups(counts[rows], n_chunks)
    return chunk


def _contiguous_groups(counts, n_groups):
    """Cut rows into ``n_groups`` contiguous ranges holding about equal totals."""
    cumulative = np.cumsum(counts) - counts / 2  # each row's midpoint
    total = max(counts.sum(), 1)
    return np.minimum((cumulative * n_groups // total).astype(np.int64), n_groups - 1)


def _two_lanes(order, users, block_ptr):
    """Within each block of ``order`` (user by user), alternate its two halves' entries.

    The halves split at a user boundary, so the two lanes never share a user.
    """
    out = np.empty_like(order)
    for start, stop in zip(block_ptr[:-1], block_ptr[1:], strict=True):
        entries = order[start:stop]
        if entries.size < 2:
            out[start:stop] = entries
            continue
        owner = users[entries]
        middle = int(np.searchsorted(owner, owner[entries.size // 2]))  # first entry of that user
        if middle == 0:  # one user: no second lane
            out[start:stop] = entries
            continue
        first, second = entries[:middle], entries[middle:]
        shared = min(first.size, second.size)
        mixed = np.empty(2 * shared, dtype=order.dtype)
        mixed[0::2], mixed[1::2] = first[:shared], second[:shared]
        out[start:stop] = np.concatenate([mixed, first[shared:], second[shared:]])
    return out


def _deal(counts, n_groups):
    """Assign rows to groups with balanced totals: by count, in snake order."""
    order = np.argsort(-counts, kind="stable")
    lap = np.arange(order.size) % (2 * n_groups)
    groups = np.empty(order.size, dtype=np.int64)
    groups[order] = np.where(lap < n_groups, lap, 2 * n_groups - 1 - lap)
    return groups


def _gd_epoch(data, mu, lr, reg, lr_b, reg_b, bu, bi, pu, qi, biased):
    """One full-batch step on the summed squared error (twin: ``reference.mf.gd_epoch``)."""
    users, items = data.entry_users, data.csr.indices
    dot = np.einsum("ij,ij->i", pu[users], qi[items], dtype=np.float64)
    err = data.values - (mu + dot + ((bu[users] + bi[items]) if biased else 0.0))
    errors = sp.csr_array((err, data.csr.indices, data.csr.indptr), shape=data.shape)
    count_u = data.user_counts[:, None]
    count_i = data.item_counts[:, None]
    grad_p = errors @ qi.astype(np.float64) - reg * count_u * pu
    grad_q = errors.T @ pu.astype(np.float64) - reg * count_i * qi
    if biased:
        bu += (lr_b * (np.asarray(errors.sum(axis=1)).ravel() - reg_b * count_u[:, 0] * bu)).astype(bu.dtype)
        bi += (lr_b * (np.asarray(errors.sum(axis=0)).ravel() - reg_b * count_i[:, 0] * bi)).astype(bi.dtype)
    pu += (lr * grad_p).astype(pu.dtype)
    qi += (lr * grad_q).astype(qi.dtype)
    return float(np.sqrt(np.mean(err ** 2))) if err.size else 0.0


INIT_CHUNKS = 8  # independent streams the initial factors are drawn from


def _normal(rng, shape, mean, std, dtype, threads):
    """Normal draws from ``INIT_CHUNKS`` streams over row ranges, filled on ``threads``
    threads (the values do not depend on the thread count).  Float32 Box-Muller on
    NumPy's vectorised log/sin/cos, twice as fast as ``standard_normal``; float32 and
    float64 models start from the same values."""
    from concurrent.futures import ThreadPoolExecutor

    out = np.empty(shape, dtype=dtype)
    streams = rng.spawn(INIT_CHUNKS)
    bounds = np.linspace(0, shape[0], INIT_CHUNKS + 1).astype(np.int64)

    def fill(chunk):  # NumPy releases the GIL in these loops
        rows = out[bounds[chunk]:bounds[chunk + 1]].reshape(-1)
        half = (rows.size + 1) // 2
        uniform = streams[chunk].random((2, half), dtype=np.float32)
        radius = np.sqrt(np.float32(-2.0) * np.log1p(-uniform[0]))  # 1 - u lies in (0, 1]
        angle = np.float32(2 * np.pi) * uniform[1]
        rows[:half] = radius * np.cos(angle)
        rows[half:] = (radius * np.sin(angle))[:rows.size - half]
        rows *= dtype.type(std)
        rows += dtype.type(mean)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(fill, range(INIT_CHUNKS)))
    return out
