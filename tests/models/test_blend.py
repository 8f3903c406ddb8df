"""Blend: weights learned back from a known mixture, one member, ranking methods vs NumPy."""
import numpy as np
import pytest

import fastrec
from fastrec.models.base import Recommender
from fastrec.reference.blend import NORMALIZATIONS, row_stats
from fastrec.testing import make_interactions


class Fixed(Recommender):
    """A member whose score of (u, i) is a fixed function of the indices."""

    def __init__(self, phase=0.0):
        self.phase = phase

    @property
    def predicts_ratings(self):
        return True

    def _fit(self, data):
        self.n_items_ = data.n_items

    def _predict_indices(self, u, i):
        return np.sin(1.3 * u + 0.7 * i + self.phase) + 0.1 * i

    def _score_users(self, u):
        return self._predict_indices(np.repeat(u, self.n_items_), np.tile(np.arange(self.n_items_), u.size)
                                     ).reshape(u.size, -1)


def _mixture_data(seed):
    base = make_interactions(60, 30, 0.4, seed=seed)
    u, i = base.entry_users, base.csr.indices
    ratings = 0.5 + 0.3 * Fixed(0.0)._predict_indices(u, i) + 0.7 * Fixed(1.0)._predict_indices(u, i)
    return fastrec.Interactions.from_arrays(u, i, ratings, user_ids=np.arange(60), item_ids=np.arange(30))


@pytest.mark.parametrize("nonnegative", [True, False])
def test_weights_of_a_known_mixture_come_back(seed, nonnegative):
    data = _mixture_data(seed)
    blend = fastrec.Blend([Fixed(0.0), Fixed(1.0), Fixed(2.0)], stacking="linear", nonnegative=nonnegative,
                          random_state=seed)
    blend.fit(data)
    np.testing.assert_allclose(blend.weights_, [0.3, 0.7, 0.0], atol=1e-8)
    assert blend.intercept_ == pytest.approx(0.5, abs=1e-8)
    assert blend.validation_scores_["blend"] < 1e-8
    users, items, ratings, _ = data.to_arrays()
    np.testing.assert_allclose(blend.predict(users, items), ratings, atol=1e-8)


def test_one_member_with_weight_one_is_that_member(seed):
    data = make_interactions(50, 30, 0.2, seed=seed)
    member = fastrec.MatrixFactorization(4, 5, random_state=0)
    blend = fastrec.Blend([member], weights=[1.0], random_state=seed).fit(data)
    alone = fastrec.MatrixFactorization(4, 5, random_state=0).fit(data)
    users, items, _, _ = data.to_arrays()
    np.testing.assert_allclose(blend.predict(users, items), alone.predict(users, items), rtol=1e-12)
    ids, scores = blend.recommend(data.user_ids[:10], n=5)
    expected_ids, expected_scores = alone.recommend(data.user_ids[:10], n=5)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)


def _reference_scores(members, weights, method, normalize, users):
    """Each member's scores of every item (from its own ``recommend``), put on the blend's
    scale in plain NumPy, combined."""
    out = 0.0
    for w, m in zip(weights, members, strict=True):
        data = m.interactions_
        ids, top = m.recommend(users, n=data.n_items, exclude_seen=False)
        s = np.zeros((users.size, data.n_items))  # what a list leaves out (-1) scores 0
        codes = data.item_index(ids.ravel(), unknown="ignore").reshape(ids.shape)
        rows = np.repeat(np.arange(users.size), ids.shape[1]).reshape(ids.shape)
        s[rows[codes >= 0], codes[codes >= 0]] = top[codes >= 0]
        if method == "linear":
            scale, shift = row_stats(s, NORMALIZATIONS.index(normalize))
            s = (s - shift[:, None]) * scale[:, None]
        else:
            ranks = np.array([[np.sum((row > row[j]) | ((row == row[j]) & (np.arange(row.size) < j)))
                               for j in range(row.size)] for row in s], dtype=float)
            s = 1 - ranks / s.shape[1] if method == "rank" else 1 / (61 + ranks)
        out = out + w * s
    return out


