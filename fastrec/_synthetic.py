"""The synthetic dataset: power-law popularity, genre structure and a low-rank taste model.

It is fastrec's embedded default wherever a dataset is needed (the CLI, tests,
benchmarks); ``fastrec.datasets.synthetic`` is its public name.
"""
import numpy as np
import scipy.sparse as sp

from fastrec._checks import check_choice, check_positive_int, check_random_state
from fastrec.data import Interactions

__all__ = ["synthetic"]

_KINDS = ("explicit", "implicit")
_EPOCH = 1_420_070_400            # 2015-01-01 00:00:00 UTC
_HORIZON = 4 * 365 * 86_400       # timestamps span four years
_SCALE = np.int64(1) << 32        # fixed-point resolution of the sampling tables


def synthetic(n_users=1000, n_items=500, n_ratings=50_000, *, kind="explicit", n_genres=18,
              n_factors=8, seed=0):
    """Generate realistic interactions: power-law popularity, genres and a taste model.

    Users pick a genre from a concentrated personal preference, then an item of that
    genre by popularity, so co-occurrences carry collaborative signal.  Explicit
    ratings come from ``3.5 + user bias + item bias + <user factors, item factors> +
    genre affinity + noise``, rounded and clipped to 1..5.

    Parameters
    ----------
    n_users, n_items, n_ratings : int
        Shape and exact number of distinct (user, item) pairs; every user gets at
        least one when ``n_ratings >= n_users``.
    kind : {"explicit", "implicit"}
        "implicit" gives the same pairs and timestamps without ratings.
    n_genres : int
        Genres (item features ``"genre_00"``, ...); each item has one primary genre
        and up to two more.
    n_factors : int
        Rank of the latent taste model.
    seed : int, SeedSequence or Generator
        The same seed gives the same data.

    Returns
    -------
    Interactions
        Ids 0..n_users-1 and 0..n_items-1 (all present), int64 timestamps (seconds,
        2015-2018), binary genre ``item_features`` and titles ``"Item 17"``.
    """
    n_users = check_positive_int(n_users, "n_users")
    n_items = check_positive_int(n_items, "n_items")
    n_ratings = check_positive_int(n_ratings, "n_ratings")
    n_genres = check_positive_int(n_genres, "n_genres")
    n_factors = check_positive_int(n_factors, "n_factors")
    check_choice(kind, "kind", _KINDS)
    if n_ratings > n_users * n_items:
        raise ValueError(
            f"n_ratings={n_ratings} is more than the {n_users} x {n_items} = "
            f"{n_users * n_items} distinct (user, item) pairs"
        )
    rng = check_random_state(seed)
    item_rng, user_rng, pair_rng, rating_rng, time_rng = rng.spawn(5)

    primary, features, popularity = _synthetic_items(item_rng, n_items, n_genres)
    activity = _power_law(user_rng, n_users, exponent=1.0, offset=0.05 * n_users)
    # nobody is expected to rate more than half the catalogue (the deduplication below
    # caps users at n_items anyway; this keeps it from wasting draws on saturated users)
    activity = _cap_weights(activity, 0.5 * n_items / n_ratings)
    # genre demand in proportion to the popularity of the genre's items, so that items
    # are drawn, overall, in proportion to their popularity
    demand = np.bincount(primary, weights=popularity, minlength=n_genres)
    preference = _genre_preferences(user_rng, n_users, demand / demand.sum())

    keys = _sample_pairs(pair_rng, n_ratings, activity, preference, primary, popularity, n_items)
    users, items = np.divmod(keys, np.int64(n_items))
    ratings = None
    if kind == "explicit":
        ratings = _taste_ratings(rating_rng, users, items, preference, features, popularity,
                                 n_factors)
    times = _activity_times(time_rng, users, n_users)
    data = Interactions.from_arrays(
        users, items, ratings, times, user_ids=np.arange(n_users), item_ids=np.arange(n_items),
        rating_scale=None if ratings is None else (1.0, 5.0),
    )
    digits = max(2, len(str(n_genres - 1)))
    names = [f"genre_{g:0{digits}d}" for g in range(n_genres)]
    return (data.with_item_features(features, feature_names=names)
                .with_item_titles([f"Item {i}" for i in range(n_items)]))


def _power_law(rng, n, exponent, offset):
    """Zipf-Mandelbrot weights ``(rank + offset) ** -exponent`` over randomly ordered ranks."""
    ranks = rng.permutation(n) + 1.0
    weights = (ranks + offset) ** -exponent
    return weights / weights.sum()


def _cap_weights(weights, cap):
    """Clip weights at ``cap`` and hand the excess to the others (water-filling)."""
    if cap * weights.size <= 1.0:
        return np.full(weights.size, 1.0 / weights.size)
    weights = weights.copy()
    for _ in range(100):
        over = weights > cap
        if not over.any():
            break
        excess = (weights[over] - cap).sum()
        weights[over] = cap
        free = weights < cap
        weights[free] += excess * weights[free] / weights[free].sum()
    return weights / weights.sum()


