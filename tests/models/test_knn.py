"""ItemKNN / UserKNN: kernels against their references, the models against a per-pair
oracle of Surprise's formulas and against scikit-surprise and implicit themselves."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastrec
from fastrec._kernels import knn as kernels
from fastrec.models.knn import CENTERS
from fastrec.reference import knn as reference
from fastrec.reference.similarity import rows_to_csr
from fastrec.testing import make_interactions, surprise_trainset

MODELS = [fastrec.ItemKNN, fastrec.UserKNN]
MODEL_IDS = ["item", "user"]


# ------------------------------------------------------------------ kernels
def _random_sim(n, density, rng, dtype, ties=False):
    """A similarity without diagonal, rows by score descending (ties: lower id), as
    fastrec.similarity returns them; ``ties`` draws from a few values, 1.0 included."""
    mask = rng.random((n, n)) < density
    np.fill_diagonal(mask, False)
    values = rng.choice([1.0, 0.25, 0.5, -0.5], size=(n, n)) if ties else rng.uniform(-0.5, 1.0, (n, n))
    rows, cols = np.nonzero(mask)
    return rows_to_csr(rows, cols, values[rows, cols].astype(dtype), n, None)


def _run_estimate(sim, yr, x, y, k, index_dtype, num_threads):
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]]) if x.size else np.zeros(0, np.int64)
    stops = np.r_[starts[1:], x.size].astype(np.int64)
    mean, count = np.empty(x.size), np.empty(x.size, dtype=np.int32)
    kernels.knn_estimate(sim.data, sim.indices.astype(index_dtype), sim.indptr.astype(np.int64),
                         yr.data.astype(np.float64), yr.indices.astype(index_dtype),
                         yr.indptr.astype(np.int64), xs[starts].astype(np.int64), starts.astype(np.int64),
                         stops, starts.astype(np.int64), y[order].astype(np.int64), k, 1.0,
                         mean, count, num_threads)
    out_mean, out_count = np.empty_like(mean), np.empty_like(count)
    out_mean[order], out_count[order] = mean, count
    return out_mean, out_count


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("k", [1, 3, 1000])
def test_knn_estimate_matches_reference(k, ties, dtype, index_dtype, num_threads, seed):
    rng = np.random.default_rng(seed)
    n_x, n_y = 40, 30
    sim = _random_sim(n_x, 0.4, rng, dtype, ties)
    yr = sp.random_array((n_y, n_x), density=0.3, format="csr", rng=rng)
    yr.data = rng.standard_normal(yr.nnz)
    yr = sp.csr_array(yr.toarray() * (np.arange(n_y) < n_y - 3)[:, None])  # empty rows y
    x = rng.integers(0, n_x, 200)
    y = rng.integers(0, n_y, 200)
    mean, count = _run_estimate(sim, yr, x, y, k, index_dtype, num_threads)
    expected_mean, expected_count = reference.knn_estimate(sim, yr, x, y, k)
    np.testing.assert_array_equal(count, expected_count)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12, atol=1e-12)
    assert (count[np.diff(yr.indptr)[y] == 0] == 0).all()


def test_knn_estimate_handles_empty_input():
    sim = sp.csr_array((3, 3))
    yr = sp.csr_array((2, 3))
    mean, count = _run_estimate(sim, yr, np.zeros(0, np.int64), np.zeros(0, np.int64), 5, np.int32, 2)
    assert mean.size == count.size == 0
    mean, count = _run_estimate(sim, yr, np.array([0, 2]), np.array([1, 0]), 5, np.int32, 2)
    assert count.tolist() == [0, 0] and mean.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("n", [0, 3, 50])
@pytest.mark.parametrize("positive", [False, True], ids=["by-flag", "by-value"])
def test_product_topk_matches_reference(n, positive, dtype, index_dtype, num_threads, seed):
    """Both listings of touched columns: flags, and (every product > 0) their values."""
    from fastrec.mips import products_positive

    rng = np.random.default_rng(seed)
    x = sp.random_array((25, 30), density=0.2, format="csr", rng=rng, dtype=dtype)
    t = _random_sim(30, 0.3, rng, dtype, ties=True)
    t.data = abs(t.data)  # ties among positive scores
    if not positive:
        x.data[::3] *= -1  # and cancellations to 0
    assert products_positive(x.data, t.data) == positive
    rows = np.r_[np.arange(25), -1, 3]
    excluded = sp.random_array((25, 30), density=0.2, format="csr", rng=rng)
    excluded.sort_indices()
    column_mask = rng.random(30) < 0.1
    ids = np.empty((rows.size, n), dtype=np.int64)
    scores = np.empty((rows.size, n), dtype=dtype)
    kernels.product_topk(x.data, x.indices.astype(index_dtype), x.indptr.astype(np.int64),
                         t.data, t.indices.astype(index_dtype), t.indptr.astype(np.int64),
                         rows.astype(np.int64), excluded.indptr.astype(np.int64),
                         excluded.indices.astype(index_dtype), column_mask.astype(np.uint8), 30,
                         ids, scores, positive, num_threads)
    expected_ids, expected_scores = reference.product_topk(x, t, rows, n, excluded, column_mask)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert (ids[-2] == -1).all()


def test_pair_dot_matches_reference(index_dtype, num_threads, seed):
    rng = np.random.default_rng(seed)
    a = sp.random_array((20, 15), density=0.3, format="csr", rng=rng)
    b = sp.random_array((10, 15), density=0.3, format="csr", rng=rng)
    a_rows = np.r_[rng.integers(0, 20, 50), -1]
    b_rows = np.r_[rng.integers(0, 10, 50), 0]
    out = np.empty(a_rows.size)
    kernels.pair_dot(a.data, a.indices.astype(index_dtype), a.indptr.astype(np.int64),
                     b.data, b.indices.astype(index_dtype), b.indptr.astype(np.int64),
                     a_rows.astype(np.int64), b_rows.astype(np.int64), out, num_threads)
    np.testing.assert_allclose(out, reference.pair_dot(a, b, a_rows, b_rows), rtol=1e-12, atol=1e-15)
    assert out[-1] == 0.0


# ----------------------------------------------- models vs a per-pair oracle
def _oracle(model, data, user, item):
    """Surprise's estimate() for one known pair, in plain Python (unclipped)."""
    item_based = isinstance(model, fastrec.ItemKNN)
    dense = data.csr.toarray()
    rated = dense != 0
    x, y = (item, user) if item_based else (user, item)
    sim = model.similarity_.toarray()
    np.fill_diagonal(sim, 1.0)
    if item_based:
        neighbours = [(sim[x, j], j, dense[user, j]) for j in np.flatnonzero(rated[user])]
    else:
        neighbours = [(sim[x, v], v, dense[v, item]) for v in np.flatnonzero(rated[:, item])]
    neighbours = sorted((s, -nb, r) for s, nb, r in neighbours if s > 0)[::-1][:model.k]
    means, sigmas = model.means_, model.sigmas_
    bx, by = ((model.item_bias_, model.user_bias_) if item_based else (model.user_bias_, model.item_bias_))
    sum_s = sum(s for s, _, _ in neighbours)
    if model.center == "none":
        devs = [r for _, _, r in neighbours]
        base, scale = 0.0, 1.0
    elif model.center in ("mean", "zscore"):
        zscore = model.center == "zscore"
        devs = [(r - means[-nb]) / (sigmas[-nb] if zscore else 1.0) for _, nb, r in neighbours]
        base, scale = means[x], sigmas[x] if zscore else 1.0
    else:
        devs = [r - (model.global_mean_ + bx[-nb] + by[y]) for _, nb, r in neighbours]
        base, scale = model.global_mean_ + bx[x] + by[y], 1.0
    if len(neighbours) < max(model.min_k, 1):
        return model.global_mean_ if model.center == "none" else base
    return base + scale * sum(s * d for (s, _, _), d in zip(neighbours, devs)) / sum_s


