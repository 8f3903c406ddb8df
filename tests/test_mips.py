"""The pruned inner-product top-k (fastrec.mips, kernel _kernels.mips) against its twin."""
import numpy as np
import pytest
import scipy.sparse as sp

from fastrec.mips import InnerProductIndex
from fastrec.reference.mips import inner_product_topk


def low_rank(n_users, n_items, dims, dtype, seed):
    """Factor-model-like vectors: a few strong axes, popularity on the first."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / (1.0 + np.arange(dims))
    users = rng.normal(size=(n_users, dims)) * scale
    items = rng.normal(size=(n_items, dims)) * scale
    users[:, 0] = np.abs(users[:, 0]) + 1.0
    return users.astype(dtype), items.astype(dtype)


def random_pattern(rows, n, density, seed, dtype=np.int64):
    """A CSR (indptr, indices) with sorted indices, some rows empty."""
    matrix = sp.random(rows, n, density=density, format="csr", random_state=seed)
    matrix.sort_indices()
    return matrix.indptr.astype(dtype), matrix.indices.astype(dtype)


def assert_same_topk(got, want, users, items, bonus_dense=None):
    """Ids equal; where float rounding could order near-equal scores differently, each
    returned item must carry its own score and the row's scores must equal the reference's."""
    ids, scores = got
    ref_ids, ref_scores = want
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, atol=1e-6)
    full = users.astype(np.float64) @ items.astype(np.float64).T
    if bonus_dense is not None:
        full += bonus_dense
    valid = ids >= 0
    np.testing.assert_array_equal(valid, ref_ids >= 0)
    rows = np.nonzero(valid)[0]
    np.testing.assert_allclose(scores[valid], full[rows, ids[valid]], rtol=1e-6, atol=1e-6)
    if users.dtype == np.float64:
        np.testing.assert_array_equal(ids, ref_ids)
    else:
        assert (ids == ref_ids).mean() > 0.99


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_brute_force(dtype, seed):
    users, items = low_rank(60, 500, 24, dtype, seed)
    index = InnerProductIndex(items)
    ids, scores, n_exact = index.topk(users, 10)
    assert_same_topk((ids, scores), inner_product_topk(users, items, 10), users, items)
    assert n_exact < users.shape[0] * items.shape[0]  # the bounds pruned something


@pytest.mark.parametrize("head_dims", [0, 1, 7, 24])
def test_any_head_width_is_exact(head_dims):
    users, items = low_rank(30, 300, 24, np.float64, 3)
    index = InnerProductIndex(items, head_dims=head_dims)
    ids, scores, n_exact = index.topk(users, 7)
    assert_same_topk((ids, scores), inner_product_topk(users, items, 7), users, items)
    if head_dims == 24:  # exact bounds: hardly more than k + warm-up items per row
        assert n_exact < users.shape[0] * 60


def test_isotropic_data_still_exact():
    """No dominant axis: the bounds prune little, the answer is still exact."""
    rng = np.random.default_rng(4)
    users, items = rng.normal(size=(40, 32)), rng.normal(size=(400, 32))
    got = InnerProductIndex(items).topk(users, 12)[:2]
    assert_same_topk(got, inner_product_topk(users, items, 12), users, items)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exclusions(dtype):
    users, items = low_rank(50, 400, 20, dtype, 5)
    seen = random_pattern(50, 400, 0.1, 6)
    shared = (np.random.default_rng(7).random((1, 400)) < 0.2).astype(np.uint8)
    per_row = (np.random.default_rng(8).random((50, 400)) < 0.2).astype(np.uint8)
    index = InnerProductIndex(items)
    for mask in (shared, per_row):
        got = index.topk(users, 15, dense_mask=mask, seen=seen)[:2]
        want = inner_product_topk(users, items, 15, dense_mask=mask, seen=seen)
        assert_same_topk(got, want, users, items)
        excluded = sp.csr_array((np.ones(seen[0][-1]), seen[1], seen[0]), shape=(50, 400)).toarray() > 0
        excluded |= np.broadcast_to(mask > 0, excluded.shape)
        rows, cols = np.nonzero(got[0] >= 0)
        assert not excluded[rows, got[0][rows, cols]].any()


def test_warm_items_respect_exclusions():
    """The first items scored (best for the prior) are excluded like any other."""
    users, items = low_rank(20, 200, 16, np.float64, 9)
    index = InnerProductIndex(items)
    warm = index.prior_order[:40]
    seen = (np.arange(21) * warm.size, np.tile(np.sort(warm), 20))
    ids = index.topk(users, 5, seen=seen)[0]
    assert not np.isin(ids, warm).any()
    mask = np.zeros((1, 200), dtype=np.uint8)
    mask[0, warm] = 1
    assert not np.isin(index.topk(users, 5, dense_mask=mask)[0], warm).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_bonus(dtype):
    """Unsorted bonus entries with repeats are summed into the scores, and lift items the
    bounds alone would have pruned."""
    users, items = low_rank(30, 300, 16, dtype, 10)
    rng = np.random.default_rng(11)
    lengths = rng.integers(0, 25, size=30)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = rng.integers(0, 300, size=indptr[-1])
    values = rng.normal(scale=3.0, size=indptr[-1])
    bonus = (indptr, indices, values)
    dense = np.zeros((30, 300))
    np.add.at(dense, (np.repeat(np.arange(30), lengths), indices), values)
    got = InnerProductIndex(items).topk(users, 10, bonus=bonus)[:2]
    assert_same_topk(got, inner_product_topk(users, items, 10, bonus=bonus), users, items, dense)
    plain = InnerProductIndex(items).topk(users, 10)[0]
    assert (got[0] != plain).any()


def product_terms(n_users, n_items, value_dtype, index_dtype, seed, densities=(0.08, 0.1, 0.1)):
    """An item-kNN-like term (history @ item neighbours) and a user-kNN-like one (user
    neighbours @ ratings), with empty rows, and the items no term reaches; ``densities``
    of the ratings, the item neighbours and the user neighbours."""
    rng = np.random.default_rng(seed)

    cold = np.array([3, 17, n_items - 1])
    warm = np.ones(n_items)
    warm[cold] = 0

    def csr(rows, cols, density, positive=True, keep_columns=None):
        matrix = sp.random_array((rows, cols), density=density, format="csr", rng=rng)
        matrix.data = matrix.data if positive else matrix.data - 0.5
        keep_rows = np.ones(rows)
        keep_rows[rng.choice(rows, size=max(1, rows // 10), replace=False)] = 0  # empty rows
        matrix = sp.diags_array(keep_rows) @ matrix
        if keep_columns is not None:
            matrix = matrix @ sp.diags_array(keep_columns)
        matrix = sp.csr_array(matrix)
        matrix.eliminate_zeros()
        matrix.indices = matrix.indices.astype(index_dtype)
        return matrix.astype(value_dtype)

    ratings = csr(n_users, n_items, densities[0], keep_columns=warm)
    neighbours = csr(n_items, n_items, densities[1], positive=False, keep_columns=warm)
    return ratings, neighbours, csr(n_users, n_users, densities[2]), cold


@pytest.mark.parametrize("normalize", ["zscore", "minmax", None])
@pytest.mark.parametrize("value_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_product_bonus_equals_twin(normalize, value_dtype, index_dtype, num_threads):
    """Two product terms (item- and user-kNN shaped), each normalised and weighted, items
    scored as means of others' bonus, product rows given per user row (repeats, a
    subset), a per-row offset: the twin's ranking and scores, in both orientations."""
    from fastrec.mips import ProductBonus

    users, items = low_rank(40, 120, 16, np.float64, 30)
    ratings, neighbours, user_neighbours, cold = product_terms(50, 120, value_dtype, index_dtype, 31)
    terms = [(ratings, neighbours, 0.7, normalize), (user_neighbours, ratings, 1.3, normalize)]
    rng = np.random.default_rng(32)
    weights = sp.random_array((120, cold.size), density=0.2, format="csc", rng=rng)
    warm = np.ones(120)
    warm[cold] = 0
    weights = sp.csc_array(sp.diags_array(warm) @ weights)
    weights.eliminate_zeros()
    rows = rng.integers(0, 50, size=40)
    offset = rng.normal(size=40)
    bonus = ProductBonus(120, terms, means=(cold, weights))
    got = InnerProductIndex(items).topk(users, 10, bonus=bonus, bonus_rows=rows, offset=offset,
                                        num_threads=num_threads)[:2]
    want = inner_product_topk(users, items, 10, terms=terms, means=(cold, weights), bonus_rows=rows, offset=offset)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-10)
    assert np.isin(cold, got[0]).any()  # the means lift some items no term reaches


