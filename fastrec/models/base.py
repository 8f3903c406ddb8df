"""The verbs every fastrec model shares: fit, predict, recommend, save / load.

A model implements three hooks on dense indices — ``_fit(data)``,
``_predict_indices(u, i)`` and ``_score_users(u)`` — and lists its learned arrays in
``_learned``; this base class turns raw ids into indices, reports cold users and
items, batches recommendation through the shared top-k kernel and stores models as
``.npz`` files without pickle.
"""
import contextlib
import dataclasses
import inspect
import json

import numpy as np
import scipy.sparse as sp

from fastrec._checks import as_1d, check_positive_int
from fastrec._idmap import IdMap
from fastrec._threads import effective_num_threads, limit_blas_threads
from fastrec.data import Interactions, as_interactions
from fastrec.exceptions import NotFittedError
from fastrec.topk import run_topk

_MODELS = {}
FORMAT_VERSION = 1
SCORE_BLOCK_BYTES = 64 * 2**20  # dense score block per recommend batch
PARALLEL_BLOCK_BYTES = 8 * 2**20  # per thread, when each thread scores its own block
BLOCKS_PER_THREAD = 4  # at least this many blocks per thread when they are shared...
PARALLEL_MIN_ROWS = 64  # ...unless that makes them shorter than this