@pytest.mark.parametrize("center", CENTERS)
@pytest.mark.parametrize("metric", ["pearson", "msd", "cosine", "pearson_baseline"])
@pytest.mark.parametrize("cls", MODELS, ids=MODEL_IDS)
def test_predictions_match_the_oracle(cls, metric, center, seed):
    data = make_interactions(40, 30, 0.25, empty_users=2, empty_items=2, seed=seed)
    model = cls(k=4, min_k=2, metric=metric, center=center, clip=False, num_threads=2).fit(data)
    users, items = np.meshgrid(np.arange(38), np.arange(28), indexing="ij")
    users, items = users.ravel(), items.ravel()
    got = model.predict(users, items)
    expected = [_oracle(model, data, u, i) for u, i in zip(users, items)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", MODELS, ids=MODEL_IDS)
def test_one_and_two_threads_give_identical_models(cls):
    data = make_interactions(60, 50, 0.2, seed=4)
    users, items = np.arange(60).repeat(50), np.tile(np.arange(50), 60)
    results = []
    for threads in (1, 2):
        model = cls(k=5, metric="pearson", center="mean", num_threads=threads).fit(data)
        results.append((model.predict(users, items), model.recommend(np.arange(60), 7, num_threads=threads)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1][0], results[1][1][0])
    np.testing.assert_array_equal(results[0][1][1], results[1][1][1])


@pytest.mark.parametrize("center", CENTERS)
@pytest.mark.parametrize("cls", MODELS, ids=MODEL_IDS)
def test_recommend_ranks_the_unclipped_predictions(cls, center):
    data = make_interactions(30, 25, 0.3, seed=2)
    model = cls(k=3, metric="pearson", center=center, clip=False).fit(data)
    users = np.arange(30)
    ids, scores = model.recommend(users, 5)
    dense = model.predict(users.repeat(25), np.tile(np.arange(25), 30)).reshape(30, 25)
    expected_ids, expected_scores = fastrec.top_k(dense, 5, exclude=data.csr)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-12)


