"""Raw ids (ints, strings, any sortable hashable) <-> dense indices 0..n-1."""
import numpy as np

from fastrec._checks import describe_some

UNKNOWN = -1


def _normalise_ids(raw, what):
    """A 1-D array of raw ids of one kind: integers, strings or comparable objects."""
    arr = np.asarray(raw)
    if arr.ndim != 1:
        raise ValueError(f"{what} ids must be one-dimensional, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind == "b":
        raise TypeError(f"{what} ids are booleans; pass integers or strings")
    if kind == "f" or kind == "c":
        raise TypeError(
            f"{what} ids are floating point ({arr.dtype}); ids must be integers or strings "
            "(convert with .astype(int) or .astype(str); NaN ids usually mean missing values)"
        )
    if kind in "iuUSM":
        return arr
    if kind == "O":
        kinds = {type(v) for v in arr[: min(arr.size, 1000)].tolist()}
        if arr.size:
            # checking every element would be slow; the sort below catches the rest
            if any(v is None or (isinstance(v, float) and v != v) for v in arr.tolist()):
                raise ValueError(f"{what} ids contain missing values (None or NaN)")
        if len(kinds) > 1 and not all(issubclass(k, (int, np.integer)) for k in kinds):
            names = sorted(k.__name__ for k in kinds)
            raise TypeError(f"{what} ids mix types ({', '.join(names)}); convert them to one type")
        if kinds and all(issubclass(k, (int, np.integer)) for k in kinds):
            try:
                return arr.astype(np.int64)
            except (OverflowError, TypeError, ValueError):
                pass
        return arr
    raise TypeError(f"{what} ids have unsupported dtype {arr.dtype}")


class IdMap:
    """A sorted array of unique raw ids; index ``j`` stands for ``ids[j]``.

    Lookups are vectorised (binary search), so they cost O(m log n) for m queries.
    """

    __slots__ = ("ids", "what", "_table")

    def __init__(self, unique_sorted_ids, what):
        ids = np.asarray(unique_sorted_ids)
        ids.flags.writeable = False
        self.ids = ids
        self.what = what
        self._table = None

    def _dense_table(self):
        """``(low, table)`` with ``table[raw - low]`` = index or -1, for dense integer ids."""
        if self._table is None:
            table = False
            if self.ids.dtype.kind in "iu" and self.ids.size:
                low = int(self.ids[0])
                span = int(self.ids[-1]) - low + 1
                if span <= 4 * self.ids.size + 1_000_000:
                    lookup = np.full(span, UNKNOWN, dtype=np.int64)
                    lookup[(self.ids - self.ids[0]).astype(np.intp)] = np.arange(self.ids.size)
                    table = (low, lookup)
            self._table = table
        return self._table

    @classmethod
    def from_universe(cls, raw, what):
        """A map over the given ids, which must be unique."""
        ids = _normalise_ids(raw, what)
        unique = _sorted_unique(ids, what)
        if unique.size != ids.size:
            raise ValueError(f"the {what} ids given as the universe contain duplicates")
        return cls(unique, what)

    @classmethod
    def factorize(cls, raw, what, universe=None):
        """``(map, codes)`` for an array of raw ids; ``universe`` fixes the map's ids."""
        ids = _normalise_ids(raw, what)
        if universe is None:
            unique, codes = _sorted_unique(ids, what, return_inverse=True)
            return cls(unique, what), codes.astype(np.int64, copy=False)
        idmap = universe if isinstance(universe, IdMap) else cls.from_universe(universe, what)
        codes = idmap.index(ids, unknown="raise", context="not in the given id universe")
        return idmap, codes

    def __len__(self):
        return self.ids.size

    def index(self, raw, unknown="raise", context="unknown"):
        """Dense indices of raw ids (scalar in, scalar out).

        ``unknown="raise"`` raises ``KeyError`` naming a few missing ids;
        ``unknown="ignore"`` returns -1 for them.
        """
        scalar = np.ndim(raw) == 0
        query = np.atleast_1d(np.asarray(raw, dtype=self.ids.dtype if self.ids.dtype.kind == "O" else None))
        if query.ndim != 1:
            raise ValueError(f"{self.what} ids must be a scalar or one-dimensional, got shape {query.shape}")
        codes = np.full(query.size, UNKNOWN, dtype=np.int64)
        table = self._dense_table() if query.dtype.kind in "iu" else False
        if table and query.size:
            low, lookup = table
            offsets = query.astype(np.int64, copy=False) - low if query.dtype != np.uint64 else None
            if offsets is not None:
                inside = (offsets >= 0) & (offsets < lookup.size)
                codes[inside] = lookup[offsets[inside]]
            else:
                table = False
        if not table and self.ids.size and query.size:
            try:
                pos = np.searchsorted(self.ids, query)
            except TypeError:  # ids that cannot be compared with ours are simply unknown
                pos = np.zeros(query.size, dtype=np.intp)
                found = np.zeros(query.size, dtype=bool)
            else:
                pos = np.minimum(pos, self.ids.size - 1)
                with np.errstate(invalid="ignore"):
                    found = np.asarray(self.ids[pos] == query, dtype=bool)
                if found.shape != query.shape:  # comparison of incompatible kinds
                    found = np.zeros(query.size, dtype=bool)
            codes[found] = pos[found]
        if unknown == "raise" and (codes == UNKNOWN).any():
            missing = query[codes == UNKNOWN]
            raise KeyError(f"{missing.size} {self.what} id(s) {context}: {describe_some(missing)}")
        if unknown not in ("raise", "ignore"):
            raise ValueError(f"unknown must be 'raise' or 'ignore', got {unknown!r}")
        return int(codes[0]) if scalar else codes


def _sorted_unique(ids, what, return_inverse=False):
    if ids.dtype.kind in "iu" and ids.size:
        lo, hi = ids.min(), ids.max()
        span = int(hi) - int(lo) + 1
        if span <= 4 * ids.size + 1_000_000:
            # dense id range: a presence table is O(n + span), far quicker than sorting
            offsets = (ids - lo).astype(np.intp, copy=False)
            present = np.zeros(span, dtype=bool)
            present[offsets] = True
            unique = (np.flatnonzero(present) + lo).astype(ids.dtype)
            if not return_inverse:
                return unique
            code_of = np.cumsum(present, dtype=np.int64) - 1
            return unique, code_of[offsets]
    try:
        return np.unique(ids, return_inverse=return_inverse)
    except TypeError as exc:
        raise TypeError(f"{what} ids cannot be sorted ({exc}); use one type for all ids") from None
