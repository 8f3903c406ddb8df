"""``Interactions``: the one container every fastrec model reads.

It owns the id maps (raw user/item ids of any sortable kind <-> dense indices), a
users x items CSR matrix with sorted indices (and its CSC twin, built on demand),
optional timestamps aligned with the CSR entries, and optional item side data
(features such as genres, titles).  All input validation happens here, once.
Instances are immutable: their arrays are read-only and every "change" returns a
new object that shares the unchanged arrays.
"""
import numpy as np
import scipy.sparse as sp

from fastrec._checks import as_1d, check_choice, describe_some
from fastrec._idmap import IdMap

DUPLICATE_POLICIES = ("error", "sum", "last", "mean")


def _read_only(arr):
    arr.flags.writeable = False
    return arr


def _index_dtype(*sizes):
    return np.int32 if max(sizes, default=0) < np.iinfo(np.int32).max else np.int64


def _value_dtype(dtype, requested):
    """Value dtype policy: float32/64 kept, float16 -> float32, ints and bools -> float64."""
    if requested is not None:
        requested = np.dtype(requested)
        if requested not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {requested}")
        return requested
    if dtype == np.float32 or dtype == np.float16:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _check_values(values, name, n, requested_dtype):
    """Numeric, finite, of length n; returns a float array (never the caller's buffer)."""
    arr = as_1d(values, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.size != n:
        raise ValueError(f"{name} has {arr.size} entries but there are {n} interactions")
    out = arr.astype(_value_dtype(arr.dtype, requested_dtype), copy=True)
    bad = ~np.isfinite(out)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} contain {int(bad.sum())} NaN or infinite value(s); the first is at position {first}"
        )
    return out


def _check_timestamps(timestamps, n):
    arr = as_1d(timestamps, "timestamps")
    if arr.dtype.kind not in "iufM":
        raise TypeError(f"timestamps must be numeric or datetime64, got dtype {arr.dtype}")
    if arr.size != n:
        raise ValueError(f"timestamps has {arr.size} entries but there are {n} interactions")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("timestamps contain NaN or infinite values")
    if arr.dtype.kind == "M" and np.isnat(arr).any():
        raise ValueError("timestamps contain NaT (missing) values")
    return arr.copy()