@pytest.mark.parametrize("cls", MODELS, ids=MODEL_IDS)
def test_unknown_ids_fall_back_and_are_reported(cls):
    data = make_interactions(20, 15, 0.3, empty_users=1, empty_items=1, seed=1)
    for center, expected in (("none", None), ("baseline", "baseline")):
        model = cls(k=3, center=center).fit(data)
        est, details = model.predict([0, 19, 500, 0], [14, 0, 0, 999], return_details=True)
        assert details.known_user.tolist() == [True, False, False, True]
        assert details.known_item.tolist() == [False, True, True, False]
        assert details.n_neighbors.tolist() == [0, 0, 0, 0]
        if expected is None:
            np.testing.assert_allclose(est, model.global_mean_)
        else:
            assert est[0] == pytest.approx(model.global_mean_ + model.user_bias_[0])
    ids, _ = cls(k=3).fit(data).recommend([500], 3)
    popular = np.argsort(-data.item_counts, kind="stable")[:3]
    assert ids[0].tolist() == popular.tolist()


@pytest.mark.parametrize("cls", MODELS, ids=MODEL_IDS)
def test_min_k_and_k_larger_than_the_neighbourhood(cls):
    data = make_interactions(25, 20, 0.3, seed=3)
    users, items = np.arange(25).repeat(20), np.tile(np.arange(20), 25)
    small = cls(k=1000, min_k=1, metric="pearson").fit(data)
    _, details = small.predict(users, items, return_details=True)
    assert details.n_neighbors.max() < 1000
    strict = cls(k=1000, min_k=10**6, metric="pearson").fit(data)
    np.testing.assert_allclose(strict.predict(users, items), data.values.mean())


@pytest.mark.parametrize("center", CENTERS)
@pytest.mark.parametrize("cls", MODELS, ids=MODEL_IDS)
def test_explain_adds_up_to_the_estimate(cls, center):
    data = make_interactions(30, 25, 0.3, seed=5)
    model = cls(k=4, metric="pearson", center=center, clip=False).fit(data)
    for user, item in ((0, 3), (5, 7), (12, 1)):
        why = model.explain(user, item, n=100)
        assert why.estimate == pytest.approx(why.base + why.contribution.sum(), abs=1e-12)
        assert len(why.neighbors) <= 4 and (np.diff(why.similarity) <= 0).all()
    assert len(model.explain(0, 3, n=2).neighbors) <= 2


