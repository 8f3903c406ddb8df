"""Baseline biases on ml-100k u1.base: fastrec (ALS vectorised, SGD in Numba) vs Surprise.

Run: pytest benchmarks/bench_baseline.py --benchmark-only --benchmark-columns=min,mean,rounds
"""
import numpy as np
import pytest

import fastrec
from fastrec import reference

GROUP = "baseline fit [ml-100k u1.base]"


@pytest.fixture(scope="module")
def train(ml100k_path):
    return fastrec.datasets.load_movielens(ml100k_path / "u1.base")


@pytest.fixture(scope="module")
def surprise_trainset(train):
    pytest.importorskip("surprise")
    pytest.importorskip("pandas")
    return fastrec.testing.surprise_trainset(train)


@pytest.mark.parametrize("method", ["als", "sgd"])
def test_fastrec_baseline(benchmark, train, method):
    model = fastrec.Baseline(method=method).fit(train)  # warms the Numba cache
    benchmark.group = f"{GROUP} {method}"
    benchmark(model.fit, train)


@pytest.mark.parametrize("method", ["als", "sgd"])
def test_surprise_baseline(benchmark, surprise_trainset, method):
    import surprise

    algo = surprise.BaselineOnly(bsl_options={"method": method}, verbose=False)
    benchmark.group = f"{GROUP} {method}"
    benchmark(algo.fit, surprise_trainset)


def test_numpy_reference_sgd(benchmark, train):
    """The pure-Python reference loop of the SGD kernel, for the kernel-vs-reference ratio."""
    ratings = train.values.astype(np.float64)
    users, items = train.entry_users, train.csr.indices.astype(np.int64)

    def run():
        reference.baseline.baseline_sgd(ratings, users, items, float(ratings.mean()),
                                        np.zeros(train.n_users), np.zeros(train.n_items), 20, 0.02, 0.005)

    benchmark.group = f"{GROUP} sgd"
    benchmark.pedantic(run, rounds=2)
