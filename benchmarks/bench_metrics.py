"""Ranking metrics for 100,000 users x top-20 at k = 5, 10, 20: the compiled one-pass
kernel against the vectorised NumPy reference (``backend="numpy"``).

Run: pytest benchmarks/bench_metrics.py --benchmark-only --benchmark-columns=min,mean,rounds
"""
import numpy as np
import pytest

import fastrec
from fastrec.metrics import ranking_metrics

KS = (5, 10, 20)
GROUP = "ranking metrics: 100k users x top-20, k = 5, 10, 20"


@pytest.fixture(scope="module")
def lists():
    data = fastrec.datasets.synthetic(100_000, 20_000, 1_000_000, seed=0)
    _, test = fastrec.model_selection.train_test_split(data, 0.2, random_state=0)
    rng = np.random.default_rng(0)
    users = np.arange(test.n_users)
    # lists that hit now and then: half test items of the user, half random items
    top = rng.integers(0, test.n_items, (users.size, 20))
    own = test.csr.indices[np.minimum(test.csr.indptr[:-1], max(test.nnz - 1, 0))]
    top[:, ::3] = np.where(test.user_counts[:, None] > 0, own[:, None], top[:, ::3])
    return top, users, test


def test_fastrec_metrics(benchmark, lists, num_threads):
    top, users, test = lists
    benchmark.group = GROUP
    result = benchmark(ranking_metrics, top, users, test, KS, num_threads=num_threads)
    reference = ranking_metrics(top, users, test, KS, backend="numpy")
    assert result == pytest.approx(reference, rel=1e-9)


def test_numpy_reference_metrics(benchmark, lists):
    top, users, test = lists
    benchmark.group = GROUP
    benchmark.pedantic(ranking_metrics, args=(top, users, test, KS), kwargs={"backend": "numpy"},
                       rounds=3)
