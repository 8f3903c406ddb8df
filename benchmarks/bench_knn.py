"""Neighbourhood models: fastrec vs scikit-surprise (ml-100k u1, fit + predicting u1.test),
vs implicit's ItemItemRecommender (top-10 for every user), and the kernels vs their
NumPy references.

Run: pytest benchmarks/bench_knn.py --benchmark-only --benchmark-columns=min,mean,rounds
(FASTREC_BENCH_10M=1 runs the top-10 comparison on 10M ratings instead of 1M.)
"""
import os

import numpy as np
import pytest
import scipy.sparse as sp

import fastrec
from fastrec.metrics import rmse
from fastrec.testing import surprise_trainset

SURPRISE_ALGOS = {"none": "KNNBasic", "mean": "KNNWithMeans", "zscore": "KNNWithZScore",
                  "baseline": "KNNBaseline"}
SURPRISE_METRICS = {"cosine": "corated_cosine", "msd": "msd", "pearson": "pearson",
                    "pearson_baseline": "pearson_baseline"}
COMBOS = [(center, name, based) for center in SURPRISE_ALGOS for name in SURPRISE_METRICS
          for based in ("item", "user")]
COMBO_IDS = [f"{SURPRISE_ALGOS[c]}-{n}-{b}" for c, n, b in COMBOS]


@pytest.fixture(scope="module")
def u1(ml100k_path):
    return fastrec.datasets.load_movielens_split(ml100k_path, "u1")


@pytest.fixture(scope="module")
def trainset(u1):
    pytest.importorskip("surprise")
    pytest.importorskip("pandas")
    return surprise_trainset(u1.train)


def _group(center, name, based):
    return f"ml-100k u1 {SURPRISE_ALGOS[center]} {name} {based}-based: fit + predict 20k"


@pytest.mark.parametrize("center, name, based", COMBOS, ids=COMBO_IDS)
def test_fastrec_knn(benchmark, u1, center, name, based):
    users, items, ratings, _ = u1.test.to_arrays()
    cls = fastrec.ItemKNN if based == "item" else fastrec.UserKNN

    def fit_predict():
        model = cls(metric=SURPRISE_METRICS[name], center=center, num_threads=2).fit(u1.train)
        return model.predict(users, items)

    benchmark.group = _group(center, name, based)
    estimates = benchmark.pedantic(fit_predict, rounds=5, warmup_rounds=1)
    benchmark.extra_info["rmse"] = round(rmse(ratings, estimates), 5)


@pytest.mark.parametrize("center, name, based", COMBOS, ids=COMBO_IDS)
def test_surprise_knn(benchmark, u1, trainset, center, name, based):
    import surprise

    users, items, ratings, _ = u1.test.to_arrays()
    pairs = list(zip(users.tolist(), items.tolist(), strict=True))
    algo = getattr(surprise, SURPRISE_ALGOS[center])(
        sim_options={"name": name, "user_based": based == "user"}, verbose=False)

    def fit_predict():
        algo.fit(trainset)
        return np.array([algo.predict(u, i).est for u, i in pairs])

    benchmark.group = _group(center, name, based)
    estimates = benchmark.pedantic(fit_predict, rounds=1)
    benchmark.extra_info["rmse"] = round(rmse(ratings, estimates), 5)


# ------------------------------------------------------- the estimate kernel alone
@pytest.fixture(scope="module")
def estimate_inputs(u1):
    """ItemKNN msd's similarity and the u1.test queries grouped by item."""
    model = fastrec.ItemKNN(metric="msd").fit(u1.train)
    users, items, _, _ = u1.test.to_arrays()
    u, i = u1.train.user_index(users), u1.train.item_index(items)
    keep = (u >= 0) & (i >= 0)
    return model, i[keep], u[keep]


def test_estimate_kernel(benchmark, estimate_inputs, num_threads):
    model, x, y = estimate_inputs
    model.num_threads = num_threads
    benchmark.group = "kNN estimate kernel, ml-100k u1.test, ItemKNN msd k=40"
    benchmark(model._rating_estimates, y, x)