@pytest.mark.parametrize("normalize", ["zscore", "minmax", None])
@pytest.mark.parametrize("value_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("signs", ["mixed", "positive"])
def test_one_term_bonus_equals_twin(normalize, value_dtype, signs):
    """A single term and no means (the kernel's own shortcut): the twin's answer, with
    the touched columns told by flags (mixed signs) or by value (all positive)."""
    from fastrec.mips import ProductBonus

    users, items = low_rank(40, 120, 16, np.float64, 40)
    ratings, neighbours, _, _ = product_terms(50, 120, value_dtype, np.int32, 41)
    if signs == "positive":
        neighbours.data = np.abs(neighbours.data) + value_dtype(0.01)
    terms = [(ratings, neighbours, 0.9, normalize)]
    rows = np.random.default_rng(42).integers(0, 50, size=40)
    bonus = ProductBonus(120, terms)
    assert bonus.terms[0][-1] == (signs == "positive")  # the kernel's by-value listing
    got = InnerProductIndex(items).topk(users, 10, bonus=bonus, bonus_rows=rows, num_threads=2)
    want = inner_product_topk(users, items, 10, terms=terms, bonus_rows=rows)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-10)


def test_underflowing_products_are_listed_by_flag():
    """Positive terms whose products underflow to 0 (1e-200 * 1e-200) must not be
    listed by value: a column touched first by such a product, then by a normal one,
    would be listed twice and weigh twice in its row's statistics."""
    from fastrec.mips import ProductBonus

    n_items = 40
    users, items = low_rank(6, n_items, 8, np.float64, 43)
    rng = np.random.default_rng(44)
    # history item 0 (weight 1e-200) points at every column with 1e-200; item 1 (weight
    # 1) at half of them with normal similarities, after it in each row's scatter
    neighbours = np.zeros((2, n_items))
    neighbours[0] = 1e-200
    neighbours[1, ::2] = rng.uniform(0.5, 1.0, size=n_items // 2)
    history = sp.csr_array(np.tile([1e-200, 1.0], (6, 1)))
    terms = [(history, sp.csr_array(neighbours), 1.0, "zscore")]
    bonus = ProductBonus(n_items, terms)
    assert not bonus.terms[0][-1]
    got = InnerProductIndex(items).topk(users, 5, bonus=bonus, num_threads=1)
    want = inner_product_topk(users, items, 5, terms=terms)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-10)


