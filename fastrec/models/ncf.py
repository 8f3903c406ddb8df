"""Neural collaborative filtering (He et al., 2017): GMF, an MLP tower, and NeuMF fusing both.

Forward, backward and the optimiser run in the Numba kernel ``_kernels/ncf_nb.py``;
no deep-learning framework is needed.  Scoring every item for a user splits the
tower's first layer into a user part and an item part, so a block of users costs
one small matrix product per layer.
"""

import numpy as np

from fastrec._checks import check_choice, check_non_negative_float, check_positive_int, check_random_state
from fastrec._threads import effective_num_threads, limit_blas_threads, numba_threads
from fastrec.models._training import EpochTraining
from fastrec.models.base import Recommender
from fastrec.models.mf import _normal
# the NumPy twin's forward and backward passes serve scoring and fold-in (a few rows each)
from fastrec.reference.ncf import decay_mask, forward, loss_and_gradients, tower_weights

ARCHITECTURES = ("neumf", "gmf", "mlp")
LOSSES = ("bce", "mse")
OPTIMIZERS = ("adam", "sgd")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
CHUNK = 32  # samples per parallel work item: fixed, so results do not depend on threads
FOLD_IN_STEPS = 50  # full-batch Adam steps on a new user's embeddings
SCORE_ELEMENTS = 4 * 2**20  # hidden activations held at once while scoring all items