def test_estimate_reference(benchmark, estimate_inputs):
    from fastrec.reference.knn import knn_estimate

    model, x, y = estimate_inputs
    yr = sp.csr_array((model._yr_dev, model._yr_indices, model._yr_indptr))
    benchmark.group = "kNN estimate kernel, ml-100k u1.test, ItemKNN msd k=40"
    mean, count = benchmark.pedantic(knn_estimate, args=(model.similarity_, yr, x, y, model.k), rounds=2)
    order = np.argsort(x, kind="stable")
    starts = np.flatnonzero(np.r_[True, x[order][1:] != x[order][:-1]])
    expected = model._neighbour_means(x[order][starts], starts, np.r_[starts[1:], x.size], starts,
                                      y[order], x.size)[0]
    np.testing.assert_allclose(mean[order], expected, rtol=1e-10)


# ------------------------------------------------ implicit feedback: top-10 for all
N_RATINGS = 10_000_000 if os.environ.get("FASTREC_BENCH_10M") else 1_000_000
TOP_N, K = 10, 50


@pytest.fixture(scope="module")
def implicit_data():
    return fastrec.datasets.synthetic(100_000, 20_000, N_RATINGS, kind="implicit", seed=0)


@pytest.fixture(scope="module")
def fitted(implicit_data):
    return fastrec.ItemKNN(k=K, dtype=np.float32, num_threads=2).fit(implicit_data)


def _top_group():
    return f"item cosine k={K}: top-{TOP_N} for all 100k users, seen masked [{N_RATINGS // 10**6}M, 2 threads]"


def test_fastrec_recommend_all(benchmark, implicit_data, fitted):
    benchmark.group = _top_group()
    ids, scores = benchmark.pedantic(fitted.recommend, args=(implicit_data.user_ids, TOP_N),
                                     kwargs={"num_threads": 2}, rounds=3, warmup_rounds=1)
    assert (ids[:, 0] >= 0).mean() > 0.99


@pytest.mark.filterwarnings("ignore:Method expects CSR input")
def test_implicit_recommend_all(benchmark, implicit_data, fitted):
    nn = pytest.importorskip("implicit.nearest_neighbours")
    user_items = sp.csr_matrix(implicit_data.csr, dtype=np.float32)
    model = nn.CosineRecommender(K=K + 1, num_threads=2)  # implicit keeps the item itself
    model.fit(user_items, show_progress=False)
    users = np.arange(user_items.shape[0])
    benchmark.group = _top_group()
    their_ids, their_scores = benchmark.pedantic(
        model.recommend, args=(users, user_items),
        kwargs={"N": TOP_N, "filter_already_liked_items": True}, rounds=3, warmup_rounds=1)
    ids, scores = fitted.recommend(implicit_data.user_ids, TOP_N)
    found = their_scores > 0
    # implicit breaks ties among equally similar neighbours its own way: nearly all agree
    assert np.mean(np.isclose(scores[found], their_scores[found], rtol=1e-4)) > 0.99
    benchmark.extra_info["same_ids"] = float(np.mean(ids[found] == their_ids[found]))


def test_reference_recommend_2k_users(benchmark, implicit_data, fitted):
    from fastrec.reference.knn import product_topk

    ratings, sim = fitted._sparse_factors()
    users = np.arange(2000)
    benchmark.group = f"item cosine k={K}: top-{TOP_N} for 2,000 users [{N_RATINGS // 10**6}M]"
    ids, _ = benchmark.pedantic(product_topk, args=(ratings, sim, users, TOP_N),
                                kwargs={"excluded": implicit_data.csr}, rounds=1)
    expected, _ = fitted.recommend(users, TOP_N)
    assert np.mean(ids == expected) > 0.99


def test_fastrec_recommend_2k_users(benchmark, fitted):
    benchmark.group = f"item cosine k={K}: top-{TOP_N} for 2,000 users [{N_RATINGS // 10**6}M]"
    benchmark(fitted.recommend, np.arange(2000), TOP_N, num_threads=2)
