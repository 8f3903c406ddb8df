"""Matrix factorisation: fastrec's SGD kernel vs scikit-surprise's SVD (ratings) and
implicit's BPR (clicks), and vs the NumPy reference loop.

Run: pytest benchmarks/bench_mf.py --benchmark-only --benchmark-columns=min,mean,rounds
(FASTREC_BENCH_10M=1 adds BPR on 10M clicks.)  Accuracy goes to extra_info: test RMSE
for the rating models, AUC on held-out clicks for BPR.
"""
import os

import numpy as np
import pytest
import scipy.sparse as sp

import fastrec
from fastrec.metrics import rmse
from fastrec.model_selection import train_test_split
from fastrec.testing import surprise_trainset

SVD = dict(n_factors=100, n_epochs=20, lr=0.005, reg=0.02)  # Surprise's SVD defaults


# ------------------------------------------------------------- ratings: SVD
@pytest.fixture(scope="module", params=["ml-100k u1", "synthetic 1M"])
def ratings(request, ml100k_path_or_none):
    if request.param == "ml-100k u1":
        if ml100k_path_or_none is None:
            pytest.skip("MovieLens 100k not found")
        return request.param, fastrec.datasets.load_movielens_split(ml100k_path_or_none, "u1")
    data = fastrec.datasets.synthetic(100_000, 20_000, 1_000_000, seed=0)
    return request.param, train_test_split(data, 0.1, random_state=0)


@pytest.fixture(scope="module")
def ml100k_path_or_none():
    from fastrec.testing import movielens_100k_dir

    path = movielens_100k_dir(__file__)
    return path if (path / "u.data").exists() else None


def _svd_group(name):
    return f"SVD k=100, 20 epochs: fit [{name}]"


@pytest.mark.parametrize("threads", [1, 2])
def test_fastrec_svd(benchmark, ratings, threads):
    name, (train, test) = ratings
    model = fastrec.MatrixFactorization(**SVD, num_threads=threads, random_state=0)
    benchmark.group = _svd_group(name)
    benchmark.pedantic(model.fit, args=(train,), rounds=3, warmup_rounds=1)
    users, items, values, _ = test.to_arrays()
    benchmark.extra_info["rmse"] = round(rmse(values, model.predict(users, items)), 4)
    if benchmark.stats is not None:  # None in --benchmark-disable runs
        benchmark.extra_info["updates_per_second"] = round(SVD["n_epochs"] * train.nnz / benchmark.stats["min"])


def test_surprise_svd(benchmark, ratings):
    surprise = pytest.importorskip("surprise")
    pytest.importorskip("pandas")
    name, (train, test) = ratings
    trainset = surprise_trainset(train)
    algo = surprise.SVD(random_state=0)
    benchmark.group = _svd_group(name)
    benchmark.pedantic(algo.fit, args=(trainset,), rounds=1)
    tu, ti, tr, _ = test.to_arrays()
    estimates = [algo.predict(u, i).est for u, i in zip(tu.tolist(), ti.tolist(), strict=True)]
    benchmark.extra_info["rmse"] = round(rmse(tr, estimates), 4)


def test_reference_one_epoch(benchmark, ratings):
    """The NumPy reference loop, one epoch, against the kernel's one epoch below."""
    from fastrec.models.mf import _Schedule
    from fastrec.reference.mf import sgd_epoch

    name, (train, _) = ratings
    if name != "ml-100k u1":
        pytest.skip("the Python reference takes minutes on 1M ratings")
    model = fastrec.MatrixFactorization(**{**SVD, "n_epochs": 0}, dtype=np.float64, random_state=0).fit(train)
    schedule = _Schedule(train, 8, np.float64)
    order, negatives = schedule.plan(1, int(model.seed_), 0)
    params = [a.copy() for a in (model.user_bias_, model.item_bias_, model.user_factors_, model.item_factors_)]
    benchmark.group = f"SVD k=100: one epoch [{name}]"
    benchmark.pedantic(sgd_epoch, args=("mse", schedule.users[order], schedule.items[order],
                                        schedule.ratings[order], negatives, model.global_mean_, *params,
                                        0.005, 0.02, 0.005, 0.02, True), rounds=1)


@pytest.mark.parametrize("threads", [1, 2])
def test_fastrec_one_epoch(benchmark, ratings, threads):
    name, (train, _) = ratings
    model = fastrec.MatrixFactorization(**{**SVD, "n_epochs": 1}, num_threads=threads, random_state=0)
    benchmark.group = f"SVD k=100: one epoch [{name}]"
    benchmark.pedantic(model.fit, args=(train,), rounds=3, warmup_rounds=1)


# -------------------------------------------------------------- clicks: BPR
SIZES = {"1M": 1_000_000}
if os.environ.get("FASTREC_BENCH_10M"):
    SIZES["10M"] = 10_000_000
BPR_EPOCHS = 10


@pytest.fixture(scope="module", params=list(SIZES))
def clicks(request):
    data = fastrec.datasets.synthetic(100_000, 20_000, SIZES[request.param], kind="implicit", seed=0)
    return request.param, train_test_split(data, 0.1, random_state=0)


def _auc(scores_of, train, test, n_negatives=20):
    """P(score of a held-out click > score of a random item), over held-out clicks."""
    rng = np.random.default_rng(0)
    pick = rng.choice(test.nnz, min(test.nnz, 50_000), replace=False)
    users, items = test.entry_users[pick], test.csr.indices[pick]
    negatives = rng.integers(0, train.n_items, (users.size, n_negatives))
    positive = scores_of(users, items)
    negative = scores_of(np.repeat(users, n_negatives), negatives.ravel()).reshape(negatives.shape)
    return float(np.mean(positive[:, None] > negative))


def _bpr_group(name):
    return f"BPR 64 factors: {BPR_EPOCHS} epochs [{name} clicks, 2 threads]"


def test_fastrec_bpr(benchmark, clicks):
    name, (train, test) = clicks
    model = fastrec.MatrixFactorization(n_factors=64, n_epochs=BPR_EPOCHS, lr=0.05, reg=0.01,
                                        loss="bpr", num_threads=2, random_state=0)
    benchmark.group = _bpr_group(name)
    benchmark.pedantic(model.fit, args=(train,), rounds=2, warmup_rounds=1)
    p, q, b = model.user_factors_, model.item_factors_, model.item_bias_
    benchmark.extra_info["auc"] = round(_auc(lambda u, i: np.einsum("ij,ij->i", p[u], q[i]) + b[i],
                                             train, test), 4)


def test_implicit_bpr(benchmark, clicks):
    bpr = pytest.importorskip("implicit.cpu.bpr")
    name, (train, test) = clicks
    user_items = sp.csr_matrix(train.csr, dtype=np.float32, copy=True)  # implicit writes to it
    model = bpr.BayesianPersonalizedRanking(factors=64, iterations=BPR_EPOCHS, num_threads=2,
                                            random_state=0)  # plus its item-bias column
    benchmark.group = _bpr_group(name)
    benchmark.pedantic(model.fit, args=(user_items,), kwargs={"show_progress": False}, rounds=2,
                       warmup_rounds=1)
    p, q = model.user_factors, model.item_factors
    benchmark.extra_info["auc"] = round(_auc(lambda u, i: np.einsum("ij,ij->i", p[u], q[i]),
                                             train, test), 4)