def test_product_bonus_is_the_csr_bonus_of_its_rows():
    """One unnormalised term with weight 1 gives the same answer as its rows passed as a
    CSR bonus; with 2 threads too."""
    from fastrec.mips import ProductBonus

    users, items = low_rank(30, 90, 12, np.float64, 33)
    ratings, neighbours, _, _ = product_terms(30, 90, np.float64, np.int64, 34)
    rows = (ratings @ neighbours).tocsr()
    index = InnerProductIndex(items)
    by_csr = index.topk(users, 6, bonus=(rows.indptr, rows.indices, rows.data))
    by_product = index.topk(users, 6, bonus=ProductBonus(90, [(ratings, neighbours, 1.0, None)]), num_threads=2)
    np.testing.assert_array_equal(by_csr[0], by_product[0])
    np.testing.assert_allclose(by_csr[1], by_product[1], rtol=1e-12)


def test_product_bonus_checks_its_input():
    from fastrec.mips import ProductBonus

    ratings, neighbours, _, cold = product_terms(20, 40, np.float64, np.int64, 35)
    with pytest.raises(ValueError, match="do not give 40 columns"):
        ProductBonus(40, [(ratings, neighbours[:30], 1.0, None)])
    with pytest.raises(ValueError, match="normalize"):
        ProductBonus(40, [(ratings, neighbours, 1.0, "rank")])
    bad = neighbours.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ProductBonus(40, [(ratings, bad, 1.0, None)])
    with pytest.raises(ValueError, match="weight must be finite"):
        ProductBonus(40, [(ratings, neighbours, np.inf, None)])
    with pytest.raises(ValueError, match="same number of rows"):
        ProductBonus(40, [(ratings, neighbours, 1.0, None), (ratings[:10], neighbours, 1.0, None)])
    with pytest.raises(ValueError, match="mean weights must have shape"):
        ProductBonus(40, [], means=(cold, sp.csc_array((40, 2))))
    with pytest.raises(ValueError, match="distinct item positions"):
        ProductBonus(40, [], means=(np.array([1, 1]), sp.csc_array((40, 2))))
    with pytest.raises(ValueError, match="another mean item"):
        ProductBonus(40, [], means=(np.array([1, 2]), sp.csc_array(([1.0], ([2], [0])), shape=(40, 2))))
    bonus = ProductBonus(40, [(ratings, neighbours, 1.0, "zscore")])
    users, items = low_rank(5, 40, 12, np.float64, 36)
    index = InnerProductIndex(items)
    with pytest.raises(ValueError, match="bonus_rows must be rows"):
        index.topk(users, 3, bonus=bonus, bonus_rows=np.array([0, 1, 2, 3, 20]))
    with pytest.raises(ValueError, match="bonus_rows must have shape"):
        index.topk(users, 3, bonus=bonus, bonus_rows=np.arange(4))
    with pytest.raises(ValueError, match="bonus must have 50 columns"):
        InnerProductIndex(low_rank(5, 50, 12, np.float64, 37)[1]).topk(users, 3, bonus=bonus)


