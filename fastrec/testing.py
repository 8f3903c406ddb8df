"""Generators and assertion helpers for tests and benchmarks (numpy.testing only, no pytest)."""
import numpy as np
import scipy.sparse as sp

from fastrec.data import Interactions


def make_interactions(n_users=50, n_items=40, density=0.1, *, dtype=np.float64,
                      implicit=False, empty_users=0, empty_items=0, seed=0):
    """Uniformly random ratings 1..5 (or implicit ones) with optional empty rows/columns.

    The last ``empty_users`` users and ``empty_items`` items have no interactions but
    belong to the id universe, so edge cases reach the kernels.
    """
    rng = np.random.default_rng(seed)
    active_users, active_items = n_users - empty_users, n_items - empty_items
    mask = rng.random((active_users, active_items)) < density
    mask[rng.integers(0, active_users), rng.integers(0, active_items)] = True  # never empty
    users, items = np.nonzero(mask)
    ratings = None if implicit else rng.integers(1, 6, users.size).astype(dtype)
    return Interactions.from_arrays(
        users, items, ratings, timestamps=rng.permutation(users.size),
        user_ids=np.arange(n_users), item_ids=np.arange(n_items),
        dtype=dtype,
    )


def random_scores(n_rows, n_cols, *, dtype=np.float32, ties=False, seed=0):
    """A dense score block; ``ties=True`` draws from a handful of values."""
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(0, 4, (n_rows, n_cols)).astype(dtype)
    return rng.standard_normal((n_rows, n_cols)).astype(dtype)


def random_mask(n_rows, n_cols, density=0.1, *, index_dtype=np.int32, seed=0):
    """A random sparse CSR exclusion pattern with the given index dtype."""
    rng = np.random.default_rng(seed)
    mask = sp.random_array((n_rows, n_cols), density=density, format="csr", rng=rng)
    mask.indices = mask.indices.astype(index_dtype)
    mask.indptr = mask.indptr.astype(index_dtype)
    return mask


def rtol_for(dtype):
    """Relative tolerance for comparing a kernel with its float64 reference."""
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-10


def assert_topk_equal(got, expected, dtype=np.float64):
    """Top-k results agree: scores to the dtype's tolerance, ids exactly where scores differ.

    For float32, entries whose scores are within tolerance of a neighbour may swap ids
    (near ties); for exact ties the lower id must come first in both.
    """
    got_ids, got_scores = got
    exp_ids, exp_scores = expected
    np.testing.assert_array_equal(got_ids.shape, exp_ids.shape)
    np.testing.assert_allclose(got_scores, exp_scores, rtol=rtol_for(dtype), atol=0)
    if np.dtype(dtype) == np.float64:
        np.testing.assert_array_equal(got_ids, exp_ids)
    else:
        mismatch = got_ids != exp_ids
        np.testing.assert_allclose(got_scores[mismatch], exp_scores[mismatch], rtol=rtol_for(dtype))


def movielens_100k_dir(from_file):
    """Where the tests and benchmarks look for MovieLens 100k (it is never shipped).

    ``$FASTREC_DATA_DIR/ml-100k`` when that variable is set, else ``shared/data/ml-100k``
    beside the source tree that holds ``from_file`` (a file one level inside it).
    """
    import os
    from pathlib import Path

    root = os.environ.get("FASTREC_DATA_DIR")
    base = Path(root) if root else Path(from_file).resolve().parents[2] / "shared" / "data"
    return base / "ml-100k"


def surprise_trainset(data):
    """The same ratings as a scikit-surprise ``Trainset``: raw ids kept, fed in CSR order
    (user by user, items in id order), rating scale from ``data`` (default 1-5).

    Needs scikit-surprise and pandas (the ``peers`` and ``pandas`` extras).
    """
    import pandas as pd
    import surprise

    users, items, ratings, _ = data.to_arrays()
    frame = pd.DataFrame({"user": users, "item": items, "rating": ratings})
    reader = surprise.Reader(rating_scale=data.rating_scale or (1, 5))
    return surprise.Dataset.load_from_df(frame, reader).build_full_trainset()


def assert_surprise_similarities_equal(ours, theirs, data, trainset, user_based, atol=1e-5):
    """Our neighbour matrix (sparse, self left out) equals Surprise's ``sim`` (dense, 1 on
    the diagonal), whose rows follow ``trainset``'s inner ids, within ``atol``."""
    raw = ([trainset.to_raw_uid(x) for x in range(trainset.n_users)] if user_based
           else [trainset.to_raw_iid(x) for x in range(trainset.n_items)])
    index = (data.user_index if user_based else data.item_index)(np.array(raw))
    mine = sp.csr_array(ours).toarray()[np.ix_(index, index)]
    np.fill_diagonal(mine, 1.0)
    np.testing.assert_allclose(mine, theirs, atol=atol)