class Interactions:
    """Users x items interactions with id maps; build it with a ``from_*`` constructor.

    Attributes
    ----------
    n_users, n_items, nnz : int
    csr : scipy.sparse.csr_array, (n_users, n_items)
        Ratings (explicit) or interaction weights (implicit), indices sorted per row.
    csc : scipy.sparse.csc_array
        The same matrix by columns (built on first use).
    user_ids, item_ids : ndarray
        Raw ids, sorted; row ``u`` of ``csr`` is user ``user_ids[u]``.
    ratings : ndarray or None
        ``csr.data`` for explicit feedback, None for implicit feedback.
    timestamps : ndarray or None
        One per stored entry, in CSR order.
    item_features : scipy.sparse.csr_array or None
        (n_items, n_features) side information (e.g. genres), ``feature_names`` beside it.
    item_titles : ndarray or None
        One display title per item.
    rating_scale : (float, float) or None
        Lowest and highest possible rating (explicit feedback only).
    """

    __slots__ = (
        "_csr", "_csc", "_users", "_items", "_timestamps", "_implicit",
        "_item_features", "_feature_names", "_item_titles", "_rating_scale", "_item_counts",
    )

    def __init__(self, csr, user_map, item_map, *, timestamps=None, implicit=False,
                 item_features=None, feature_names=None, item_titles=None, rating_scale=None):
        # Private: the from_* constructors validate; this only stores.
        for arr in (csr.data, csr.indices, csr.indptr):
            _read_only(arr)
        setattr_ = object.__setattr__
        setattr_(self, "_csr", csr)
        setattr_(self, "_csc", None)
        setattr_(self, "_item_counts", None)
        setattr_(self, "_users", user_map)
        setattr_(self, "_items", item_map)
        setattr_(self, "_timestamps", None if timestamps is None else _read_only(timestamps))
        setattr_(self, "_implicit", bool(implicit))
        setattr_(self, "_item_features", item_features)
        setattr_(self, "_feature_names", feature_names)
        setattr_(self, "_item_titles", item_titles)
        if rating_scale is None and not implicit and csr.nnz:
            rating_scale = (float(csr.data.min()), float(csr.data.max()))
        setattr_(self, "_rating_scale", None if implicit else rating_scale)

    def __setattr__(self, name, value):
        raise AttributeError("Interactions is immutable; use the with_* methods to derive a new one")

    def __reduce__(self):
        """Pickling (joblib, multiprocessing, deepcopy): rebuilt by the private constructor,
        as the immutable slots cannot be set back one by one."""
        return (_rebuild, (self._csr, self._users, self._items, dict(
            timestamps=self._timestamps, implicit=self._implicit, item_features=self._item_features,
            feature_names=self._feature_names, item_titles=self._item_titles, rating_scale=self._rating_scale)))

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_arrays(cls, users, items, ratings=None, timestamps=None, *, duplicates="error",
                    user_ids=None, item_ids=None, rating_scale=None, dtype=None):
        """Build from parallel arrays of raw user ids, item ids and optional ratings.

        Parameters
        ----------
        users, items : array-like, (n,)
            Raw ids: integers, strings, or other sortable hashables (one kind per array).
        ratings : array-like of numbers, (n,), optional
            Explicit ratings.  None means implicit feedback (every pair weighs 1).
        timestamps : array-like, (n,), optional
            Numbers or datetime64.
        duplicates : {"error", "sum", "last", "mean"}
            What to do with a (user, item) pair seen more than once.  "last" keeps the
            last one in input order; "sum" adds values (counts, for implicit data);
            merged pairs keep the latest timestamp.
        user_ids, item_ids : array-like, optional
            The complete id universe (may include ids without interactions, e.g. new
            items); every id in ``users``/``items`` must belong to it.
        rating_scale : (low, high), optional
            Defaults to the lowest and highest rating seen.
        dtype : float32 or float64, optional
            Value dtype; by default float32/float64 input is kept, integers become float64.

        Raises
        ------
        ValueError, TypeError, KeyError
            Empty input, length mismatch, NaN/inf ratings, non-numeric ratings,
            duplicate pairs (with ``duplicates="error"``), ids outside the universe.
        """
        check_choice(duplicates, "duplicates", DUPLICATE_POLICIES)
        users = as_1d(users, "users")
        items = as_1d(items, "items")
        if users.size != items.size:
            raise ValueError(f"users has {users.size} entries but items has {items.size}")
        if users.size == 0:
            raise ValueError("no interactions: users and items are empty")
        n = users.size
        implicit = ratings is None
        values = (np.ones(n, dtype=_value_dtype(np.float32, dtype)) if implicit
                  else _check_values(ratings, "ratings", n, dtype))
        ts = None if timestamps is None else _check_timestamps(timestamps, n)
        user_map, u = IdMap.factorize(users, "user", universe=user_ids)
        item_map, i = IdMap.factorize(items, "item", universe=item_ids)
        return cls._from_codes(u, i, values, ts, user_map, item_map, duplicates=duplicates,
                               implicit=implicit, rating_scale=rating_scale)

    @classmethod
    def from_pandas(cls, df, user_col="user", item_col="item", rating_col=None,
                    timestamp_col=None, **kwargs):
        """Build from a DataFrame's columns; other keywords go to :meth:`from_arrays`."""
        missing = [c for c in (user_col, item_col, rating_col, timestamp_col)
                   if c is not None and c not in df.columns]
        if missing:
            raise ValueError(
                f"column(s) {missing} not in the DataFrame; it has {list(df.columns)}"
            )

        def numeric(col):
            series = df[col]
            if series.dtype.kind not in "biufM" and hasattr(series.dtype, "numpy_dtype"):
                return series.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable ints/floats
            return series.to_numpy()

        return cls.from_arrays(
            df[user_col].to_numpy(), df[item_col].to_numpy(),
            None if rating_col is None else numeric(rating_col),
            None if timestamp_col is None else numeric(timestamp_col),
            **kwargs,
        )

    @classmethod
    def from_sparse(cls, matrix, user_ids=None, item_ids=None, *, implicit=False,
                    duplicates="error", timestamps=None, rating_scale=None, dtype=None):
        """Build from a scipy sparse users x items matrix (any format, never densified).

        Stored entries are the interactions; stored zeros are dropped.  ``user_ids`` /
        ``item_ids`` name the rows / columns (default 0..n-1).  ``implicit=True`` treats
        the values as interaction weights.  ``timestamps``, if given, is a sparse matrix
        of the same pattern.
        """
        check_choice(duplicates, "duplicates", DUPLICATE_POLICIES)
        if not sp.issparse(matrix):
            raise TypeError(
                f"from_sparse expects a scipy.sparse matrix, got {type(matrix).__name__}; "
                "use from_arrays for coordinate arrays"
            )
        if matrix.ndim != 2:
            raise ValueError(f"the sparse matrix must be 2-D, got {matrix.ndim}-D")
        if matrix.dtype.kind not in "biuf":
            raise TypeError(f"the sparse matrix must hold numbers, got dtype {matrix.dtype}")
        coo = _checked_coo(matrix, "matrix")
        n_rows, n_cols = matrix.shape
        user_map = IdMap(np.arange(n_rows), "user") if user_ids is None else IdMap.from_universe(user_ids, "user")
        item_map = IdMap(np.arange(n_cols), "item") if item_ids is None else IdMap.from_universe(item_ids, "item")
        if len(user_map) != n_rows or len(item_map) != n_cols:
            raise ValueError(
                f"the matrix has shape {matrix.shape} but {len(user_map)} user ids and "
                f"{len(item_map)} item ids were given"
            )
        values = _check_values(coo.data, "matrix values", coo.nnz, dtype)
        ts = None
        if timestamps is not None:
            ts_coo = _checked_coo(timestamps, "timestamps")
            if timestamps.shape != matrix.shape or not (
                np.array_equal(ts_coo.row, coo.row) and np.array_equal(ts_coo.col, coo.col)
            ):
                raise ValueError("timestamps must have the same shape and pattern as the matrix")
            ts = _check_timestamps(ts_coo.data, coo.nnz)
        stored = values != 0
        if not stored.all():
            values, ts = values[stored], (None if ts is None else ts[stored])
            row, col = coo.row[stored], coo.col[stored]
        else:
            row, col = coo.row, coo.col
        if values.size == 0:
            raise ValueError("no interactions: the sparse matrix has no non-zero entries")
        # user_ids / item_ids are sorted by IdMap; map matrix rows/cols onto them
        if user_ids is not None:
            row = user_map.index(np.asarray(user_ids)[row])
        if item_ids is not None:
            col = item_map.index(np.asarray(item_ids)[col])
        return cls._from_codes(row.astype(np.int64), col.astype(np.int64), values, ts, user_map,
                               item_map, duplicates=duplicates, implicit=implicit,
                               rating_scale=rating_scale)

    @classmethod
    def _from_codes(cls, u, i, values, ts, user_map, item_map, *, duplicates, implicit,
                    rating_scale):
        """Sort (user, item) codes into CSR order and settle duplicate pairs."""
        n_users, n_items = len(user_map), len(item_map)
        key = u * np.int64(n_items) + i
        if np.all(key[1:] >= key[:-1]):  # already in CSR order (generators, saved data)
            order = np.arange(key.size)
        else:
            order = np.argsort(key, kind="stable")
            key, values = key[order], values[order]
            ts = None if ts is None else ts[order]
        repeat = key[1:] == key[:-1]
        if repeat.any():
            if duplicates == "error":
                positions = np.flatnonzero(repeat) + 1
                second = positions[np.argmin(order[positions])]
                first = np.searchsorted(key, key[second])
                pair = describe_some([user_map.ids[key[second] // n_items],
                                      item_map.ids[key[second] % n_items]])
                raise ValueError(
                    f"{int(repeat.sum())} duplicate (user, item) pair(s); the first is "
                    f"({pair[1:-1]}) at positions {int(order[first])} and "
                    f"{int(order[second])}; pass duplicates='sum', 'last' or 'mean' to merge them"
                )
            starts = np.flatnonzero(np.concatenate(([True], ~repeat)))
            ends = np.append(starts[1:], key.size) - 1
            if duplicates == "last":
                values = values[ends]
            else:
                sums = np.add.reduceat(values.astype(np.float64), starts)
                if duplicates == "mean":
                    sums /= np.diff(np.append(starts, key.size))
                values = sums.astype(values.dtype)
            if ts is not None:
                ts = ts[ends] if duplicates == "last" else np.maximum.reduceat(ts, starts)
            key = key[starts]
        rows = key // n_items
        index_dtype = _index_dtype(n_items, key.size)
        indptr = np.zeros(n_users + 1, dtype=index_dtype)
        np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
        csr = sp.csr_array(((values, (key % n_items).astype(index_dtype), indptr)),
                           shape=(n_users, n_items))
        csr.has_sorted_indices = True
        csr.has_canonical_format = True
        return cls(csr, user_map, item_map, timestamps=ts, implicit=implicit,
                   rating_scale=rating_scale)

    # ---------------------------------------------------------------- accessors
    @property
    def n_users(self):
        return self._csr.shape[0]

    @property
    def n_items(self):
        return self._csr.shape[1]

    @property
    def shape(self):
        return self._csr.shape

    @property
    def nnz(self):
        return self._csr.nnz

    @property
    def csr(self):
        return self._csr

    @property
    def csc(self):
        if self._csc is None:
            csc = self._csr.tocsc()
            csc.sort_indices()
            for arr in (csc.data, csc.indices, csc.indptr):
                _read_only(arr)
            object.__setattr__(self, "_csc", csc)
        return self._csc

    @property
    def user_ids(self):
        return self._users.ids

    @property
    def item_ids(self):
        return self._items.ids

    @property
    def is_implicit(self):
        return self._implicit

    @property
    def values(self):
        """Stored values in CSR order: ratings, or interaction weights when implicit."""
        return self._csr.data

    @property
    def ratings(self):
        return None if self._implicit else self._csr.data

    @property
    def timestamps(self):
        return self._timestamps

    @property
    def item_features(self):
        return self._item_features

    @property
    def feature_names(self):
        return self._feature_names

    @property
    def item_titles(self):
        return self._item_titles

    @property
    def rating_scale(self):
        return self._rating_scale

    @property
    def user_counts(self):
        """Interactions per user (length n_users)."""
        return np.diff(self._csr.indptr)

    @property
    def item_counts(self):
        """Interactions per item (length n_items; computed once, read-only)."""
        if self._item_counts is None:
            counts = (np.diff(self._csc.indptr).astype(np.int64) if self._csc is not None
                      else np.bincount(self._csr.indices, minlength=self.n_items))
            object.__setattr__(self, "_item_counts", _read_only(counts))
        return self._item_counts

    @property
    def entry_users(self):
        """The user index of every stored entry, in CSR order."""
        return np.repeat(np.arange(self.n_users), self.user_counts)

    def user_index(self, raw, unknown="raise"):
        """Dense indices of raw user ids (vectorised; scalar in, scalar out).

        Unknown ids raise ``KeyError`` naming a few of them, or map to -1 with
        ``unknown="ignore"``.
        """
        return self._users.index(raw, unknown=unknown)

    def item_index(self, raw, unknown="raise"):
        """Dense indices of raw item ids; see :meth:`user_index`."""
        return self._items.index(raw, unknown=unknown)

    def same_ids(self, other):
        """True when ``other`` uses the same user and item id maps."""
        return _same_map(self._users, other._users) and _same_map(self._items, other._items)

    def to_arrays(self):
        """``(users, items, values, timestamps)`` as raw ids, in CSR order."""
        return (self.user_ids[self.entry_users], self.item_ids[self._csr.indices],
                self._csr.data, self._timestamps)

    # -------------------------------------------------------------- derivations
    def _replace(self, **changes):
        fields = dict(
            csr=self._csr, user_map=self._users, item_map=self._items,
            timestamps=self._timestamps, implicit=self._implicit,
            item_features=self._item_features, feature_names=self._feature_names,
            item_titles=self._item_titles, rating_scale=self._rating_scale,
        )
        fields.update(changes)
        return Interactions(fields.pop("csr"), fields.pop("user_map"), fields.pop("item_map"), **fields)

    def select(self, entries):
        """A new Interactions holding only the chosen stored entries, with the same id maps.

        ``entries`` is a boolean mask or an array of positions over the CSR entries.
        Splits are built with it, so train and test always share their ids.
        """
        entries = np.asarray(entries)
        if entries.dtype == bool:
            if entries.shape != (self.nnz,):
                raise ValueError(f"a boolean entry mask must have shape ({self.nnz},), got {entries.shape}")
            keep = entries
        else:
            if entries.dtype.kind not in "iu":
                raise TypeError(f"entries must be a boolean mask or integer positions, got {entries.dtype}")
            if entries.size and (entries.min() < 0 or entries.max() >= self.nnz):
                raise IndexError(f"entry positions must lie in [0, {self.nnz})")
            keep = np.zeros(self.nnz, dtype=bool)
            keep[entries] = True
        counts = np.bincount(self.entry_users[keep], minlength=self.n_users)
        indptr = np.zeros(self.n_users + 1, dtype=self._csr.indptr.dtype)
        np.cumsum(counts, out=indptr[1:])
        csr = sp.csr_array((self._csr.data[keep], self._csr.indices[keep], indptr), shape=self.shape)
        csr.has_sorted_indices = True
        csr.has_canonical_format = True
        ts = None if self._timestamps is None else self._timestamps[keep]
        return self._replace(csr=csr, timestamps=ts)

    def to_implicit(self, threshold=None):
        """Implicit feedback: every entry (or those rated >= ``threshold``) weighs 1."""
        data = self
        if threshold is not None:
            if self._implicit:
                raise ValueError("threshold needs explicit ratings; this data is already implicit")
            data = self.select(self._csr.data >= threshold)
        csr = sp.csr_array((np.ones(data.nnz, dtype=data._csr.dtype), data._csr.indices, data._csr.indptr),
                           shape=data.shape)
        csr.has_sorted_indices = True
        return data._replace(csr=csr, implicit=True, rating_scale=None)

    def with_item_features(self, features, feature_names=None):
        """Attach an (n_items, n_features) sparse matrix of item side information."""
        if features is None:
            return self._replace(item_features=None, feature_names=None)
        if not sp.issparse(features):
            features = sp.csr_array(np.asarray(features))
        if features.shape[0] != self.n_items:
            raise ValueError(f"item_features has {features.shape[0]} rows but there are {self.n_items} items")
        if features.dtype.kind not in "biuf":
            raise TypeError(f"item_features must be numeric, got dtype {features.dtype}")
        features = sp.csr_array(_checked_coo(features, "item_features").tocsr(), dtype=np.float64)
        features.sum_duplicates()
        for arr in (features.data, features.indices, features.indptr):
            _read_only(arr)
        if feature_names is not None:
            feature_names = _read_only(np.array(feature_names))
            if feature_names.shape != (features.shape[1],):
                raise ValueError(
                    f"feature_names has {feature_names.size} entries but item_features has "
                    f"{features.shape[1]} columns"
                )
        return self._replace(item_features=features, feature_names=feature_names)

    def with_item_titles(self, titles):
        """Attach one display title per item (aligned with ``item_ids``)."""
        if titles is not None:
            titles = _read_only(np.array(titles, dtype=object))
            if titles.shape != (self.n_items,):
                raise ValueError(f"got {titles.size} titles for {self.n_items} items")
        return self._replace(item_titles=titles)

    def __repr__(self):
        kind = "implicit" if self._implicit else f"ratings in {self._rating_scale}"
        extra = ", timestamps" if self._timestamps is not None else ""
        if self._item_features is not None:
            extra += f", {self._item_features.shape[1]} item features"
        return (f"<Interactions: {self.n_users} users x {self.n_items} items, "
                f"{self.nnz} entries ({kind}{extra})>")


def _same_map(a, b):
    return a is b or (a.ids.dtype == b.ids.dtype and np.array_equal(a.ids, b.ids))


def _checked_coo(matrix, name):
    """A COO copy of any sparse matrix after scipy's full format check."""
    try:
        if hasattr(matrix, "check_format"):
            matrix.check_format(full_check=True)
        coo = matrix.tocoo(copy=True)
    except (ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"{name} is a malformed sparse matrix: {exc}") from None
    n_rows, n_cols = matrix.shape
    if coo.nnz and (coo.row.min() < 0 or coo.col.min() < 0 or coo.row.max() >= n_rows
                    or coo.col.max() >= n_cols):
        raise ValueError(f"{name} is a malformed sparse matrix: indices out of range")
    return coo


def as_interactions(data, name="data"):
    """Accept an Interactions or a scipy sparse users x items matrix."""
    if isinstance(data, Interactions):
        return data
    if sp.issparse(data):
        return Interactions.from_sparse(data)
    raise TypeError(
        f"{name} must be a fastrec.Interactions or a scipy.sparse matrix, got {type(data).__name__}"
    )


def _rebuild(csr, user_map, item_map, fields):
    """``Interactions.__reduce__``'s constructor call."""
    return Interactions(csr, user_map, item_map, **fields)