@dataclasses.dataclass(frozen=True)
class Details:
    """What a prediction or recommendation knew about its users and items.

    ``known_user`` / ``known_item``: boolean arrays, True where the id had training
    interactions; elsewhere the model used ``fallback``.
    """

    known_user: np.ndarray
    known_item: np.ndarray
    fallback: str
    n_neighbors: np.ndarray = None  # neighbourhood models: neighbours behind each estimate


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Why a model scored ``item`` for ``user``: the parts behind the estimate.

    ``base`` plus the sum of every part's ``contribution`` is the unclipped estimate;
    the parts (``neighbors``: raw ids of items or users, ``similarity``, ``rating``)
    are listed by weight, the strongest first, and may be cut to the n asked for.
    """

    user: object
    item: object
    estimate: float
    base: float
    neighbors: np.ndarray
    similarity: np.ndarray
    rating: np.ndarray
    contribution: np.ndarray


class Recommender:
    """Base class: hyper-parameters in ``__init__``, learned state in attributes ending in ``_``."""

    _learned = ()             # names of learned array attributes, saved by save()
    predicts_ratings = True   # False where predict() returns a ranking score, not a rating
    requires_ratings = False  # True where fit() needs explicit ratings
    fallback = "global mean"  # what unknown users/items get
    _dense_blas_scores = False  # _score_users is BLAS work: recommend runs one block per thread
    _unsaved_params = ()      # hyper-parameters save() stores as None (data, callables)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _MODELS[cls.__name__] = cls

    # --------------------------------------------------------------- params
    @classmethod
    def _param_names(cls):
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values() if p.name != "self"]

    def get_params(self):
        """Hyper-parameters as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self):
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not _same_value(v, defaults[k].default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    # ------------------------------------------------------------------ fit
    def fit(self, data):
        """Learn from an ``Interactions`` (or a scipy sparse users x items matrix); returns self."""
        data = as_interactions(data)
        self._check_params()
        self._fit(data)
        self.interactions_ = data
        return self

    def _check_params(self):
        """Validate hyper-parameters (subclasses extend); runs before any work."""

    def _check_fitted(self):
        if not hasattr(self, "interactions_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(data) first")

    # ------------------------------------------------------- id resolution
    def _known_users(self, raw):
        data = self.interactions_
        u = data.user_index(raw, unknown="ignore")
        known = u >= 0
        known[known] = data.user_counts[u[known]] > 0
        return np.where(known, u, -1), known

    def _known_items(self, raw):
        data = self.interactions_
        i = data.item_index(raw, unknown="ignore")
        known = i >= 0
        known[known] = self._item_has_data()[i[known]]
        return np.where(known, i, -1), known

    def _item_has_data(self):
        cached = getattr(self, "_items_with_data", None)
        if cached is None or cached[0] is not self.interactions_:  # refitted on other data
            cached = self._items_with_data = (self.interactions_, self.interactions_.item_counts > 0)
        return cached[1]

    # -------------------------------------------------------------- predict
    def predict(self, users, items, *, return_details=False):
        """Predicted scores (ratings, for rating models) for pairs of raw ids.

        Unknown users or items (no training interactions) get the model's fallback
        (``self.fallback``) and never raise; ``return_details=True`` also returns a
        :class:`Details` saying which pairs fell back.
        """
        self._check_fitted()
        scalar = np.ndim(users) == 0 and np.ndim(items) == 0
        users = as_1d(np.atleast_1d(np.asarray(users)), "users")
        items = as_1d(np.atleast_1d(np.asarray(items)), "items")
        if users.size != items.size:
            raise ValueError(f"users has {users.size} entries but items has {items.size}")
        u, known_user = self._known_users(users)
        i, known_item = self._known_items(items)
        if return_details:
            estimates, n_neighbors = self._predict_indices_with_counts(u, i)
        else:
            estimates = self._predict_indices(u, i)
        if scalar:
            estimates = float(estimates[0])
        if return_details:
            return estimates, Details(known_user, known_item, self.fallback, n_neighbors)
        return estimates

    def _predict_indices_with_counts(self, u, i):
        """Estimates and, for neighbourhood models, the neighbours behind each (else None)."""
        return self._predict_indices(u, i), None

    # ------------------------------------------------------------ recommend
    def recommend(self, users, n=10, *, exclude_seen=True, items=None, num_threads=None,
                  return_details=False):
        """Top-``n`` items for many users at once.

        Parameters
        ----------
        users : array-like of raw user ids
            Unknown users (no training interactions) get the fallback ranking.
        n : int
        exclude_seen : bool
            Leave out items each user interacted with in training.
        items : array-like of raw item ids, optional
            Only recommend among these candidates.
        num_threads : int, optional

        Returns
        -------
        item_ids : array (len(users), n) of raw item ids
            Padded where fewer than n candidates remain: -1 for integer ids, "" for
            string ids, None for other ids (their score is -inf).
        scores : float array (len(users), n)
        details : Details, only with ``return_details=True``
        """
        codes, scores, known_user = self._recommend_codes(users, n, exclude_seen, items, num_threads)
        raw = _raw_ids(self.interactions_.item_ids, codes)
        if return_details:  # known_item: which items of the catalogue have interactions
            return raw, scores, Details(known_user, self._item_has_data().copy(), self.fallback)
        return raw, scores

    def recommend_all(self, n=10, *, batch_size=None, exclude_seen=True, items=None, num_threads=None):
        """Top-``n`` items for every user of the training data, ``batch_size`` users at a
        time (default: blocks of about 64 MB of scores), never all users x all items at
        once.  Returns ``(user_ids, item_ids, scores)``."""
        self._check_fitted()
        check_positive_int(batch_size, "batch_size", allow_none=True)
        users = self.interactions_.user_ids
        codes, scores, _ = self._recommend_codes(users, n, exclude_seen, items, num_threads, batch_size)
        return users, _raw_ids(self.interactions_.item_ids, codes), scores

    def _recommend_codes(self, users, n, exclude_seen=True, items=None, num_threads=None, batch_size=None):
        """``recommend`` on dense item indices: ``(codes, scores, known_user)``, -1 padded."""
        self._check_fitted()
        n = check_positive_int(n, "n", minimum=0)
        users = as_1d(np.atleast_1d(np.asarray(users)), "users")
        threads = effective_num_threads(num_threads)
        data = self.interactions_
        u, known_user = self._known_users(users)
        candidates = self._excluded_columns(items)
        pooled = self._dense_blas_scores and threads > 1
        if pooled:  # each thread: its own small block, single-threaded BLAS, then its top-k
            limit = PARALLEL_BLOCK_BYTES
        else:
            limit = SCORE_BLOCK_BYTES
        block = batch_size or max(1, min(max(u.size, 1), limit // self._row_bytes()))
        if pooled and not batch_size:  # enough blocks to share among the threads
            block = min(block, max(PARALLEL_MIN_ROWS, -(-u.size // (BLOCKS_PER_THREAD * threads))))
        out_ids = np.empty((u.size, n), dtype=np.int64)
        out_scores = []

        def one_block(start, topk_threads):
            rows = u[start:start + block]
            seen = _rows_pattern(data.csr, rows) if exclude_seen else None
            ids, top = self._block_topk(rows, n, candidates, seen, topk_threads)
            if not out_scores:  # the first block fixes the dtype
                out_scores.append(np.empty((u.size, n), dtype=top.dtype))
            out_ids[start:start + block] = ids
            out_scores[0][start:start + block] = top

        starts = range(0, u.size, block)
        if not pooled or len(starts) < 2:
            # BLAS models: held once here rather than in every block (threadpoolctl costs ~1 ms)
            with limit_blas_threads(threads) if self._dense_blas_scores else contextlib.nullcontext():
                for start in starts:
                    one_block(start, threads)
        else:
            from concurrent.futures import ThreadPoolExecutor

            from fastrec._threads import blas_worker

            def work(start):
                with blas_worker():
                    one_block(start, 1)

            # BLAS threads and ours spinning on 2 cores slow both (measured 1.5x): one level only
            with limit_blas_threads(1):
                work(starts[0])
                with ThreadPoolExecutor(max_workers=threads) as pool:
                    list(pool.map(work, starts[1:]))
        out_scores = out_scores[0] if out_scores else np.empty((0, n))
        return out_ids, out_scores, known_user

    def _row_bytes(self):
        """The bytes ``_block_topk`` holds per user row, which size ``recommend``'s blocks:
        here a dense row of scores; searches that skip most of the row say less."""
        return 8 * max(self.interactions_.n_items, 1)

    def _block_topk(self, rows, n, candidates, seen, num_threads):
        """``(ids, scores)``: the top-``n`` item indices of user indices ``rows`` (-1:
        unknown); ``candidates``: None or a uint8 mask of excluded items; ``seen``: None or
        a CSR ``(indptr, indices)`` of excluded items per row.  Here: the dense scores,
        then the shared top-k, at most SCORE_BLOCK_BYTES of them at a time (a subclass's
        blocks, sized by its own ``_row_bytes``, can be longer); models with a faster
        exact path override it."""
        step = max(1, SCORE_BLOCK_BYTES // Recommender._row_bytes(self))
        parts = []
        for start in range(0, rows.size, step):
            part = rows[start:start + step]
            part_seen = seen if part.size == rows.size else _pattern_rows(seen, np.arange(start, start + part.size))
            indptr, indices = (None, None) if part_seen is None else part_seen
            parts.append(run_topk(np.ascontiguousarray(self._score_users(part)), n, candidates, indptr, indices,
                                  num_threads))
        if len(parts) == 1:
            return parts[0]
        return np.vstack([ids for ids, _ in parts]), np.vstack([top for _, top in parts])

    def _search_known_rows(self, rows, n, candidates, seen, num_threads, search):
        """``(ids, scores)`` of ``rows`` with ``search(rows, seen)`` for the known users and
        the dense rows (``Recommender._block_topk``) for the unknown ones (-1), each on
        its own part of the block: an exact search that cannot take unknown users need not
        leave a whole block to the dense scores."""
        unknown = rows < 0
        if not unknown.any():
            return search(rows, seen)
        dense, known = np.flatnonzero(unknown), np.flatnonzero(~unknown)
        parts = [(dense, Recommender._block_topk(self, rows[dense], n, candidates, _pattern_rows(seen, dense),
                                                 num_threads))]
        if known.size:
            parts.append((known, search(rows[known], _pattern_rows(seen, known))))
        ids = np.empty((rows.size, n), dtype=np.int64)
        scores = np.empty((rows.size, n), dtype=np.result_type(*(top.dtype for _, (_, top) in parts)))
        for where, (part_ids, part_scores) in parts:
            ids[where] = part_ids
            scores[where] = part_scores
        return ids, scores

    # ------------------------------------------------------ unseen users
    def recommend_history(self, items, ratings=None, *, n=10, exclude_seen=True, candidates=None,
                          return_details=False):
        """Top-``n`` items for a user unseen in training, from their history, without refitting.

        ``items``: raw ids the user interacted with (ids the model does not know are
        ignored); ``ratings``: their ratings (required when the model was fitted on
        ratings); ``candidates``: raw item ids to choose from (default all).  Returns
        ``(item_ids, scores)``, one row of :meth:`recommend`; with ``return_details``
        also a :class:`Details` whose ``known_user`` says whether any history item was
        usable and whose ``fallback`` says what stood in for the rest.
        """
        codes, values = self._history_codes(items, ratings)
        if return_details:
            details = Details(np.array([codes.size > 0]), self._item_has_data().copy(),
                              self._history_report(codes))
        n = check_positive_int(n, "n", minimum=0)
        scores = np.ascontiguousarray(self._history_scores(codes, values)[None, :])
        seen = codes if exclude_seen else codes[:0]
        ids, top = run_topk(scores, n, self._excluded_columns(candidates),
                            np.array([0, seen.size], dtype=np.int64), seen,
                            1)  # one row: waking a thread team would cost more than the work
        if not self.predicts_ratings:  # a zero score means nothing points at the item
            ids[top == 0] = -1
            top[top == 0] = -np.inf
        if return_details:
            return _raw_ids(self.interactions_.item_ids, ids[0]), top[0], details
        return _raw_ids(self.interactions_.item_ids, ids[0]), top[0]

    def _history_report(self, codes):
        """What ``recommend_history`` used for a history of these item codes."""
        return "the history" if codes.size else f"no usable history: {self.fallback}"

    def predict_history(self, items, ratings, targets):
        """Scores of raw item ids ``targets`` for a user unseen in training (see ``recommend_history``)."""
        codes, values = self._history_codes(items, ratings)
        scores = self._history_scores(codes, values)
        t, known = self._known_items(as_1d(np.atleast_1d(np.asarray(targets)), "targets"))
        return np.where(known, scores[np.maximum(t, 0)], self._history_fallback())

    def _history_fallback(self):
        """What an item the model does not know gets in ``predict_history``."""
        return 0.0

    def _history_scores(self, codes, values):
        """Scores of every item for a new user with these (sorted item codes, values)."""
        raise NotImplementedError(f"{type(self).__name__} cannot score users unseen in training")

    def _history_codes(self, items, ratings=None):
        """Validated history: (sorted item codes, float64 values); unknown items dropped."""
        self._check_fitted()
        items = as_1d(np.atleast_1d(np.asarray(items)), "items")
        codes = self.interactions_.item_index(items, unknown="ignore")
        if ratings is None:
            if not self.interactions_.is_implicit:
                raise ValueError("this model was fitted on ratings; pass the history's ratings")
            values = np.ones(items.size)
        else:
            values = as_1d(np.atleast_1d(np.asarray(ratings, dtype=np.float64)), "ratings")
            if values.size != items.size:
                raise ValueError(f"items has {items.size} entries but ratings has {values.size}")
            if not np.isfinite(values).all():
                raise ValueError("ratings must be finite")
        known = codes >= 0
        codes, values = codes[known], values[known]
        order = np.argsort(codes, kind="stable")
        codes, values = codes[order].astype(np.int64), values[order]
        if codes.size and (codes[1:] == codes[:-1]).any():
            raise ValueError("the history lists an item more than once")
        return codes, values

    def _excluded_columns(self, items):
        """uint8 mask (1, n_items), 1 outside the candidate ``items`` (raw ids); None for all."""
        if items is None:
            return None
        data = self.interactions_
        wanted = data.item_index(as_1d(np.atleast_1d(np.asarray(items)), "items"))
        excluded = np.ones((1, data.n_items), dtype=np.uint8)
        excluded[0, wanted] = 0
        return excluded

    # ------------------------------------------------------------ save/load
    def save(self, path):
        """Write the fitted model to ``path`` (``.npz``, no pickle); read it with ``fastrec.load``."""
        state = self._state()
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez(f, **state)

    def _state(self):
        """Everything ``save`` writes, as a dict of arrays (``_from_state`` reads it back)."""
        self._check_fitted()
        data = self.interactions_
        state = {
            "format/version": np.array(FORMAT_VERSION),
            "format/class": np.array(type(self).__name__),
            "format/params": np.array(json.dumps(self._savable_params(), default=_json_default)),
            "train/indptr": data.csr.indptr,
            "train/indices": data.csr.indices,
            "train/data": data.csr.data,
            "train/user_ids": _savable_ids(data.user_ids, "user"),
            "train/item_ids": _savable_ids(data.item_ids, "item"),
            "train/implicit": np.array(data.is_implicit),
            "train/rating_scale": np.array(data.rating_scale if data.rating_scale else (np.nan, np.nan)),
        }
        for name in self._learned:
            value = getattr(self, name)
            if sp.issparse(value):
                value = sp.csr_array(value)
                for part in ("data", "indices", "indptr"):
                    state[f"learned-csr/{name}/{part}"] = getattr(value, part)
                state[f"learned-csr/{name}/shape"] = np.array(value.shape)
            else:
                state[f"learned/{name}"] = np.asarray(value)
        return state

    def _savable_params(self):
        params = self.get_params()
        params.update(dict.fromkeys(self._unsaved_params))
        # JSON has no tuples: tag them so they come back as tuples
        return {k: {"__tuple__": list(v)} if isinstance(v, tuple) else v for k, v in params.items()}

    def _restore(self, arrays):
        for name in self._learned:
            if f"learned-csr/{name}/shape" in arrays:
                parts = [arrays[f"learned-csr/{name}/{part}"] for part in ("data", "indices", "indptr")]
                value = sp.csr_array(tuple(parts), shape=tuple(arrays[f"learned-csr/{name}/shape"]))
            else:
                value = arrays[f"learned/{name}"]
            setattr(self, name, value)


def load(path):
    """Read a model written by ``Recommender.save``."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {key: f[key] for key in f.files}
    return _from_state(arrays, path)


def _from_state(arrays, path="the state"):
    """The model a ``Recommender._state()`` dict describes."""
    try:
        name = str(arrays["format/class"])
        params = json.loads(str(arrays["format/params"]), object_hook=_json_object)
    except KeyError:
        raise ValueError(f"{path} is not a fastrec model file") from None
    if name not in _MODELS:
        raise ValueError(f"{path} holds an unknown model class {name!r}")
    model = _MODELS[name](**params)
    user_ids, item_ids = arrays["train/user_ids"], arrays["train/item_ids"]
    csr = sp.csr_array((arrays["train/data"], arrays["train/indices"], arrays["train/indptr"]),
                       shape=(user_ids.size, item_ids.size))
    csr.has_sorted_indices = True
    scale = tuple(float(x) for x in arrays["train/rating_scale"])
    model.interactions_ = Interactions(
        csr, IdMap(user_ids, "user"), IdMap(item_ids, "item"),
        implicit=bool(arrays["train/implicit"]), rating_scale=None if np.isnan(scale[0]) else scale,
    )
    model._restore(arrays)
    return model


# ------------------------------------------------------------------ helpers
def _rows_pattern(csr, rows):
    """CSR ``(indptr, indices)`` of the chosen rows of a sparse matrix; row -1 is empty."""
    return _pattern_rows((csr.indptr, csr.indices), rows)


def _pattern_rows(pattern, rows):
    """The chosen rows of a CSR ``(indptr, indices)``, int64; row -1 is empty, None stays None."""
    if pattern is None:
        return None
    indptr, indices = pattern
    valid = rows >= 0
    safe = np.where(valid, rows, 0)
    starts = indptr[safe]
    lengths = np.where(valid, indptr[safe + 1] - starts, 0)
    chosen = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=chosen[1:])
    gather = np.repeat(starts - chosen[:-1], lengths) + np.arange(chosen[-1])
    return chosen, indices[gather].astype(np.int64, copy=False)


def _raw_ids(ids, codes):
    """Raw ids for dense codes, with a padding value where the code is -1."""
    raw = ids[np.maximum(codes, 0)] if ids.size else np.empty(codes.shape, dtype=ids.dtype)
    pad = codes < 0
    if pad.any():
        if ids.dtype.kind in "iu":
            if ids.dtype.kind == "u":
                raw = raw.astype(np.int64)
            raw[pad] = -1
        elif ids.dtype.kind in "US":
            raw[pad] = ""
        else:
            raw = raw.astype(object)
            raw[pad] = None
    return raw


def _savable_ids(ids, what):
    if ids.dtype.kind != "O":
        return ids
    if all(isinstance(v, str) for v in ids.tolist()):
        return ids.astype(str)
    raise TypeError(f"{what} ids of Python object type cannot be saved without pickle; use ints or strings")


def _json_default(value):
    if isinstance(value, type) and issubclass(value, np.generic) or isinstance(value, np.dtype):
        return {"__dtype__": np.dtype(value).name}
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"hyper-parameter value {value!r} cannot be saved")


def _json_object(obj):
    """Undo ``_json_default`` and the tuple tags: dtype parameters come back as NumPy
    scalar types, tuples as tuples."""
    if set(obj) == {"__dtype__"}:
        return np.dtype(obj["__dtype__"]).type
    if set(obj) == {"__tuple__"}:
        return tuple(obj["__tuple__"])
    return obj


def _same_value(a, b):
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b