class NeuralCF(EpochTraining, Recommender):
    """Neural collaborative filtering: ``logit(u, i) = h . [p_u * q_i, mlp(p'_u, q'_i)] + c``.

    - ``architecture="gmf"``: generalised matrix factorisation, h . (p_u * q_i) + c.
    - ``"mlp"``: a ReLU tower over the concatenated embeddings p'_u, q'_i (each
      ``layers[0] / 2`` wide); ``layers`` are the tower's widths, input first
      (the paper's (64, 32, 16) has two hidden layers, 32 and 16 units).
    - ``"neumf"``: both, fused by one output layer.  ``pretrained=(gmf, mlp)``
      (fitted ``NeuralCF`` models of the same data and sizes) starts from their
      embeddings and weights, the output layer weighted ``alpha`` and ``1 - alpha``,
      as in the paper (which then trains with ``optimizer="sgd"``).

    ``loss="bce"``: implicit feedback, each interaction with ``neg_samples`` items the
    user has not interacted with, drawn anew every epoch; ``predict`` gives
    probabilities.  ``loss="mse"``: ratings; ``predict`` gives ratings clipped to the
    scale.  Mini-batches of ``batch_size`` samples in shuffled order minimise
    (1/B) sum [loss + reg/2 (|e_u|^2 + |e_i|^2)] + reg/2 |weights|^2 by Adam (lazy on
    embedding rows: only the rows in a batch move, as ``torch.optim.SparseAdam``) or
    plain SGD.  With a fixed ``random_state`` the model is identical run after run and
    for every ``num_threads``.

    Attributes
    ----------
    params_ : array
        Every parameter, flat; ``tables_`` gives named views.
    history_ : dict with "train" and "validation" loss per epoch (RMSE for mse, mean
        binary cross-entropy for bce)
    """

    _dense_blas_scores = True
    _learned = ("params_", "adam_m_", "adam_v_", "adam_step_", "global_mean_", "loss_history_",
                "epochs_done_", "seed_")
    _unsaved_params = ("validation", "callback", "pretrained")

    def __init__(self, architecture="neumf", n_factors=16, layers=(64, 32, 16), n_epochs=20,
                 lr=0.001, *, optimizer="adam", batch_size=256, neg_samples=4, reg=0.0, loss="bce",
                 init_std=0.01, pretrained=None, alpha=0.5, dtype=np.float32, num_threads=None,
                 random_state=None, validation=None, early_stopping=None, callback=None,
                 show_progress=False):
        self.architecture = architecture
        self.n_factors = n_factors
        self.layers = layers
        self.n_epochs = n_epochs
        self.lr = lr
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.neg_samples = neg_samples
        self.reg = reg
        self.loss = loss
        self.init_std = init_std
        self.pretrained = pretrained
        self.alpha = alpha
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
        return "global mean" if self.loss == "mse" else "popularity"

    def _check_params(self):
        check_choice(self.architecture, "architecture", ARCHITECTURES)
        check_choice(self.loss, "loss", LOSSES)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_positive_int(self.n_factors, "n_factors")
        check_positive_int(self.n_epochs, "n_epochs", minimum=0)
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.neg_samples, "neg_samples")
        check_non_negative_float(self.lr, "lr", strictly_positive=True)
        check_non_negative_float(self.reg, "reg")
        check_non_negative_float(self.init_std, "init_std")
        if self.architecture != "gmf":
            layers = self.layers
            if (not isinstance(layers, (tuple, list)) or not layers
                    or not all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w > 0
                               for w in layers)):
                raise ValueError(f"layers must be a non-empty sequence of positive ints, got {layers!r}")
            if layers[0] % 2:
                raise ValueError(f"layers[0] is the user and item embeddings side by side and must be "
                                 f"even, got {layers[0]}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha!r}")
        if np.dtype(self.dtype) not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {np.dtype(self.dtype)}")
        self._check_training_params()
        if self.pretrained is not None and self.architecture != "neumf":
            raise ValueError("pretrained=(gmf, mlp) initialises architecture='neumf' only")

    # --------------------------------------------------------------- layout
    def _layout(self):
        """(dims, w_off, b_off, h_off, table widths): where each part lives in ``dense``."""
        use_gmf = self.architecture in ("gmf", "neumf")
        use_mlp = self.architecture in ("mlp", "neumf")
        dims = np.array(self.layers if use_mlp else (0,), dtype=np.int64)
        w_off, b_off = [], []
        offset = 0
        for l in range(dims.size - 1 if use_mlp else 0):
            w_off.append(offset)
            offset += dims[l] * dims[l + 1]
            b_off.append(offset)
            offset += dims[l + 1]
        f = self.n_factors if use_gmf else 0
        e = int(dims[0]) // 2 if use_mlp else 0
        n_x = f + (int(dims[-1]) if use_mlp else 0)
        return (dims, np.array(w_off, dtype=np.int64), np.array(b_off, dtype=np.int64), offset,
                f, e, offset + n_x + 1)

    @property
    def tables_(self):
        """Named views of ``params_``: ``user_gmf``, ``item_gmf``, ``user_mlp``, ``item_mlp``
        (zero columns when the architecture has no such part) and ``dense``."""
        return self._views(self.params_)

    def _views(self, flat):
        n_users, n_items = self.interactions_.n_users, self.interactions_.n_items
        _, _, _, _, f, e, n_dense = self._layout()
        shapes = {"user_gmf": (n_users, f), "item_gmf": (n_items, f), "user_mlp": (n_users, e),
                  "item_mlp": (n_items, e), "dense": (n_dense,)}
        views, offset = {}, 0
        for name, shape in shapes.items():
            size = int(np.prod(shape))
            views[name] = flat[offset:offset + size].reshape(shape)
            offset += size
        return views

    # ------------------------------------------------------------------ fit
    def _initialise(self, data):
        if self.loss == "mse" and data.is_implicit:
            raise ValueError("loss='mse' needs explicit ratings; for implicit feedback use loss='bce'")
        if self.loss == "bce" and data.nnz and (data.user_counts >= data.n_items).any():
            user = data.user_ids[np.argmax(data.user_counts >= data.n_items)]
            raise ValueError(f"user {user!r} interacted with every item: no negatives to sample")
        self.interactions_ = data
        dtype = np.dtype(self.dtype)
        rng = check_random_state(self.random_state)
        dims, w_off, b_off, h_off, f, e, n_dense = self._layout()
        size = (data.n_users + data.n_items) * (f + e) + n_dense
        threads = effective_num_threads(self.num_threads)
        self.params_ = np.zeros(size, dtype=dtype)
        tables = self._views(self.params_)
        embeddings = (data.n_users + data.n_items) * (f + e)
        self.params_[:embeddings] = _normal(rng, (embeddings,), 0.0, self.init_std, dtype, threads)
        dense = tables["dense"]
        for l in range(w_off.size):  # Glorot uniform
            limit = np.sqrt(6.0 / (dims[l] + dims[l + 1]))
            dense[w_off[l]:b_off[l]] = rng.uniform(-limit, limit, dims[l] * dims[l + 1])
        n_x = n_dense - 1 - h_off
        dense[h_off:h_off + n_x] = rng.uniform(-1, 1, n_x) * np.sqrt(3.0 / n_x)  # LeCun uniform
        self.global_mean_ = float(data.values.mean()) if self.loss == "mse" and data.nnz else 0.0
        dense[-1] = self.global_mean_
        if self.pretrained is not None:
            self._load_pretrained(tables)
        self.adam_m_ = np.zeros(size if self.optimizer == "adam" else 0, dtype=dtype)
        self.adam_v_ = np.zeros_like(self.adam_m_)
        self.adam_step_ = np.array(0, dtype=np.int64)
        self.seed_ = np.array(rng.integers(0, 2**63 - 1), dtype=np.int64)
        self.epochs_done_ = np.array(0)
        self.loss_history_ = np.zeros((0, 2))

    def _load_pretrained(self, tables):
        """NeuMF from a fitted GMF and MLP (He et al., section 3.4.1)."""
        gmf, mlp = self.pretrained
        for model, kind in ((gmf, "gmf"), (mlp, "mlp")):
            if not isinstance(model, NeuralCF) or model.architecture != kind or not hasattr(model, "params_"):
                raise ValueError(f"pretrained must be (fitted gmf, fitted mlp) NeuralCF models; "
                                 f"got {model!r} for the {kind} part")
            if not model.interactions_.same_ids(self.interactions_) or model.loss != self.loss:
                raise ValueError(f"the pretrained {kind} model was fitted on other ids or another loss")
        if gmf.n_factors != self.n_factors or tuple(mlp.layers) != tuple(self.layers):
            raise ValueError("the pretrained models' n_factors / layers differ from this model's")
        g, m = gmf.tables_, mlp.tables_
        for name in ("user_gmf", "item_gmf"):
            tables[name][...] = g[name]
        for name in ("user_mlp", "item_mlp"):
            tables[name][...] = m[name]
        dense = tables["dense"]
        f = self.n_factors
        tower = m["dense"].size - 1 - int(self.layers[-1])
        dense[:tower] = m["dense"][:tower]
        dense[tower:tower + f] = self.alpha * g["dense"][:f]
        dense[tower + f:-1] = (1 - self.alpha) * m["dense"][tower:-1]
        dense[-1] = self.alpha * g["dense"][-1] + (1 - self.alpha) * m["dense"][-1]

    def _train(self, data, n_epochs):
        from fastrec._kernels.ncf_nb import epoch_samples, train_epoch

        dtype = np.dtype(self.dtype)
        threads = effective_num_threads(self.num_threads)
        dims, w_off, b_off, h_off, _, _, n_dense = self._layout()
        decay = decay_mask((dims, w_off, b_off, h_off), n_dense).astype(dtype)
        tables = self._views(self.params_)
        adam = self.optimizer == "adam"
        order = ("user_gmf", "item_gmf", "user_mlp", "item_mlp", "dense")
        if adam:
            m, v = self._views(self.adam_m_), self._views(self.adam_v_)
            moment_arrays = [a[name] for name in order for a in (m, v)]
        else:  # SGD keeps no state: empty arrays of the right kinds
            moment_arrays = [np.zeros((0, 0) if name != "dense" else 0, dtype) for name in order for _ in "mv"]
        csr = data.csr
        implicit = self.loss == "bce"

        def run_epoch(epoch):
            users, items, labels = epoch_samples(csr.indptr, csr.indices, data.values, data.n_items,
                                                 self.neg_samples, implicit, int(self.seed_), epoch)
            # the tower's small matrix products call BLAS from our threads: keep BLAS to one
            with numba_threads(threads), limit_blas_threads(1), np.errstate(over="ignore", invalid="ignore"):
                total, step = train_epoch(
                    users, items, labels.astype(dtype), self.batch_size, CHUNK, self.loss == "mse",
                    *(tables[name] for name in order), dims, w_off, b_off, h_off,
                    decay, *moment_arrays, adam, self.lr, ADAM_BETAS[0], ADAM_BETAS[1], ADAM_EPS,
                    self.reg, int(self.adam_step_))
            self.adam_step_ = np.array(step, dtype=np.int64)
            n = max(users.size, 1)
            train_loss = float(np.sqrt(total / n)) if self.loss == "mse" else total / n
            if not np.isfinite(train_loss) or not np.isfinite(self.params_).all():
                raise ValueError(f"training diverged at epoch {epoch + 1}: non-finite parameters; "
                                 f"use a smaller lr (now {self.lr})")
            return train_loss

        def restore(saved):
            self.params_[...] = saved

        self._run_epochs(data, n_epochs, run_epoch, self.params_.copy, restore)

    def _validation_loss(self, validation):
        """RMSE (mse); mean BCE over the positives and as many random items as negatives
        drawn from a fixed seed (bce)."""
        u, i = validation.entry_users, validation.csr.indices
        score = self._logits(u, i)
        if self.loss == "mse":
            return float(np.sqrt(np.mean((validation.values - score) ** 2)))
        j = np.random.default_rng(0).integers(0, validation.n_items, u.size)
        other = self._logits(u, j)
        return float(np.mean(np.logaddexp(0, -score)) / 2 + np.mean(np.logaddexp(0, other)) / 2)

    # -------------------------------------------------------------- predict
    def _arrays(self):
        dims, w_off, b_off, h_off, f, e, _ = self._layout()
        return self.tables_, (dims, w_off, b_off, h_off)

    def _logits(self, u, i, user_rows=None):
        """Logits of known index pairs (float64), ``user_rows`` replacing the user tables."""
        tables, layout = self._arrays()
        params = {k: v.astype(np.float64) if k == "dense" else v for k, v in tables.items()}
        if user_rows is not None:
            params.update(user_rows)
        out = np.empty(u.size)
        step = max(1, SCORE_ELEMENTS // max(int(layout[0].max()), 1))
        for s in range(0, u.size, step):
            out[s:s + step] = forward(params, layout, u[s:s + step], i[s:s + step])[0]
        return out

    def _finish(self, logits):
        if self.loss == "bce":
            return 1.0 / (1.0 + np.exp(-logits))
        scale = self.interactions_.rating_scale
        return np.clip(logits, scale[0], scale[1]) if scale is not None else logits

    def _predict_indices(self, u, i):
        both = (u >= 0) & (i >= 0)
        data = self.interactions_
        if self.loss == "mse":
            out = np.full(u.size, self.global_mean_)
        else:  # the item's share of users, 0 for unknown items
            out = np.where(i >= 0, data.item_counts[np.maximum(i, 0)] / max(data.n_users, 1), 0.0)
        out[both] = self._finish(self._logits(u[both], i[both]))
        return out

    def _score_users(self, u):
        """Logits of every item for users ``u``; unknown users get popularity counts."""
        known = u >= 0
        scores = np.empty((u.size, self.interactions_.n_items))
        scores[~known] = self.interactions_.item_counts
        tables, _ = self._arrays()
        rows = {"user_gmf": tables["user_gmf"][u[known]], "user_mlp": tables["user_mlp"][u[known]]}
        scores[known] = self._score_rows(rows)
        return scores

    def _score_rows(self, rows):
        """Logits of every item for the user embedding rows ``rows`` (``user_gmf``,
        ``user_mlp``): the tower's first layer is split into its user and item halves."""
        tables, layout = self._arrays()
        dims, _, _, h_off = layout
        dense = tables["dense"].astype(np.float64)
        f, e = tables["user_gmf"].shape[1], tables["user_mlp"].shape[1]
        n_users, n_items = rows["user_gmf"].shape[0], tables["item_gmf"].shape[0]
        top = int(dims[-1]) if e else 0
        h, c = dense[h_off:h_off + f + top], dense[h_off + f + top]
        threads = effective_num_threads(self.num_threads)
        out = np.full((n_users, n_items), c)
        with limit_blas_threads(threads):
            if f:
                out += (rows["user_gmf"] * h[:f]) @ tables["item_gmf"].T
            if e:
                ws, bs = tower_weights(dense, layout)
                item_mlp = tables["item_mlp"].astype(np.float64)
                user_mlp = rows["user_mlp"].astype(np.float64)
                if not ws:  # no hidden layer: h . [p', q'] splits into two products
                    out += (user_mlp @ h[f:f + e])[:, None] + (item_mlp @ h[f + e:])[None, :]
                    return out
                user_part = user_mlp @ ws[0][:e]
                item_part = item_mlp @ ws[0][e:] + bs[0]
                block = max(1, SCORE_ELEMENTS // max(n_items * int(dims.max()), 1))
                for s in range(0, n_users, block):
                    a = np.maximum(user_part[s:s + block, None, :] + item_part[None, :, :], 0.0)
                    a = a.reshape(-1, a.shape[-1])
                    for w, b in zip(ws[1:], bs[1:], strict=True):
                        a = np.maximum(a @ w + b, 0.0)
                    out[s:s + block] += (a @ h[f:]).reshape(-1, n_items)
        return out

    # -------------------------------------------------------------- fold in
    def fold_in(self, items, ratings=None):
        """Embeddings of a user unseen in training, from their history, without refitting:
        ``FOLD_IN_STEPS`` full-batch Adam steps on the user's rows only, the network fixed
        (bce: the history's items and ``neg_samples`` negatives each, from a fixed seed).
        Returns ``{"user_gmf": row, "user_mlp": row}``."""
        codes, values = self._history_codes(items, ratings)
        return self._fold_in_codes(codes, values)

    def _fold_in_codes(self, codes, values):
        tables, layout = self._arrays()
        params = {k: v.astype(np.float64) for k, v in tables.items()}
        rows = {"user_gmf": np.zeros((1, params["user_gmf"].shape[1])),
                "user_mlp": np.zeros((1, params["user_mlp"].shape[1]))}
        if codes.size == 0:
            return {k: v[0] for k, v in rows.items()}
        items, labels = codes, values
        if self.loss == "bce":
            rng = np.random.default_rng(0)
            negatives = rng.integers(0, self.interactions_.n_items, codes.size * self.neg_samples)
            negatives = negatives[~np.isin(negatives, codes)]
            items = np.concatenate([codes, negatives])
            labels = np.r_[np.ones(codes.size), np.zeros(negatives.size)]
        users = np.zeros(items.size, dtype=np.int64)
        params.update(rows)
        moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in rows.items()}
        beta1, beta2 = ADAM_BETAS
        lr = max(self.lr, 0.01)  # a few steps from zero need a step size of this order
        for step in range(1, FOLD_IN_STEPS + 1):
            _, _, grads = loss_and_gradients(params, layout, users, items, labels,
                                             mse=self.loss == "mse", reg=self.reg)
            for name in rows:
                m, v = moments[name]
                g = grads[name]
                m[...] = beta1 * m + (1 - beta1) * g
                v[...] = beta2 * v + (1 - beta2) * g * g
                params[name] -= lr * (m / (1 - beta1 ** step)) / (np.sqrt(v / (1 - beta2 ** step)) + ADAM_EPS)
        return {k: params[k][0] for k in rows}

    def _history_scores(self, codes, values):
        rows = {k: v[None, :] for k, v in self._fold_in_codes(codes, values).items()}
        return self._finish(self._score_rows(rows)[0])

    def _history_fallback(self):
        return self.global_mean_