@pytest.mark.parametrize("cls", MODELS, ids=MODEL_IDS)
def test_implicit_explain_adds_up_to_the_score(cls):
    data = make_interactions(30, 25, 0.3, implicit=True, seed=5)
    model = cls(k=6).fit(data)
    for user, item in ((0, 3), (5, 7), (12, 1)):
        why = model.explain(user, item, n=100)
        assert why.estimate == pytest.approx(why.contribution.sum(), abs=1e-12)


@pytest.mark.parametrize("center", ["none", "mean", "zscore"])
def test_history_of_a_training_user_scores_like_the_user(center):
    data = make_interactions(30, 25, 0.3, seed=6)
    model = fastrec.ItemKNN(k=4, metric="pearson", center=center, clip=False).fit(data)
    for user in (0, 7):
        row = data.csr[[user]]
        got_ids, got_scores = model.recommend_history(row.indices, row.data, n=6)
        ids, scores = model.recommend([user], 6)
        np.testing.assert_array_equal(got_ids, ids[0])
        np.testing.assert_allclose(got_scores, scores[0], rtol=1e-12)
        targets = np.arange(25)
        np.testing.assert_allclose(model.predict_history(row.indices, row.data, targets),
                                   model.predict(np.full(25, user), targets), rtol=1e-12)


def test_history_of_a_training_user_scores_like_the_user_on_implicit_data():
    data = make_interactions(30, 25, 0.3, implicit=True, seed=6)
    model = fastrec.ItemKNN(k=4).fit(data)
    row = data.csr[[3]]
    got_ids, got_scores = model.recommend_history(row.indices, n=5)
    ids, scores = model.recommend([3], 5)
    np.testing.assert_array_equal(got_ids, ids[0])
    np.testing.assert_allclose(got_scores, scores[0], rtol=1e-6)


def test_history_checks_its_input():
    model = fastrec.ItemKNN(k=3).fit(make_interactions(20, 15, 0.3))
    with pytest.raises(ValueError, match="pass the history's ratings"):
        model.recommend_history([1, 2])
    with pytest.raises(ValueError, match="more than once"):
        model.recommend_history([1, 1], [3, 4])
    with pytest.raises(ValueError, match="ratings must be finite"):
        model.recommend_history([1, 2], [3, np.nan])
    ids, _ = model.recommend_history([], [], n=3)  # an empty history: nothing to go on
    assert ids.shape == (3,)


@pytest.mark.parametrize("cls", MODELS, ids=MODEL_IDS)
def test_implicit_recommend_matches_the_sparse_product(cls, seed):
    data = make_interactions(40, 30, 0.2, implicit=True, seed=seed)
    model = cls(k=5, num_threads=2).fit(data)
    users = np.r_[np.arange(40)]
    ids, scores = model.recommend(users, 6)
    sim = model.similarity_
    ratings = sp.csr_array(data.csr, dtype=np.float64)
    x, t = (ratings, sim) if cls is fastrec.ItemKNN else (sim, ratings)
    expected_ids, expected_scores = reference.product_topk(x, t, users, 6, excluded=data.csr)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-12)
    pairs = model.predict(users.repeat(30), np.tile(np.arange(30), 40)).reshape(40, 30)
    found = ids >= 0
    np.testing.assert_allclose(np.take_along_axis(pairs, np.maximum(ids, 0), 1)[found], scores[found],
                               rtol=1e-12)


