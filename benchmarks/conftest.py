import os

import pytest

from fastrec.testing import movielens_100k_dir

ML100K = movielens_100k_dir(__file__)


def pytest_report_header(config):
    import fastrec

    return [f"fastrec {fastrec.__version__}, OpenMP: {fastrec.openmp_enabled()}, "
            f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')!r}"]


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def num_threads(request):
    return request.param


@pytest.fixture(scope="session")
def ml100k_path():
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens 100k not found at {ML100K}")
    return ML100K