def _dense_bonus(bonus, rows, n):
    indptr, indices, values = bonus
    dense = np.zeros((rows, n))
    np.add.at(dense, (np.repeat(np.arange(rows), np.diff(indptr)), indices), values)
    return dense


def test_ties_go_to_the_lower_id():
    """Integer vectors: exact ties in any summation order."""
    rng = np.random.default_rng(12)
    base = rng.integers(-2, 3, size=(30, 18)).astype(np.float64)
    items = np.repeat(base, 4, axis=0)[rng.permutation(120)]  # every vector four times
    users = rng.integers(-2, 3, size=(25, 18)).astype(np.float64)
    for dtype in (np.float32, np.float64):
        got = InnerProductIndex(items.astype(dtype)).topk(users.astype(dtype), 9)[:2]
        want = inner_product_topk(users.astype(dtype), items.astype(dtype), 9)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_padding_and_empty_cases():
    users, items = low_rank(5, 8, 6, np.float64, 13)
    index = InnerProductIndex(items)
    mask = np.zeros((1, 8), dtype=np.uint8)
    mask[0, :5] = 1
    ids, scores, _ = index.topk(users, 6, dense_mask=mask)
    assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert set(ids[0, :3]) == {5, 6, 7}
    assert index.topk(users[:0], 4)[0].shape == (0, 4)
    assert index.topk(users, 0)[0].shape == (5, 0)
    empty = InnerProductIndex(np.zeros((0, 6)))
    ids, scores, n_exact = empty.topk(users, 3)
    assert (ids == -1).all() and n_exact == 0
    one = InnerProductIndex(items).topk(users[:1], 3)[:2]
    assert_same_topk(one, inner_product_topk(users[:1], items, 3), users[:1], items)