@pytest.mark.parametrize("method", ["linear", "rank", "rrf"])
@pytest.mark.parametrize("normalize", ["zscore", "minmax", None])
def test_ranking_blend_scores_equal_a_numpy_reference(method, normalize, seed):
    data = make_interactions(40, 25, 0.2, implicit=True, seed=seed)
    members = [fastrec.Popularity(), fastrec.ItemKNN(k=5), fastrec.MatrixFactorization(3, 3, loss="bpr", random_state=0)]
    blend = fastrec.Blend(members, method=method, normalize=normalize, random_state=seed, k=5).fit(data)
    assert blend.weights_.shape == (3,) and np.isclose(blend.weights_.sum(), 1.0 if method != "rrf" else 3.0)
    expected = _reference_scores(members, blend.weights_, method, normalize, data.user_ids)
    u, _ = blend._known_users(data.user_ids)  # users without data: -1, the members' fallbacks
    np.testing.assert_allclose(blend._score_users(u), expected, rtol=1e-7, atol=1e-9)
    ids, _ = blend.recommend(data.user_ids, n=5)
    seen = data.csr.toarray() > 0
    for row, items in enumerate(ids):
        assert not seen[row, items[items >= 0]].any()
    assert set(blend.validation_scores_) == {"Popularity_0", "ItemKNN_1", "MatrixFactorization_2", "blend"}
    # the search starts from equal weights, so the blend is never worse there
    assert blend.validation_scores_["blend"] >= 0


def test_learned_ranking_weights_pick_the_informative_member(seed):
    data = make_interactions(80, 40, 0.15, implicit=True, seed=seed)
    train, test = fastrec.model_selection.train_test_split(data, 0.3, random_state=seed)
    blend = fastrec.Blend([("pop", fastrec.Popularity()), ("knn", fastrec.ItemKNN(k=20))],
                          random_state=seed).fit(train)
    best = max(("pop", "knn"), key=blend.validation_scores_.get)
    assert blend.validation_scores_["blend"] >= blend.validation_scores_[best] - 1e-12


def test_explicit_validation_and_refit(seed):
    data = make_interactions(60, 30, 0.3, seed=seed)
    train, valid = fastrec.model_selection.train_test_split(data, 0.2, random_state=seed)
    blend = fastrec.Blend([fastrec.Baseline(), fastrec.ItemKNN(k=10)]).fit(train, validation=valid)
    assert blend.interactions_.nnz == data.nnz  # refitted on train + validation
    assert blend._members()[0].interactions_.nnz == data.nnz
    kept = fastrec.Blend([fastrec.Baseline()]).fit(train, validation=valid, refit=False)
    assert kept.interactions_.nnz == train.nnz
    with pytest.raises(ValueError, match="repeats"):
        fastrec.Blend([fastrec.Baseline()]).fit(train, validation=train)


def test_explain_adds_up(seed):
    data = make_interactions(60, 30, 0.3, seed=seed)
    blend = fastrec.Blend([("base", fastrec.Baseline()), ("knn", fastrec.ItemKNN(k=10))], random_state=seed).fit(data)
    why = blend.explain(data.user_ids[0], data.item_ids[3])
    assert set(why.neighbors) == {"base", "knn"}
    assert why.base + why.contribution.sum() == pytest.approx(why.estimate)
    # predict clips the same estimate to the rating scale
    assert np.clip(why.estimate, 1, 5) == pytest.approx(blend.predict(data.user_ids[0], data.item_ids[3]))


@pytest.mark.parametrize("params, message", [
    ({"models": []}, "non-empty"), ({"models": [object()]}, "recommender"),
    ({"method": "max"}, "method"), ({"normalize": "rank"}, "normalize"),
    ({"weights": [1.0, 2.0]}, "one per member"), ({"validation_size": 1.5}, "validation_size"),
    ({"k": 0}, "k"),
])
def test_bad_parameters(params, message):
    kwargs = {"models": [fastrec.Baseline()], **params}
    with pytest.raises((ValueError, TypeError), match=message):
        fastrec.Blend(kwargs.pop("models"), **kwargs).fit(make_interactions(10, 8, 0.4))