def test_similar_items_and_users():
    data = make_interactions(30, 20, 0.3, seed=8)
    items = fastrec.ItemKNN(metric="pearson").fit(data)
    ids, scores = items.similar_items([0, 5, 999], n=4)
    assert ids.shape == (3, 4) and (ids[2] == -1).all()
    row = items.similarity_[[0]]
    assert ids[0].tolist() == row.indices[:4].tolist()
    users = fastrec.UserKNN(metric="pearson").fit(data)
    ids, scores = users.similar_users([1], n=3)
    assert ids[0].tolist() == users.similarity_[[1]].indices[:3].tolist()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(k=0), ValueError, "k must be >= 1"),
    (dict(min_k=-1), ValueError, "min_k must be >= 0"),
    (dict(center="median"), ValueError, "center must be one of"),
    (dict(metric="euclid"), ValueError, "metric must be one of"),
    (dict(max_neighbors=0), ValueError, "max_neighbors must be >= 1"),
    (dict(dtype=np.int64), TypeError, "dtype must be float32 or float64"),
    (dict(baseline_options={"regu": 3}), TypeError, "baseline_options"),
    (dict(baseline_options={"method": "newton"}), ValueError, "method must be one of"),
    (dict(shrinkage=-2.0), ValueError, "shrinkage must be"),
])
def test_rejects_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastrec.ItemKNN(**kwargs).fit(make_interactions())


def test_rating_centres_need_ratings():
    with pytest.raises(ValueError, match="needs explicit ratings"):
        fastrec.UserKNN(center="mean").fit(make_interactions(implicit=True))
    with pytest.raises(ValueError, match="needs explicit ratings"):
        fastrec.UserKNN(metric="pearson").fit(make_interactions(implicit=True))


def test_max_neighbors_bounds_the_stored_similarity():
    data = make_interactions(40, 30, 0.3, seed=9)
    model = fastrec.ItemKNN(max_neighbors=3, metric="pearson").fit(data)
    assert np.diff(model.similarity_.indptr).max() <= 3
    full = fastrec.ItemKNN(metric="pearson").fit(data)
    assert full.similarity_.nnz > model.similarity_.nnz


def test_float32_similarities_stay_close():
    data = make_interactions(40, 30, 0.3, seed=9)
    users, items = np.arange(40).repeat(30), np.tile(np.arange(30), 40)
    single = fastrec.ItemKNN(metric="pearson", dtype=np.float32).fit(data).predict(users, items)
    double = fastrec.ItemKNN(metric="pearson").fit(data).predict(users, items)
    assert np.mean(np.abs(single - double) < 1e-5) > 0.99


# ---------------------------------------------------------------- peers
SURPRISE_ALGOS = {"none": "KNNBasic", "mean": "KNNWithMeans", "zscore": "KNNWithZScore",
                  "baseline": "KNNBaseline"}
SURPRISE_METRICS = {"cosine": "corated_cosine", "msd": "msd", "pearson": "pearson",
                    "pearson_baseline": "pearson_baseline"}


@pytest.fixture(scope="module")
def ml100k_u1(ml100k_path):
    pytest.importorskip("surprise")
    pytest.importorskip("pandas")
    train, test = fastrec.datasets.load_movielens_split(ml100k_path, "u1")
    return train, test, surprise_trainset(train)


@pytest.mark.parametrize("user_based", [False, True], ids=MODEL_IDS)
@pytest.mark.parametrize("name", list(SURPRISE_METRICS))
@pytest.mark.parametrize("center", list(SURPRISE_ALGOS))
def test_matches_surprise_on_ml100k(ml100k_u1, center, name, user_based):
    import surprise

    train, test, trainset = ml100k_u1
    algo = getattr(surprise, SURPRISE_ALGOS[center])(
        sim_options={"name": name, "user_based": user_based}, verbose=False).fit(trainset)
    users, items, ratings, _ = test.to_arrays()
    theirs = np.array([algo.predict(u, i).est for u, i in zip(users.tolist(), items.tolist())])
    cls = fastrec.UserKNN if user_based else fastrec.ItemKNN
    ours = cls(metric=SURPRISE_METRICS[name], center=center).fit(train).predict(users, items)
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
    rmse = fastrec.metrics.rmse
    assert round(rmse(ratings, ours), 4) == round(rmse(ratings, theirs), 4)