def _synthetic_items(rng, n_items, n_genres):
    """Primary genres (skewed sizes, none empty when possible), genre matrix, popularity."""
    share = _power_law(rng, n_genres, exponent=1.0, offset=1.0)
    primary = rng.choice(n_genres, size=n_items, p=share)
    if n_items >= n_genres:
        primary[rng.permutation(n_items)[:n_genres]] = np.arange(n_genres)
    n_extra = rng.choice(3, size=n_items, p=[0.5, 0.35, 0.15])
    extra = rng.choice(n_genres, size=(n_items, 2), p=share)
    rows = np.concatenate([np.arange(n_items), np.flatnonzero(n_extra >= 1),
                           np.flatnonzero(n_extra >= 2)])
    cols = np.concatenate([primary, extra[n_extra >= 1, 0], extra[n_extra >= 2, 1]])
    cells = np.unique(rows * np.int64(n_genres) + cols)   # an extra may repeat a genre
    rows, cols = np.divmod(cells, np.int64(n_genres))
    features = sp.csr_array((np.ones(cells.size), (rows, cols)), shape=(n_items, n_genres))
    popularity = _power_law(rng, n_items, exponent=1.3, offset=0.01 * n_items)
    return primary, features, popularity


def _genre_preferences(rng, n_users, genre_share):
    """Each user's distribution over genres: a sparse Dirichlet draw plus some exploration.

    The Dirichlet has mean ``genre_share`` and total concentration 1, so most users
    favour one or two genres; 10% of their choices follow ``genre_share`` instead.
    """
    alpha = genre_share.copy()                       # total concentration 1
    present = alpha > 0
    draws = np.zeros((n_users, genre_share.size))
    draws[:, present] = rng.standard_gamma(alpha[present], size=(n_users, int(present.sum())))
    totals = draws.sum(axis=1, keepdims=True)
    lost = totals[:, 0] == 0                         # every gamma draw underflowed
    draws[lost] = genre_share
    totals[lost] = 1.0
    return 0.9 * (draws / totals) + 0.1 * genre_share


def _fixed_point_cdf(weights, group, n_groups):
    """Cumulative weights within each group, scaled to ``group * 2**32 + [0, 2**32]``.

    ``weights`` must be ordered by ``group``.  Searching ``g * 2**32 + r`` for a uniform
    integer ``r < 2**32`` (``side="right"``) draws an entry of group ``g`` in proportion
    to its weight; integer arithmetic keeps zero weights unreachable.
    """
    totals = np.bincount(group, weights=weights, minlength=n_groups)
    sizes = np.bincount(group, minlength=n_groups)
    within = np.cumsum(weights) - np.repeat(np.cumsum(totals) - totals, sizes)
    scaled = np.floor(within / totals[group] * _SCALE).astype(np.int64)
    scaled = np.minimum(scaled, _SCALE)
    last = np.append(np.flatnonzero(group[1:] != group[:-1]), group.size - 1)
    scaled[last] = _SCALE                            # every group ends exactly on its boundary
    return group.astype(np.int64) * _SCALE + scaled