def _with_cold_items(seed):
    """Implicit data whose last 4 items have genres but no interactions."""
    import scipy.sparse as sp

    data = make_interactions(50, 30, 0.2, implicit=True, empty_items=4, seed=seed)
    genres = sp.csr_array((np.random.default_rng(seed).random((30, 5)) < 0.4).astype(float))
    return data.with_item_features(genres)


def test_items_without_interactions_are_scored_by_content(seed):
    data = _with_cold_items(seed)
    blend = fastrec.Blend([fastrec.ItemKNN(k=10), fastrec.Popularity()], weights=[0.7, 0.3]).fit(data)
    cold = blend.content_items_
    assert set(cold) <= {26, 27, 28, 29} and cold.size > 0
    u, _ = blend._known_users(data.user_ids)
    scores = blend._score_users(u)
    # each cold item: the similarity-weighted mean of its most similar items with interactions
    sim = fastrec.similarity.content_similarity(data.item_features, "cosine", k=None, dtype=np.float64).toarray()
    for item in cold:
        row = np.where(data.item_counts > 0, sim[item], 0.0)
        top = np.lexsort((np.arange(30), -row))[:20]
        top = top[row[top] > 0]
        expected = scores[:, top] @ row[top] / row[top].sum()
        np.testing.assert_allclose(scores[:, item], expected, rtol=1e-9, atol=1e-12)
    ids, _, details = blend.recommend(data.user_ids, n=30, return_details=True)
    assert np.isin(data.item_ids[cold], ids).all()  # new items can be recommended
    assert not details.known_item[cold].any() and "content" in details.fallback
    predicted, why = blend.predict(data.user_ids[:1], data.item_ids[cold[:1]], return_details=True)
    assert not why.known_item.any()  # reported as a fallback, though scored
    assert predicted[0] == pytest.approx(scores[0, cold[0]])


def test_a_new_user_is_scored_through_each_members_fold_in(seed):
    data = make_interactions(50, 30, 0.2, implicit=True, seed=seed)
    knn, mf = fastrec.ItemKNN(k=10), fastrec.MatrixFactorization(4, 5, loss="bpr", random_state=0)
    blend = fastrec.Blend([knn, mf, fastrec.Popularity()], weights=[0.5, 0.3, 0.2]).fit(data)
    seeds = data.item_ids[[1, 4, 7]]
    codes = np.array([1, 4, 7])
    parts = [knn._history_scores(codes, np.ones(3)), mf._history_scores(codes, np.ones(3)),
             blend._members()[2]._score_users(np.array([-1]))[0]]
    expected = sum(w * (p - p.mean()) / p.std() for w, p in zip([0.5, 0.3, 0.2], map(np.asarray, parts),
                                                                    strict=True))
    assert set(blend.fold_in(seeds)) == {"MatrixFactorization_1"}  # the only member with a fold_in
    ids, scores = blend.recommend_history(seeds, n=5)
    order = np.lexsort((np.arange(30), -np.where(np.isin(np.arange(30), codes), -np.inf, expected)))[:5]
    np.testing.assert_array_equal(ids, data.item_ids[order])
    np.testing.assert_allclose(scores, expected[order], rtol=1e-10)


@pytest.mark.parametrize("implicit", [False, True])
def test_save_load_round_trip_with_members(tmp_path, seed, implicit):
    data = _with_cold_items(seed) if implicit else make_interactions(50, 30, 0.3, seed=seed)
    members = [("knn", fastrec.ItemKNN(k=10)), ("mf", fastrec.MatrixFactorization(4, 5, random_state=0)),
               ("pop", fastrec.Popularity())]
    if implicit:
        members[1] = ("mf", fastrec.MatrixFactorization(4, 5, loss="bpr", random_state=0))
    blend = fastrec.Blend(members, random_state=seed).fit(data)
    blend.save(tmp_path / "blend.npz")
    loaded = fastrec.load(tmp_path / "blend.npz")
    assert [name for name, _ in loaded.models] == ["knn", "mf", "pop"]
    np.testing.assert_array_equal(loaded.weights_, blend.weights_)
    ids, scores = blend.recommend(data.user_ids, n=6)
    loaded_ids, loaded_scores = loaded.recommend(data.user_ids, n=6)
    np.testing.assert_array_equal(loaded_ids, ids)
    np.testing.assert_allclose(loaded_scores, scores, rtol=1e-12)
    users, items, _, _ = data.to_arrays()
    np.testing.assert_allclose(loaded.predict(users, items), blend.predict(users, items), rtol=1e-12)


