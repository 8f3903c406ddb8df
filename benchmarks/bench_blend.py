"""Fusion.

Accuracy: 5-fold cross-validation on MovieLens 100k; each member's RMSE and the rating
blend's (feature-weighted stacking learned on 10% of each training fold, members refitted
on all of it).
Speed: top-10 for every user of synthetic 10M ratings (FASTREC_BENCH_10M=1; 1M
otherwise), a 64-factor MF alone (pruned search, and the whole product) and blended with
item kNN, against implicit's ALS ``recommend`` over all users when implicit is installed;
the pruned search against its NumPy twin.

Run: pytest benchmarks/bench_blend.py --benchmark-only --benchmark-columns=min,mean,rounds -s
"""
import os

import numpy as np
import pytest

import fastrec
from fastrec.metrics import rmse
from fastrec.model_selection import KFold


def members():
    return [
        ("baseline", fastrec.Baseline()),
        ("item-knn", fastrec.ItemKNN(k=40, metric="pearson_baseline", center="baseline")),
        ("user-knn", fastrec.UserKNN(k=40, metric="pearson_baseline", center="baseline")),
        ("svd", fastrec.MatrixFactorization(100, 20, random_state=0)),
        ("svd-200", fastrec.MatrixFactorization(200, 60, reg=0.05, random_state=0)),
        ("neumf", fastrec.NeuralCF(loss="mse", lr=0.005, reg=0.01, random_state=0)),
    ]


def five_fold(data):
    per_fold = []
    for train, test in KFold(5, random_state=0).split(data):
        blend = fastrec.Blend(members(), random_state=0).fit(train)
        users, items, ratings, _ = test.to_arrays()
        row = {name: rmse(ratings, model.predict(users, items)) for name, model in blend.models}
        row["blend"] = rmse(ratings, blend.predict(users, items))
        per_fold.append(row)
    return {name: float(np.mean([row[name] for row in per_fold])) for name in per_fold[0]}


def test_blend_accuracy_ml100k(benchmark, ml100k_path):
    data = fastrec.datasets.load_movielens(ml100k_path)
    benchmark.group = "blend: ml-100k 5-fold (fit every member and the weights)"
    means = benchmark.pedantic(five_fold, args=(data,), rounds=1)
    benchmark.extra_info.update(means)
    print("\n5-fold RMSE: " + ", ".join(f"{name} {value:.4f}" for name, value in means.items()))
    assert means["blend"] < min(value for name, value in means.items() if name != "blend")
    assert means["blend"] <= 0.905  # the target


SIZE = (100_000, 20_000, 10_000_000) if os.environ.get("FASTREC_BENCH_10M") else (100_000, 20_000, 1_000_000)
ALL_USERS = "top-10 for every user: synthetic {:,} ratings, 2 threads".format(SIZE[2])


@pytest.fixture(scope="module")
def clicks():
    return fastrec.datasets.synthetic(*SIZE, seed=0).to_implicit()


@pytest.fixture(scope="module")
def fitted(clicks):
    mf = fastrec.MatrixFactorization(64, 5, lr=0.05, loss="bpr", num_threads=2, random_state=0).fit(clicks)
    knn = fastrec.ItemKNN(k=50, num_threads=2).fit(clicks)
    blend = fastrec.Blend([("mf", mf), ("knn", knn)], weights=[0.5, 0.5], num_threads=2)
    return mf, blend.fit(clicks, fit_members=False)


def test_mf_recommend_all(benchmark, clicks, fitted):
    benchmark.group = ALL_USERS
    mf, _ = fitted
    users = clicks.user_ids
    # a warm-up round builds the search's index (once per fitted model), then the minimum of 5
    benchmark.pedantic(mf.recommend, args=(users,), kwargs={"n": 10, "num_threads": 2}, rounds=5,
                       warmup_rounds=1)


def test_mf_recommend_all_full_product(benchmark, clicks, fitted):
    """The same, through the whole product (BLAS blocks + the shared top-k), as before
    the pruned search."""
    benchmark.group = ALL_USERS
    mf, _ = fitted
    mf._scoring_index = lambda: None  # the model's switch to the dense path
    try:
        benchmark.pedantic(mf.recommend, args=(clicks.user_ids,), kwargs={"n": 10, "num_threads": 2}, rounds=2)
    finally:
        del mf._scoring_index


def test_pruned_search_vs_reference(benchmark, fitted):
    """The pruned kernel against its NumPy twin (the whole product in double, then top-k)
    on 1,000 users, same answer checked first."""
    from fastrec.reference.mips import inner_product_topk

    mf, _ = fitted
    index = mf._scoring_index()
    users = mf._users_for_scoring(np.arange(1000))
    ids, scores, n_exact = index.topk(users, 10, num_threads=2)
    expected_ids, expected_scores = inner_product_topk(users, index.items, 10)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    assert (ids == expected_ids).mean() > 0.999  # float32 near-ties may swap
    benchmark.group = "pruned top-10 vs the NumPy reference, 1,000 users"
    benchmark.extra_info["exact scores per user"] = n_exact / 1000
    benchmark.pedantic(index.topk, args=(users, 10), kwargs={"num_threads": 2}, rounds=5)


def test_pruned_search_reference(benchmark, fitted):
    from fastrec.reference.mips import inner_product_topk

    mf, _ = fitted
    index = mf._scoring_index()
    users = mf._users_for_scoring(np.arange(1000))
    benchmark.group = "pruned top-10 vs the NumPy reference, 1,000 users"
    benchmark.pedantic(inner_product_topk, args=(users, index.items, 10), rounds=2)


def test_blend_recommend_all(benchmark, clicks, fitted):
    benchmark.group = ALL_USERS
    _, blend = fitted
    # a warm-up round builds the search's plan and index (once per fitted blend), as for the MF
    benchmark.pedantic(blend.recommend_all, kwargs={"n": 10}, rounds=5, warmup_rounds=1)


def test_implicit_als_recommend_all(benchmark, clicks):
    implicit = pytest.importorskip("implicit")
    from threadpoolctl import threadpool_limits

    benchmark.group = ALL_USERS
    import scipy.sparse as sp

    user_items = sp.csr_matrix(clicks.csr, dtype=np.float32, copy=True)
    with threadpool_limits(1, "blas"):  # as implicit advises (it warns at construction otherwise)
        model = implicit.cpu.als.AlternatingLeastSquares(factors=64, iterations=2, num_threads=2, random_state=0)
        model.fit(user_items, show_progress=False)
    users = np.arange(clicks.n_users)
    benchmark.pedantic(model.recommend, args=(users, user_items), kwargs={"N": 10}, rounds=3)