def _sample_pairs(rng, n_ratings, activity, preference, primary, popularity, n_items):
    """Distinct (user, item) keys ``user * n_items + item``, sorted, exactly ``n_ratings``."""
    n_users, n_genres = preference.shape
    # genres that have items, renumbered 0..k-1; items ordered by that number
    used = np.flatnonzero(np.bincount(primary, minlength=n_genres))
    rank = np.full(n_genres, -1)
    rank[used] = np.arange(used.size)
    item_genre = rank[primary]
    by_genre = np.argsort(item_genre, kind="stable")
    item_cdf = _fixed_point_cdf(popularity[by_genre], item_genre[by_genre], used.size)
    pref = preference[:, used] / preference[:, used].sum(axis=1, keepdims=True)
    cell_user = np.repeat(np.arange(n_users, dtype=np.int64), used.size)
    cell_genre = np.tile(np.arange(used.size, dtype=np.int64), n_users)

    def draw(counts):
        """``counts[u]`` keys of user u: genres by preference, then items by popularity."""
        cells = rng.multinomial(counts, pref).ravel()
        query = rng.integers(0, _SCALE, size=int(cells.sum()), dtype=np.int64)
        query += np.repeat(cell_genre * _SCALE, cells)
        item = by_genre[np.searchsorted(item_cdf, query, side="right")]
        item += np.repeat(cell_user * n_items, cells)
        return item

    everyone = n_ratings >= n_users
    first = int(n_ratings * 1.15) + 16
    counts = rng.multinomial(first, activity)
    if everyone:
        counts += 1                                  # one draw per user: nobody is left out
    keys = _sorted_unique(draw(counts))
    drawn, gained = counts.sum(), keys.size
    for _ in range(8):
        # draw the deficit again, scaled by the last round's duplicate rate; once draws
        # are mostly duplicates (a dense request), stop and fill uniformly instead
        ratio = drawn / max(gained, 1)
        if keys.size >= n_ratings or ratio > 8:
            break
        extra = int((n_ratings - keys.size) * max(ratio, 1.05) * 1.1) + 16
        before = keys.size
        keys = _merge_unique(keys, draw(rng.multinomial(extra, activity)))
        drawn, gained = extra, keys.size - before
    if keys.size < n_ratings:
        keys = _fill_uniform(rng, keys, n_ratings, n_users * n_items)

    # trim to exactly n_ratings, keeping one random pair of every user
    excess = keys.size - n_ratings
    if excess:
        if everyone:
            user_counts = np.bincount(keys // n_items, minlength=n_users)
            starts = np.cumsum(user_counts) - user_counts
            protected = starts + (rng.random(n_users) * user_counts).astype(np.int64)
            spare = np.ones(keys.size, dtype=bool)
            spare[protected] = False
            spare = np.flatnonzero(spare)
        else:
            spare = np.arange(keys.size)
        kept = np.ones(keys.size, dtype=bool)
        kept[spare[rng.choice(spare.size, size=excess, replace=False)]] = False
        keys = keys[kept]
    return keys


def _sorted_unique(keys, presorted=False):
    """The distinct values of an int64 array, sorted (``np.unique`` without hashing)."""
    if not presorted:
        keys = np.sort(keys)
    fresh = np.empty(keys.size, dtype=bool)
    fresh[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=fresh[1:])
    return keys[fresh]


def _merge_unique(keys, new):
    """Sorted union of sorted unique ``keys`` and any ``new`` keys."""
    merged = np.concatenate([keys, np.sort(new)])
    merged.sort(kind="stable")                       # two sorted runs: a linear merge
    return _sorted_unique(merged, presorted=True)


def _fill_uniform(rng, keys, n_ratings, n_pairs):
    """Add uniformly drawn unused pairs until there are ``n_ratings`` keys."""
    if n_pairs <= 1 << 26:
        free = np.ones(n_pairs, dtype=bool)
        free[keys] = False
        free = np.flatnonzero(free)
        add = rng.choice(free, size=n_ratings - keys.size, replace=False)
        return _merge_unique(keys, add)
    for _ in range(1000):
        if keys.size >= n_ratings:
            return keys
        missing = n_ratings - keys.size
        keys = _merge_unique(keys, rng.integers(0, n_pairs, size=2 * missing + 16))
    raise RuntimeError("could not draw enough distinct (user, item) pairs")  # pragma: no cover


def _taste_ratings(rng, users, items, preference, features, popularity, n_factors):
    """1..5 integer ratings from biases, latent factors, genre affinity and noise."""
    n_users, n_genres = preference.shape
    n_items = popularity.size
    log_pop = np.log(popularity)
    user_bias = rng.normal(0.0, 0.35, n_users)
    item_bias = rng.normal(0.0, 0.4, n_items) + 0.2 * (log_pop - log_pop.mean()) / (log_pop.std() or 1.0)
    scale = (0.45 ** 2 / n_factors) ** 0.25          # the dot product has sd 0.45
    user_factors = rng.normal(0.0, scale, (n_users, n_factors)).astype(np.float32)
    item_factors = rng.normal(0.0, scale, (n_items, n_factors)).astype(np.float32)
    # genre affinity: the user's mean preference over the item's (at most 3) genres,
    # read from a preference table with an extra all-zero column for padding
    per_item = np.diff(features.indptr)
    slots = np.full((n_items, int(per_item.max())), n_genres, dtype=np.int64)
    slots[np.repeat(np.arange(n_items), per_item),
          np.arange(features.nnz) - np.repeat(features.indptr[:-1], per_item)] = features.indices
    table = np.zeros((n_users, n_genres + 1))
    table[:, :n_genres] = preference
    table = table.ravel()
    score = user_bias[users] + item_bias[items]
    step = 1 << 20
    for lo in range(0, users.size, step):
        u, i = users[lo:lo + step], items[lo:lo + step]
        part = score[lo:lo + step]
        part += np.einsum("ij,ij->i", user_factors[u], item_factors[i])
        rows = u * (n_genres + 1)
        affinity = sum(table[rows + slots[i, k]] for k in range(slots.shape[1]))
        part += 1.5 * affinity / per_item[i]
    score += rng.normal(0.0, 0.75, score.size)
    score += 3.5 - score.mean()
    return np.clip(np.rint(score), 1.0, 5.0)


def _activity_times(rng, users, n_users):
    """Seconds since the epoch; each user is active over a period of days to years."""
    length = np.clip(rng.lognormal(np.log(90 * 86_400), 1.2, n_users), 86_400, _HORIZON)
    start = _EPOCH + rng.random(n_users) * (_HORIZON - length)
    return (start[users] + rng.random(users.size) * length[users]).astype(np.int64)