def test_feature_weighted_stacking_recovers_support_dependent_weights(seed):
    # ratings whose first weight grows with the user's support (as the blend counts it,
    # on the training part): only fwls can fit them
    rng = np.random.default_rng(seed)
    pairs = [(u, i) for u in range(120) for i in np.sort(rng.permutation(30)[:2 + u % 28])]
    u, i = np.array(pairs).T
    train_mask = rng.random(u.size) < 0.5
    train_mask[np.r_[0, np.flatnonzero(np.diff(u)) + 1]] = True  # every user keeps a training pair
    fu = np.log1p(np.bincount(u[train_mask], minlength=120))[u] / 5
    ratings = 1.0 + (0.2 + 0.5 * fu) * Fixed(0.0)._predict_indices(u, i) + 0.6 * Fixed(1.0)._predict_indices(u, i)
    data = fastrec.Interactions.from_arrays(u, i, ratings, user_ids=np.arange(120), item_ids=np.arange(30))
    train, valid = data.select(train_mask), data.select(~train_mask)  # pairs are in CSR order already
    fits = {s: fastrec.Blend([Fixed(0.0), Fixed(1.0)], stacking=s).fit(train, validation=valid, refit=False)
            for s in ("fwls", "linear")}
    # (the ridge penalty and the nearly constant item support keep it from exact)
    assert fits["fwls"].validation_scores_["blend"] < 0.25 * fits["linear"].validation_scores_["blend"]
    assert fits["fwls"].support_weights_[0, 0] > 0.2  # the first member's weight grows with support
    users, items, values, _ = valid.to_arrays()
    direct = fits["fwls"].predict(users, items)
    dense = fits["fwls"]._score_users(valid.user_index(users))[np.arange(users.size), valid.item_index(items)]
    np.testing.assert_allclose(direct, np.clip(dense, *data.rating_scale), rtol=1e-12)


@pytest.mark.parametrize("normalize", [0, 1, 2])
@pytest.mark.parametrize("block_dtype", [np.float32, np.float64])
def test_fused_kernel_matches_reference(seed, normalize, block_dtype, index_dtype, num_threads):
    import scipy.sparse as sp

    from fastrec._kernels.blend import add_normalized_product, row_stats
    from fastrec.reference.blend import add_normalized_product as reference
    from fastrec.reference.blend import row_stats as reference_stats

    rng = np.random.default_rng(seed)
    x = sp.random(30, 20, density=0.15, format="csr", random_state=seed)
    x.data[:] = rng.normal(size=x.data.size)  # signed values: sums may cancel
    t = sp.random(20, 25, density=0.3, format="csr", random_state=seed + 1)
    x.data[x.indptr[7]:x.indptr[8]] = 0  # an empty row
    x.eliminate_zeros()
    rows = np.array([0, 7, -1, 29, 3, 3], dtype=np.int64)
    fallback = rng.random(25)
    block = rng.normal(size=(rows.size, 25)).astype(block_dtype)
    block[1] = 0.5  # a constant row
    scale, shift = np.empty(rows.size), np.empty(rows.size)
    row_stats(block, normalize, scale, shift, num_threads)
    expected_scale, expected_shift = reference_stats(block, normalize)
    np.testing.assert_allclose(scale, expected_scale, rtol=1e-9)
    np.testing.assert_allclose(shift, expected_shift, rtol=1e-9, atol=1e-12)
    block_scale, block_offset = 0.3 * scale, -0.3 * scale * shift
    got = block.copy()
    add_normalized_product(got, block_scale, block_offset, x.data, x.indices.astype(index_dtype), x.indptr.astype(np.int64), t.data,
                           t.indices.astype(index_dtype), t.indptr.astype(np.int64), rows, fallback, 0.7,
                           normalize, num_threads)
    expected = reference(block.copy(), block_scale, block_offset, x, t, rows, fallback, 0.7, normalize)
    np.testing.assert_allclose(got, expected, rtol=1e-5 if block_dtype == np.float32 else 1e-10, atol=1e-6)