def test_threads_give_identical_results():
    users, items = low_rank(300, 600, 24, np.float32, 14)
    seen = random_pattern(300, 600, 0.05, 15)
    index = InnerProductIndex(items)
    one = index.topk(users, 10, seen=seen, num_threads=1)
    two = index.topk(users, 10, seen=seen, num_threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    assert one[2] == two[2]


def test_int32_patterns_in_the_kernel():
    """The kernel takes int32 CSR patterns as well as int64 (the wrapper passes int64)."""
    from fastrec._kernels.mips import pruned_topk, workspace_bytes
    from fastrec.mips import ProductBonus

    users, items = low_rank(20, 100, 12, np.float64, 16)
    index = InnerProductIndex(items)
    seen = random_pattern(20, 100, 0.1, 17, np.int32)
    results = []
    for dtype in (np.int32, np.int64):
        bounds, slack = index.bounds(users)
        ids = np.empty((20, 5), dtype=np.int64)
        scores = np.empty((20, 5))
        warm = index.prior_order[:16]
        is_warm = np.zeros(100, dtype=np.uint8)
        is_warm[warm] = 1
        pruned_topk(bounds, users, index.items, slack, warm, is_warm, np.zeros((1, 100), dtype=np.uint8),
                    seen[0].astype(dtype), seen[1].astype(dtype), [], np.zeros(20, dtype=np.int64),
                    *ProductBonus.NO_MEANS, ids, scores, np.empty(20), np.empty(workspace_bytes(100, 1), dtype=np.uint8), 1)
        results.append((ids, scores))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    want = inner_product_topk(users, items, 5, seen=seen)
    np.testing.assert_array_equal(results[0][0], want[0])


def test_inputs_are_not_modified_and_bad_input_raises():
    users, items = low_rank(10, 50, 12, np.float32, 18)
    users_copy, items_copy = users.copy(), items.copy()
    InnerProductIndex(items).topk(users, 5)
    np.testing.assert_array_equal(users, users_copy)
    np.testing.assert_array_equal(items, items_copy)
    with pytest.raises(ValueError, match="NaN or infinite"):
        InnerProductIndex(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="2-d"):
        InnerProductIndex(np.ones(4))
    with pytest.raises(ValueError, match="head_dims"):
        InnerProductIndex(items, head_dims=13)
    with pytest.raises(ValueError, match="shape"):
        InnerProductIndex(items).topk(users[:, :5], 3)
    with pytest.raises(ValueError, match="NaN or infinite"):
        InnerProductIndex(items).topk(np.full((2, 12), np.inf, dtype=np.float32), 3)
    index = InnerProductIndex(items)
    with pytest.raises(ValueError, match="dense_mask"):
        index.topk(users, 3, dense_mask=np.zeros((2, 50), dtype=np.uint8))
    with pytest.raises(ValueError, match="seen: indptr"):
        index.topk(users, 3, seen=(np.array([0, 5]), np.arange(5)))
    with pytest.raises(ValueError, match="seen: indices"):
        index.topk(users, 3, seen=(np.r_[0, np.full(10, 1)], np.array([50])))
    with pytest.raises(ValueError, match="bonus term: indices"):
        index.topk(users, 3, bonus=(np.r_[0, np.full(10, 1)], np.array([-1]), np.ones(1)))
    with pytest.raises(ValueError, match="bonus: indptr"):
        index.topk(users, 3, bonus=(np.r_[0, np.full(10, 1)], np.array([1]), np.zeros(0)))
    with pytest.raises(ValueError, match="k must"):
        index.topk(users, -1)


def test_pruning_pays_only_where_the_bounds_prune():
    users, items = low_rank(300, 2000, 40, np.float64, 21)
    index = InnerProductIndex(items)
    assert index.pruning_pays(users[index.probe_rows(300)])
    rng = np.random.default_rng(22)  # no dominant axis: nearly every score is computed
    flat = InnerProductIndex(rng.normal(size=(2000, 40)))
    assert not flat.pruning_pays(rng.normal(size=(64, 40)))
    assert index.probe_rows(0).size == 0 and index.probe_rows(5).tolist() == [0, 1, 2, 3, 4]


# ------------------------------------------------------------- two-level search
def both_levels(search):
    """``search()`` with the two-level search, then with one level forced."""
    import fastrec.mips as mips

    first = search()
    try:
        mips.GROUPED = False
        return first, search()
    finally:
        mips.GROUPED = True


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_two_level_search_equals_one_level_and_twin(dtype, num_threads):
    """Catalogues of GROUPED_MIN_ITEMS items or more search groups of items first: the
    same answer as the one-level search and the twin, with exclusions."""
    import fastrec.mips as mips

    n_items = mips.GROUPED_MIN_ITEMS + 500
    users, items = low_rank(80, n_items, 24, dtype, 50)
    index = InnerProductIndex(items)
    assert index.groups is not None
    indptr, order = index.groups[:2]
    assert np.array_equal(np.sort(order), np.arange(n_items)) and indptr[-1] == n_items
    seen = random_pattern(80, n_items, 0.01, 51)
    mask = (np.random.default_rng(52).random((1, n_items)) < 0.1).astype(np.uint8)
    got, one_level = both_levels(lambda: index.topk(users, 10, dense_mask=mask, seen=seen, num_threads=num_threads))
    assert_same_topk(got[:2], inner_product_topk(users, items, 10, dense_mask=mask, seen=seen), users, items)
    # recommend's blocks are sized by the group bounds a user holds, or the item bounds
    assert both_levels(index.row_bytes) == (np.dtype(dtype).itemsize * (indptr.size - 1),
                                            np.dtype(dtype).itemsize * n_items)
    np.testing.assert_array_equal(got[0], one_level[0])
    np.testing.assert_array_equal(got[1], one_level[1])
    assert got[2] < users.shape[0] * n_items // 20  # the groups pruned most items


def test_two_level_search_ties_and_short_rows():
    """Repeated item vectors (ties go to the lower id), and rows with fewer candidates than k
    (padded with -1 / -inf)."""
    import fastrec.mips as mips

    users, items = low_rank(30, mips.GROUPED_MIN_ITEMS, 12, np.float64, 53)
    items[1::2] = items[0::2]  # every vector twice
    index = InnerProductIndex(items)
    got = index.topk(users, 9)
    assert_same_topk(got[:2], inner_product_topk(users, items, 9), users, items)
    mask = np.ones((30, items.shape[0]), dtype=np.uint8)
    mask[:, :5] = 0  # five candidates left
    ids, scores, _ = index.topk(users, 9, dense_mask=mask)
    assert (ids[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    np.testing.assert_array_equal(np.sort(ids[:, :5], axis=1), np.tile(np.arange(5), (30, 1)))


@pytest.mark.parametrize("case", ["one term, positive", "one term, negative weight", "one term, mixed signs",
                                  "two terms and means"])
@pytest.mark.parametrize("value_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_threads, k", [(1, 10), (2, 10), (2, 40)])
def test_two_level_search_with_product_bonus(case, value_dtype, num_threads, k):
    """With a bonus the groups leave the bonus columns to their own pass: the one-level
    search's answer and the twin's, for the kernel's one-term shortcut (listed by value or
    by flags) and for several terms with mean items; with exclusions and an offset; k past
    FIRST_BONUS_COLUMNS (warm items first again)."""
    import fastrec.mips as mips
    from fastrec.mips import ProductBonus

    n_items = mips.GROUPED_MIN_ITEMS + 300
    users, items = low_rank(60, n_items, 24, np.float64, 60)
    ratings, neighbours, user_neighbours, cold = product_terms(70, n_items, value_dtype, np.int32, 61,
                                                               densities=(0.005, 0.002, 0.05))
    if case in ("one term, positive", "one term, negative weight"):
        neighbours.data = np.abs(neighbours.data) + value_dtype(0.01)
    weight = -0.3 if case == "one term, negative weight" else 0.3  # the bonus about the size of the scores
    terms = [(ratings, neighbours, weight, "zscore")]
    means = None
    if case == "two terms and means":
        terms.append((user_neighbours, ratings, -0.8, "minmax"))  # a negative weight lowers its columns
        rng = np.random.default_rng(62)
        weights = sp.random_array((n_items, cold.size), density=0.01, format="csc", rng=rng)
        keep = np.ones(n_items)
        keep[cold] = 0
        weights = sp.csc_array(sp.diags_array(keep) @ weights)
        means = (cold, weights)
    rows = np.random.default_rng(63).integers(0, 70, size=60)
    seen = random_pattern(60, n_items, 0.01, 64)
    mask = (np.random.default_rng(65).random((1, n_items)) < 0.05).astype(np.uint8)
    offset = np.random.default_rng(66).normal(size=60)
    index = InnerProductIndex(items)
    assert index.groups is not None
    bonus = ProductBonus(n_items, terms, means=means)

    def search():
        return index.topk(users, k, dense_mask=mask, seen=seen, bonus=bonus, bonus_rows=rows, offset=offset,
                          num_threads=num_threads)

    got, one_level = both_levels(search)
    np.testing.assert_array_equal(got[0], one_level[0])
    np.testing.assert_array_equal(got[1], one_level[1])
    want = inner_product_topk(users, items, k, dense_mask=mask, seen=seen, terms=terms, means=means,
                              bonus_rows=rows, offset=offset)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-10)
    plain = index.topk(users, k, dense_mask=mask, seen=seen, num_threads=num_threads)[0]
    assert (got[0] != plain).any()  # the bonus moved some answers
    assert got[2] < users.shape[0] * n_items // 10  # the groups still pruned most items


@pytest.mark.parametrize("k", [12, 40])
def test_two_level_bonus_search_with_fewer_candidates_than_k(k):
    """Rows with fewer candidates than k keep the threshold at -inf, which every bound
    passes: the bonus columns already scored (or warm, masked, seen) must still not be
    scored twice; padded with -1 / -inf as the one-level search and the twin are."""
    import fastrec.mips as mips
    from fastrec.mips import ProductBonus

    n_items = mips.GROUPED_MIN_ITEMS + 100
    users, items = low_rank(20, n_items, 24, np.float64, 70)
    ratings, neighbours, _, _ = product_terms(25, n_items, np.float64, np.int32, 71, densities=(0.004, 0.003, 0.1))
    neighbours.data = np.abs(neighbours.data) + 0.01
    terms = [(ratings, neighbours, 0.3, "zscore")]
    rows = np.arange(20)
    mask = np.ones((1, n_items), dtype=np.uint8)
    touched = np.unique((ratings[:20] @ neighbours).indices)
    mask[0, touched[: k // 2]] = 0  # candidates: some bonus columns (every user's, at most)...
    mask[0, -k // 3:] = 0  # ...and a few others, fewer than k in all for most rows
    seen = random_pattern(20, n_items, 0.0005, 72)
    index = InnerProductIndex(items)
    assert index.groups is not None

    def search():
        return index.topk(users, k, dense_mask=mask, seen=seen, bonus=ProductBonus(n_items, terms), bonus_rows=rows)

    got, one_level = both_levels(search)
    want = inner_product_topk(users, items, k, dense_mask=mask, seen=seen, terms=terms, bonus_rows=rows)
    assert (got[0] == -1).any()  # some rows are short
    for ids in got[0]:
        assert np.unique(ids[ids >= 0]).size == (ids >= 0).sum()  # no item twice
    np.testing.assert_array_equal(got[0], one_level[0])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [40, 70])
def test_two_level_bonus_pass_finds_columns_just_above_the_cut(dtype, k):
    """Every item scores the same but for its bonus, so the group bounds are tight and
    the bonus alone ranks the row; past the first picks (at most FIRST_BONUS of them),
    the bonus pass must find the rest of the top k among columns whose bonus differs by
    little, however close to the threshold its cut on the unscaled bonus lies."""
    import fastrec.mips as mips
    from fastrec.mips import ProductBonus

    n_items = mips.GROUPED_MIN_ITEMS + 300
    users, _ = low_rank(30, n_items, 16, dtype, 80)
    items = np.tile(low_rank(1, 1, 16, dtype, 81)[1], (n_items, 1))
    rng = np.random.default_rng(82)
    # every row's history is one item whose neighbours are every item, at slightly
    # different weights
    history = sp.csr_array(np.ones((30, 1)))
    neighbours = sp.csr_array(1.0 + 1e-3 * rng.permutation(n_items)[None, :].astype(np.float64))
    terms = [(history, neighbours, 0.7, None)]
    rows = np.arange(30)
    index = InnerProductIndex(items)
    assert index.groups is not None

    def search():
        return index.topk(users, k, bonus=ProductBonus(n_items, terms), bonus_rows=rows)

    got, one_level = both_levels(search)
    want = inner_product_topk(users, items, k, terms=terms, bonus_rows=rows)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[0], one_level[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("seed", range(150))
def test_two_levels_agree_on_random_small_cases(seed, monkeypatch):
    """Small catalogues searched on two levels (GROUPED_MIN_ITEMS lowered): random sizes,
    group sizes, k (also past the candidates and past FIRST_BONUS_COLUMNS), ties, masks
    (shared or per row), seen items, one or two bonus terms of either sign and
    normalisation, or none: the one-level search's answer, and the twin's."""
    import fastrec.mips as mips
    from fastrec.mips import ProductBonus

    rng = np.random.default_rng(seed)
    monkeypatch.setattr(mips, "GROUPED_MIN_ITEMS", 16)
    monkeypatch.setattr(mips, "GROUP_SIZE", int(rng.integers(2, 20)))
    n, rows, dims, k = int(rng.integers(20, 400)), int(rng.integers(1, 30)), int(rng.integers(12, 40)), int(rng.integers(1, 45))
    users, items = low_rank(rows, n, dims, np.float64, seed)
    if seed % 5 == 0:
        items[1::2] = items[0::2][:n // 2]  # ties
    seen = random_pattern(rows, n, rng.uniform(0, 0.3), seed + 1) if seed % 3 else None
    mask = (rng.random((1 if seed % 2 else rows, n)) < rng.uniform(0, 0.5)).astype(np.uint8) if seed % 4 else None
    kwargs, twin_kwargs = {"dense_mask": mask, "seen": seen, "num_threads": 1 + seed % 2}, {"dense_mask": mask, "seen": seen}
    if seed % 8:
        value_dtype = [np.float32, np.float64][(seed // 2) % 2]
        history = sp.random_array((rows + 5, n), density=rng.uniform(0.005, 0.1), format="csr", rng=rng)
        neighbours = sp.random_array((n, n), density=rng.uniform(0.005, 0.05), format="csr", rng=rng)
        if seed % 7 == 0:
            neighbours.data -= 0.5
        normalize = ["zscore", "minmax", None][seed % 3]
        terms = [(history.astype(value_dtype), neighbours.astype(value_dtype), float(rng.normal()), normalize)]
        if seed % 6 == 1:
            user_neighbours = sp.random_array((rows + 5, rows + 5), density=0.2, format="csr", rng=rng)
            terms.append((user_neighbours.astype(value_dtype), history.astype(value_dtype), 0.4, normalize))
        bonus_rows = rng.integers(0, rows + 5, size=rows)
        kwargs.update(bonus=ProductBonus(n, terms), bonus_rows=bonus_rows)
        twin_kwargs.update(terms=terms, bonus_rows=bonus_rows)
    index = InnerProductIndex(items)
    assert index.groups is not None
    got, one_level = both_levels(lambda: index.topk(users, k, **kwargs))
    np.testing.assert_array_equal(got[0], one_level[0])
    np.testing.assert_array_equal(got[1], one_level[1])
    want = inner_product_topk(users, items, k, **twin_kwargs)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-9, atol=1e-9)
