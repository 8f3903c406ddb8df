"""The top-k kernel against its NumPy reference, edge cases and validation."""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastrec
from fastrec import reference
from fastrec.testing import assert_topk_equal, random_mask, random_scores


def both_backends(scores, k, **kwargs):
    got = fastrec.top_k(scores, k, backend="compiled", **kwargs)
    expected = fastrec.top_k(scores, k, backend="numpy", **kwargs)
    return got, expected


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("k", [1, 5, 30])
def test_top_k_matches_reference(dtype, num_threads, ties, k, seed):
    scores = random_scores(40, 25, dtype=dtype, ties=ties, seed=seed)
    got, expected = both_backends(scores, k, num_threads=num_threads)
    assert got[1].dtype == dtype and got[0].dtype == np.int64
    assert_topk_equal(got, expected, dtype=np.float64)  # same inputs: exact equality


def test_top_k_hand_computed_ties_and_padding():
    scores = np.array([[1.0, 3.0, 3.0, np.nan, -np.inf, 2.0],
                       [np.nan, np.nan, np.nan, np.nan, np.nan, np.nan]])
    ids, top = fastrec.top_k(scores, 4)
    assert ids.tolist() == [[1, 2, 5, 0], [-1, -1, -1, -1]]
    assert top.tolist() == [[3.0, 3.0, 2.0, 1.0], [-np.inf] * 4]


@pytest.mark.parametrize("mask_kind", ["dense_row", "dense_full", "sparse"])
def test_top_k_masks_match_reference(dtype, index_dtype, num_threads, mask_kind, seed):
    scores = random_scores(30, 50, dtype=dtype, ties=True, seed=seed)
    rng = np.random.default_rng(seed)
    if mask_kind == "dense_row":
        exclude = rng.random(50) < 0.3
    elif mask_kind == "dense_full":
        exclude = rng.random((30, 50)) < 0.3
    else:
        exclude = random_mask(30, 50, density=0.3, index_dtype=index_dtype, seed=seed)
    got, expected = both_backends(scores, 7, exclude=exclude, num_threads=num_threads)
    assert_topk_equal(got, expected)
    excluded = exclude.toarray() if sp.issparse(exclude) else np.broadcast_to(exclude, scores.shape)
    rows = np.repeat(np.arange(30), 7)
    valid = got[0].ravel() >= 0
    assert not excluded[rows[valid], got[0].ravel()[valid]].any()


def test_top_k_sparse_mask_formats_and_unsorted_indices(seed):
    scores = random_scores(20, 30, seed=seed)
    mask = random_mask(20, 30, density=0.4, seed=seed)
    expected = fastrec.top_k(scores, 5, exclude=mask)
    shuffled = mask.copy()
    for row in range(20):  # reverse each row's indices: same pattern, unsorted
        lo, hi = shuffled.indptr[row], shuffled.indptr[row + 1]
        shuffled.indices[lo:hi] = shuffled.indices[lo:hi][::-1].copy()
    shuffled.has_sorted_indices = False
    for variant in (mask.tocoo(), mask.tocsc(), shuffled, sp.csr_matrix(mask)):
        assert_topk_equal(fastrec.top_k(scores, 5, exclude=variant), expected)
    assert not shuffled.has_sorted_indices  # the caller's matrix was not sorted in place


def test_top_k_edge_cases():
    empty_rows = np.zeros((0, 5))
    ids, top = fastrec.top_k(empty_rows, 3)
    assert ids.shape == (0, 3)
    ids, top = fastrec.top_k(np.zeros((3, 0)), 2)
    assert (ids == -1).all() and np.isneginf(top).all()
    ids, top = fastrec.top_k(np.ones((2, 4)), 0)
    assert ids.shape == (2, 0)
    ids, _ = fastrec.top_k(np.arange(5.0)[None, :], 10)  # k larger than the row
    assert ids.tolist() == [[4, 3, 2, 1, 0, -1, -1, -1, -1, -1]]
    ids, _ = fastrec.top_k(np.ones((1, 3)), 3, exclude=np.ones(3, dtype=bool))
    assert ids.tolist() == [[-1, -1, -1]]
    ids, _ = fastrec.top_k(np.array([[1, 5, 3]]), 1)  # integer scores
    assert ids.tolist() == [[1]]


def test_top_k_does_not_modify_inputs_and_accepts_read_only():
    scores = random_scores(10, 12)
    scores.flags.writeable = False
    mask = random_mask(10, 12, density=0.2)
    before = (scores.copy(), mask.indices.copy())
    fastrec.top_k(scores, 3, exclude=mask)
    np.testing.assert_array_equal(scores, before[0])
    np.testing.assert_array_equal(mask.indices, before[1])


def test_top_k_non_contiguous_input():
    scores = random_scores(20, 40)
    view = scores[::2, ::3]
    assert_topk_equal(fastrec.top_k(view, 4), fastrec.top_k(np.ascontiguousarray(view), 4))


def test_top_k_num_threads_agnostic():
    scores = random_scores(500, 300, ties=True)
    one = fastrec.top_k(scores, 10, num_threads=1)
    two = fastrec.top_k(scores, 10, num_threads=2)
    np.testing.assert_array_equal(one[0], two[0])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: fastrec.top_k(np.ones(3), 1), ValueError, "2-D"),
        (lambda: fastrec.top_k(np.ones((2, 2)), -1), ValueError, "k must be >= 0"),
        (lambda: fastrec.top_k(np.ones((2, 2)), 1.5), TypeError, "k must be an int"),
        (lambda: fastrec.top_k(np.array([["a"]]), 1), TypeError, "numeric"),
        (lambda: fastrec.top_k(np.ones((2, 2)), 1, exclude=np.ones(3, bool)), ValueError, "shape"),
        (lambda: fastrec.top_k(np.ones((2, 2)), 1, exclude=np.ones((2, 2))), TypeError, "boolean"),
        (lambda: fastrec.top_k(np.ones((2, 2)), 1, exclude=sp.eye(3, format="csr")), ValueError, "shape"),
        (lambda: fastrec.top_k(np.ones((2, 2)), 1, backend="gpu"), ValueError, "backend"),
        (lambda: fastrec.top_k(np.ones((2, 2)), 1, num_threads=1.5), TypeError, "num_threads"),
    ],
)
def test_top_k_rejects_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@given(
    scores=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=12),
                      elements=st.sampled_from([0.0, 1.0, -1.5, 2.0, np.nan, -np.inf, np.inf])),
    k=st.integers(0, 14),
)
def test_top_k_property_matches_reference(scores, k):
    got = fastrec.top_k(scores, k)
    expected = reference.topk.dense_topk(scores, k)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