@pytest.mark.filterwarnings("ignore:Method expects CSR input")
def test_matches_implicit_item_item_recommend():
    nn = pytest.importorskip("implicit.nearest_neighbours")
    rng = np.random.default_rng(11)
    # real-valued confidences: no tied similarities, whose order implicit leaves open
    counts = sp.random_array((150, 60), density=0.1, format="csr", rng=rng,
                             data_sampler=lambda size: rng.uniform(1, 5, size))
    data = fastrec.Interactions.from_sparse(counts, implicit=True)
    theirs = nn.CosineRecommender(K=11)  # implicit counts the item itself among its K
    theirs.fit(sp.csr_matrix(data.csr), show_progress=False)
    users = np.arange(150)
    their_ids, their_scores = theirs.recommend(users, sp.csr_matrix(data.csr), N=5,
                                               filter_already_liked_items=True)
    ids, scores = fastrec.ItemKNN(k=10).fit(data).recommend(users, 5)
    keep = their_scores > 0
    np.testing.assert_allclose(scores[keep], their_scores[keep], rtol=1e-5)
    np.testing.assert_array_equal(ids[keep], their_ids[keep])


@pytest.mark.parametrize("metric", sorted(fastrec.similarity.METRICS))
def test_similarity_to_history_is_the_trained_row(metric):
    implicit = metric in ("cosine", "jaccard", "tfidf", "bm25")
    data = make_interactions(40, 30, 0.3, implicit=implicit, seed=12)
    full = fastrec.similarity.user_similarity(data, metric, None, dtype=np.float64).toarray()
    for user in (0, 9):
        row = data.csr[[user]]
        users, scores = fastrec.similarity.similarity_to_history(data, metric, row.indices.astype(np.int64),
                                                                 row.data)
        got = np.zeros(40)
        got[users] = scores
        got[user] = 0.0  # the history is this very user: leave its self-similarity out
        np.testing.assert_allclose(got, full[user], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("center", CENTERS)
def test_user_based_history_scores_like_the_user(center):
    data = make_interactions(40, 30, 0.3, seed=13)
    model = fastrec.UserKNN(k=5, metric="pearson_baseline", center=center, clip=False).fit(data)
    for user in (2, 11):
        row = data.csr[[user]]
        unrated = np.setdiff1d(np.arange(30), row.indices)  # self is a neighbour only where it rated
        got = model.predict_history(row.indices, row.data, unrated)
        np.testing.assert_allclose(got, model.predict(np.full(unrated.size, user), unrated), rtol=1e-10)
        ids, scores = model.recommend_history(row.indices, row.data, n=5)
        expected_ids, expected_scores = model.recommend([user], 5)
        np.testing.assert_array_equal(ids, expected_ids[0])
        np.testing.assert_allclose(scores, expected_scores[0], rtol=1e-10)


def test_user_based_history_on_implicit_data():
    data = make_interactions(40, 30, 0.3, implicit=True, seed=14)
    model = fastrec.UserKNN(k=6).fit(data)
    row = data.csr[[4]]
    scores = model.predict_history(row.indices, None, np.arange(30))
    assert scores.shape == (30,) and (scores >= 0).all() and scores.max() > 0


def test_product_dense_matches_reference(seed, dtype, index_dtype, num_threads):
    import scipy.sparse as sp

    from fastrec._kernels.knn import product_dense
    from fastrec.reference.knn import product_dense as reference

    x = sp.random(30, 20, density=0.2, format="csr", random_state=seed, dtype=dtype)
    t = sp.random(20, 25, density=0.3, format="csr", random_state=seed + 1, dtype=dtype)
    rows = np.array([0, 5, -1, 29, 5, 12], dtype=np.int64)
    got = np.zeros((rows.size, 25))
    product_dense(x.data, x.indices.astype(index_dtype), x.indptr.astype(np.int64), t.data,
                  t.indices.astype(index_dtype), t.indptr.astype(np.int64), rows, got, num_threads)
    expected = reference(x, t, rows, np.zeros((rows.size, 25)))
    np.testing.assert_allclose(got, expected, rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert not got[2].any()
