import os

import numpy as np
import pytest
from hypothesis import settings

from fastrec.testing import movielens_100k_dir

SEED = int(os.environ.get("FASTREC_TEST_SEED", "0"))
ML100K = movielens_100k_dir(__file__)

settings.register_profile("ci", deadline=None, derandomize=True, database=None, max_examples=60)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("FASTREC_HYPOTHESIS_PROFILE", "ci"))


def pytest_report_header(config):
    return [f"fastrec test seed: {SEED} (set FASTREC_TEST_SEED to change)",
            f"ml-100k: {ML100K if ML100K.exists() else 'absent (tests using it skip)'}"]


@pytest.fixture
def seed():
    return SEED


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture(params=[np.int32, np.int64], ids=["i32", "i64"])
def index_dtype(request):
    return request.param


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def num_threads(request):
    return request.param


@pytest.fixture(scope="session")
def ml100k_path():
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens 100k not found at {ML100K}")
    return ML100K