def test_fused_scores_equal_the_generic_combination(seed):
    from fastrec.models.blend import _dense_scores

    data = make_interactions(60, 40, 0.15, implicit=True, seed=seed)
    members = [fastrec.MatrixFactorization(4, 3, loss="bpr", random_state=0).fit(data),
               fastrec.ItemKNN(k=8).fit(data)]
    for normalize in ("zscore", "minmax", None):
        blend = fastrec.Blend(members, normalize=normalize, weights=[0.6, 0.4]).fit(data, fit_members=False)
        u, _ = blend._known_users(np.r_[data.user_ids, [10**9]])  # and one unknown user
        generic = blend._combine([_dense_scores(m, u) for m in members], blend._user_support(u))
        np.testing.assert_allclose(blend._score_users(u), generic, rtol=1e-4, atol=1e-5)  # float32 block


@pytest.mark.parametrize("normalize", ["zscore", None])
@pytest.mark.parametrize("n_knn", [1, 2])
def test_pruned_recommend_equals_the_dense_blend(seed, normalize, n_knn, monkeypatch):
    """A factor model + implicit kNN, linear: recommend ranks through the pruned search
    with the kNN products as a sparse bonus; same top-n and scores as ranking the
    generic dense combination, with seen items, a candidate filter and an unknown user
    among known ones."""
    from fastrec.models.blend import _dense_scores
    from fastrec.reference.topk import dense_topk

    monkeypatch.setattr("fastrec.mips.MAX_EXACT_SHARE", 1.0)  # a small catalogue: taken anyway
    data = fastrec.datasets.synthetic(200, 150, 4_000, kind="implicit", seed=seed)
    knn = [fastrec.ItemKNN(k=10).fit(data), fastrec.UserKNN(k=15).fit(data)][:n_knn]
    mf = fastrec.MatrixFactorization(24, 10, lr=0.02, loss="bpr", dtype=np.float64, random_state=0).fit(data)
    blend = fastrec.Blend([mf, *knn], normalize=normalize, weights=[0.5] + [0.5 / n_knn] * n_knn)
    blend.fit(data, fit_members=False)
    assert blend._pruning_plan() is not None
    users = np.r_[data.user_ids[:30], [10**9], data.user_ids[30:60]]  # an unknown user: dense scores
    u, _ = blend._known_users(users)
    dense = blend._combine([_dense_scores(m, u) for m in blend._members()], blend._user_support(u))
    for items in (None, data.item_ids[1::3]):
        ids, scores = blend.recommend(users, n=7, items=items, num_threads=2)
        excluded = (data.csr[np.maximum(u, 0)].toarray() != 0) & (u >= 0)[:, None]
        if items is not None:
            excluded[:, ~np.isin(data.item_ids, items)] = True
        expected_ids, expected_scores = dense_topk(dense, 7, dense_mask=excluded)
        np.testing.assert_allclose(scores, expected_scores, rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(ids, data.item_ids[expected_ids])


def test_pruned_path_is_only_taken_where_it_is_exact(seed, monkeypatch):
    monkeypatch.setattr("fastrec.mips.MAX_EXACT_SHARE", 1.0)
    data = fastrec.datasets.synthetic(120, 90, 2_000, kind="implicit", seed=seed)
    mf = fastrec.MatrixFactorization(24, 3, loss="bpr", random_state=0).fit(data)
    knn = fastrec.ItemKNN(k=10).fit(data)
    narrow = fastrec.MatrixFactorization(4, 3, loss="bpr", random_state=0).fit(data)

    def plan(members, **kwargs):
        blend = fastrec.Blend(members, weights=kwargs.pop("weights", [0.5] * len(members)), **kwargs)
        return blend.fit(data, fit_members=False)._pruning_plan()

    assert plan([mf, knn]) is not None
    assert plan([mf, knn], normalize="minmax") is None  # needs each row's min and max
    assert plan([mf, knn], method="rank") is None
    assert plan([mf, knn], weights=[0.0, 1.0]) is not None
    assert plan([mf, narrow, knn], weights=[0.3, 0.3, 0.4]) is not None  # linear members side by side
    assert plan([fastrec.Popularity().fit(data), knn]) is not None
    ncf = fastrec.NeuralCF(n_factors=4, layers=(8,), n_epochs=1, random_state=0).fit(data)
    assert plan([mf, ncf, knn], weights=[0.3, 0.3, 0.4]) is None  # not an inner product
    monkeypatch.setattr("fastrec.mips.MAX_EXACT_SHARE", 0.0)
    assert plan([mf, knn]) is None  # the bounds do not prune enough


def test_pruned_recommend_scores_content_items_like_the_dense_blend(seed, monkeypatch):
    """Items without interactions take their content neighbours' blended scores on the
    pruned path too (their vector and bonus are the neighbours' weighted means)."""
    from fastrec.models.blend import _dense_scores
    from fastrec.reference.topk import dense_topk

    monkeypatch.setattr("fastrec.mips.MAX_EXACT_SHARE", 1.0)
    data = _with_cold_items(seed)
    mf = fastrec.MatrixFactorization(24, 10, lr=0.02, loss="bpr", dtype=np.float64, random_state=0).fit(data)
    blend = fastrec.Blend([mf, fastrec.ItemKNN(k=10).fit(data)], weights=[0.6, 0.4]).fit(data, fit_members=False)
    assert blend.content_items_.size and blend._pruning_plan() is not None
    users = data.user_ids
    u, _ = blend._known_users(users)
    dense = blend._combine([_dense_scores(m, u) for m in blend._members()], blend._user_support(u))
    ids, scores = blend.recommend(users, n=6, num_threads=2)
    expected_ids, expected_scores = dense_topk(dense, 6, dense_mask=data.csr[u].toarray() != 0)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(ids, data.item_ids[expected_ids])
    assert np.isin(data.item_index(ids.ravel()), blend.content_items_).any()  # cold items do get in


@pytest.mark.parametrize("normalize", ["zscore", None])
def test_pruned_recommend_with_several_linear_members(seed, normalize, monkeypatch):
    """MF + MF + Popularity + item kNN: the linear members' vectors side by side,
    each scaled by its weight and normalisation; equal to ranking the dense blend."""
    from fastrec.models.blend import _dense_scores
    from fastrec.reference.topk import dense_topk

    monkeypatch.setattr("fastrec.mips.MAX_EXACT_SHARE", 1.0)
    data = fastrec.datasets.synthetic(200, 150, 4_000, kind="implicit", seed=seed)
    members = [fastrec.MatrixFactorization(24, 10, lr=0.02, loss="bpr", dtype=np.float64, random_state=0),
               fastrec.MatrixFactorization(6, 10, lr=0.02, loss="logistic", dtype=np.float64, random_state=1),
               fastrec.Popularity(), fastrec.ItemKNN(k=10)]
    members = [m.fit(data) for m in members]
    blend = fastrec.Blend(members, normalize=normalize, weights=[0.3, 0.2, 0.2, 0.3]).fit(data, fit_members=False)
    assert blend._pruning_plan() is not None
    users = data.user_ids[::3]
    u, _ = blend._known_users(users)
    dense = blend._combine([_dense_scores(m, u) for m in members], blend._user_support(u))
    ids, scores = blend.recommend(users, n=7, num_threads=2)
    expected_ids, expected_scores = dense_topk(dense, 7, dense_mask=data.csr[u].toarray() != 0)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(ids, data.item_ids[expected_ids])


def test_linear_scoring_gives_the_dense_scores(seed):
    ratings = make_interactions(30, 20, 0.3, seed=seed)
    clicks = make_interactions(30, 20, 0.3, implicit=True, seed=seed)
    for model, data in ((fastrec.MatrixFactorization(5, 3, random_state=0), ratings),
                        (fastrec.MatrixFactorization(5, 3, loss="bpr", biased=False, random_state=0), clicks),
                        (fastrec.Baseline(), ratings), (fastrec.Popularity(), clicks)):
        model.fit(data)
        key, users, items = model._linear_scoring()
        u = np.arange(data.n_users)
        np.testing.assert_allclose(users(u) @ np.asarray(items()).T, model._score_users(u), rtol=1e-6, atol=1e-6)
        assert model._linear_scoring()[0] is key  # stable until refit


def test_a_blend_pickles_after_its_pruned_search_is_cached(seed, monkeypatch):
    import pickle

    monkeypatch.setattr("fastrec.mips.MAX_EXACT_SHARE", 1.0)
    data = fastrec.datasets.synthetic(100, 80, 1_500, kind="implicit", seed=seed)
    members = [fastrec.MatrixFactorization(24, 3, loss="bpr", random_state=0), fastrec.Popularity(),
               fastrec.ItemKNN(k=5)]
    blend = fastrec.Blend(members, weights=[0.5, 0.2, 0.3]).fit(data)
    ids, scores = blend.recommend(data.user_ids[:10], n=5)
    assert blend._pruning_plan() is not None
    copy = pickle.loads(pickle.dumps(blend))
    again = copy.recommend(data.user_ids[:10], n=5)
    np.testing.assert_array_equal(again[0], ids)
    np.testing.assert_array_equal(again[1], scores)


def test_a_new_user_seeding_items_without_interactions_gets_their_content_neighbours(seed):
    """Cold start from seed items nobody interacted with: each stands in as its content
    neighbours (similarity weights summing to 1), which the members fold in; reported."""
    data = _with_cold_items(seed)
    blend = fastrec.Blend([fastrec.ItemKNN(k=10), fastrec.Popularity()], weights=[0.7, 0.3]).fit(data)
    cold = blend.content_items_[:2]
    ids, scores, details = blend.recommend_history(data.item_ids[cold], n=5, return_details=True)
    weights = blend.content_weights_.toarray()[:, :2].sum(axis=1)  # cold[:2] are its first columns
    neighbours = np.flatnonzero(weights)
    expected = blend._history_scores(neighbours, weights[neighbours])  # the neighbours as the history
    expected[cold] = -np.inf  # the seeds are excluded as seen
    np.testing.assert_array_equal(data.item_index(ids), np.lexsort((np.arange(30), -expected))[:5])
    np.testing.assert_allclose(scores, np.sort(expected)[::-1][:5], rtol=1e-6)
    assert details.known_user.all() and "content neighbours" in details.fallback
    popular, _ = blend.recommend_history([], n=5)
    assert not np.array_equal(ids, popular)  # not the no-history ranking


def test_rated_seed_items_without_interactions_pass_their_rating_to_neighbours(seed):
    import scipy.sparse as sp

    data = make_interactions(60, 30, 0.25, empty_items=3, seed=seed)
    data = data.with_item_features(sp.csr_array((np.random.default_rng(seed).random((30, 6)) < 0.4).astype(float)))
    blend = fastrec.Blend([fastrec.ItemKNN(k=10), fastrec.Baseline()]).fit(data)
    cold = blend.content_items_[0]
    warm = np.flatnonzero(data.item_counts > 0)[:2]
    codes, values = blend._through_content(np.sort(np.r_[warm, cold]),
                                           np.where(np.sort(np.r_[warm, cold]) == cold, 5.0, 2.0))
    neighbours = blend.content_weights_[:, [0]].indices
    assert set(neighbours) - set(warm) <= set(codes) and cold not in codes
    np.testing.assert_array_equal(values[np.isin(codes, warm)], 2.0)  # direct ratings kept
    np.testing.assert_allclose(values[~np.isin(codes, warm)], 5.0)  # the others take the seed's rating
    _, _, details = blend.recommend_history(data.item_ids[[cold]], [5.0], return_details=True)
    assert "content neighbours" in details.fallback
    _, _, plain = blend.recommend_history(data.item_ids[warm], [4.0, 3.0], return_details=True)
    assert plain.fallback == "the history"
