"""Interactions: id maps, CSR layout, duplicates, validation messages, immutability."""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

import fastrec
from fastrec import Interactions


def small():
    return Interactions.from_arrays(["b", "a", "b", "c"], [20, 10, 10, 30], [4, 5, 3, 1],
                                    timestamps=[100, 200, 300, 400])


def test_from_arrays_layout_and_ids():
    data = small()
    assert (data.n_users, data.n_items, data.nnz) == (3, 3, 4)
    assert data.user_ids.tolist() == ["a", "b", "c"] and data.item_ids.tolist() == [10, 20, 30]
    np.testing.assert_array_equal(data.csr.toarray(), [[5, 0, 0], [3, 4, 0], [0, 0, 1]])
    assert data.csr.has_sorted_indices
    np.testing.assert_array_equal(data.timestamps, [200, 300, 100, 400])  # follows CSR order
    np.testing.assert_array_equal(data.csc.toarray(), data.csr.toarray())
    assert data.ratings.dtype == np.float64 and data.rating_scale == (1.0, 5.0)
    assert data.user_counts.tolist() == [1, 2, 1] and data.item_counts.tolist() == [2, 1, 1]
    assert not data.is_implicit and "3 users x 3 items" in repr(data)


def test_id_lookup_round_trip_and_unknown_ids():
    data = small()
    assert data.user_index("b") == 1
    np.testing.assert_array_equal(data.user_index(["c", "a"]), [2, 0])
    np.testing.assert_array_equal(data.user_ids[data.user_index(data.user_ids)], data.user_ids)
    np.testing.assert_array_equal(data.item_index([30, 99], unknown="ignore"), [2, -1])
    with pytest.raises(KeyError, match=r"2 user id\(s\) unknown: \['x', 'y'\]"):
        data.user_index(["a", "x", "y"])
    with pytest.raises(KeyError, match="unknown"):
        data.item_index(["10"])  # a string is not the integer id 10
    with pytest.raises(KeyError, match=r"2 item id\(s\) unknown: \[11, -3\]"):
        data.item_index([11, 20, -3])  # the dense-range lookup table path
    np.testing.assert_array_equal(data.item_index(np.array([30, 10], dtype=np.uint8)), [2, 0])


def test_to_arrays_round_trip():
    users, items, ratings, ts = small().to_arrays()
    rebuilt = Interactions.from_arrays(users, items, ratings, ts)
    np.testing.assert_array_equal(rebuilt.csr.toarray(), small().csr.toarray())


@given(st.lists(st.tuples(st.integers(-5, 5), st.text("ab", min_size=1, max_size=2)), min_size=1,
                max_size=40, unique=True))
def test_property_round_trip(pairs):
    users = np.array([p[0] for p in pairs])
    items = np.array([p[1] for p in pairs])
    ratings = np.arange(1, len(pairs) + 1, dtype=np.float64)
    data = Interactions.from_arrays(users, items, ratings)
    u, i, r, _ = data.to_arrays()
    assert sorted(zip(u.tolist(), i.tolist(), r.tolist())) == sorted(zip(users.tolist(), items.tolist(), ratings.tolist()))


def test_implicit_and_to_implicit():
    data = Interactions.from_arrays([1, 2], [1, 1])
    assert data.is_implicit and data.ratings is None and data.values.tolist() == [1.0, 1.0]
    assert data.rating_scale is None
    implicit = small().to_implicit(threshold=4)
    assert implicit.is_implicit and implicit.nnz == 2 and implicit.same_ids(small())
    assert small().to_implicit().nnz == 4


@pytest.mark.parametrize("policy, expected", [("sum", 7.0), ("mean", 3.5), ("last", 3.0)])
def test_duplicate_policies(policy, expected):
    data = Interactions.from_arrays([1, 1, 2], [5, 5, 5], [4, 3, 2], timestamps=[10, 5, 1],
                                    duplicates=policy)
    assert data.nnz == 2 and data.csr[[0]].toarray()[0, 0] == expected
    assert data.timestamps[0] == (5 if policy == "last" else 10)


def test_duplicate_error_names_the_first_pair():
    with pytest.raises(ValueError, match=r"1 duplicate .*\('u', 'i'\) at positions 1 and 3"):
        Interactions.from_arrays(["v", "u", "w", "u"], ["i", "i", "i", "i"], [1, 2, 3, 4])


def test_implicit_duplicates_sum_counts():
    data = Interactions.from_arrays([1, 1, 1], [2, 2, 3], duplicates="sum")
    assert data.values.tolist() == [2.0, 1.0]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(users=[1, 2], items=[1]), ValueError, "users has 2 entries but items has 1"),
        (dict(users=[], items=[]), ValueError, "no interactions"),
        (dict(users=[1, 2], items=[1, 2], ratings=[1.0, np.nan]), ValueError,
         r"ratings contain 1 NaN or infinite value\(s\); the first is at position 1"),
        (dict(users=[1], items=[1], ratings=[np.inf]), ValueError, "NaN or infinite"),
        (dict(users=[1], items=[1], ratings=["good"]), TypeError, "ratings must be numeric"),
        (dict(users=[1, 2], items=[1, 2], ratings=[1.0]), ValueError, "ratings has 1 entries"),
        (dict(users=[1.5], items=[1]), TypeError, "user ids are floating point"),
        (dict(users=[True], items=[1]), TypeError, "user ids are booleans"),
        (dict(users=np.array([1, "a"], dtype=object), items=[1, 2]), TypeError, "user ids mix types"),
        (dict(users=np.array([None, "a"], dtype=object), items=[1, 2]), ValueError, "missing values"),
        (dict(users=[[1, 2]], items=[[1, 2]]), ValueError, "one-dimensional"),
        (dict(users=[1], items=[1], duplicates="first"), ValueError, "duplicates must be one of"),
        (dict(users=[1], items=[9], item_ids=[1, 2]), KeyError, "not in the given id universe"),
        (dict(users=[1], items=[1], timestamps=["x"]), TypeError, "timestamps must be numeric"),
        (dict(users=[1], items=[1], timestamps=[np.nan]), ValueError, "timestamps contain NaN"),
        (dict(users=[1], items=[1], ratings=[1], dtype=np.int32), TypeError, "dtype must be float32"),
    ],
)
def test_from_arrays_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        Interactions.from_arrays(**kwargs)


def test_inputs_not_modified_and_result_immutable():
    users, items, ratings = np.array([3, 1, 2]), np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0])
    copies = users.copy(), items.copy(), ratings.copy()
    data = Interactions.from_arrays(users, items, ratings)
    for arr, copy in zip((users, items, ratings), copies):
        np.testing.assert_array_equal(arr, copy)
    ratings[0] = 99.0
    assert 99.0 not in data.values  # no shared buffer
    with pytest.raises(ValueError, match="read-only"):
        data.values[0] = 5.0
    with pytest.raises(AttributeError, match="immutable"):
        data.n_users = 4


def test_pickle_and_deepcopy_round_trip():
    import copy
    import pickle

    data = fastrec.datasets.synthetic(30, 20, 200, seed=0)
    for twin in (pickle.loads(pickle.dumps(data)), copy.deepcopy(data)):
        assert (twin.csr != data.csr).nnz == 0
        np.testing.assert_array_equal(twin.user_ids, data.user_ids)
        np.testing.assert_array_equal(twin.timestamps, data.timestamps)
        assert (twin.item_features != data.item_features).nnz == 0
        assert twin.rating_scale == data.rating_scale and twin.is_implicit == data.is_implicit
        with pytest.raises(ValueError, match="read-only"):
            twin.values[0] = 5.0
    model = fastrec.ItemKNN(k=5).fit(data)  # a fitted model holds its Interactions
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.recommend(data.user_ids[:5])[0], model.recommend(data.user_ids[:5])[0])


def test_dtype_policy():
    assert Interactions.from_arrays([1], [1], np.array([3], dtype=np.int8)).values.dtype == np.float64
    assert Interactions.from_arrays([1], [1], np.array([3], dtype=np.float32)).values.dtype == np.float32
    assert Interactions.from_arrays([1], [1], np.array([3], dtype=np.float16)).values.dtype == np.float32
    assert Interactions.from_arrays([1], [1], [3.0], dtype=np.float32).values.dtype == np.float32
    assert Interactions.from_arrays([1], [1]).csr.indices.dtype == np.int32


def test_universe_keeps_items_without_interactions():
    data = Interactions.from_arrays([1], ["a"], [4.0], item_ids=["c", "b", "a"])
    assert data.item_ids.tolist() == ["a", "b", "c"] and data.item_counts.tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match="contain duplicates"):
        Interactions.from_arrays([1], ["a"], item_ids=["a", "a"])


def test_from_pandas():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"uid": ["x", "y", "x"], "iid": [3, 3, 4], "r": pd.array([1, 2, None], dtype="Int64"),
                       "t": [1, 2, 3]})
    with pytest.raises(ValueError, match="ratings contain 1 NaN"):
        Interactions.from_pandas(df, "uid", "iid", "r", "t")
    data = Interactions.from_pandas(df.iloc[:2], "uid", "iid", "r", "t")
    assert data.nnz == 2 and data.timestamps.tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"column\(s\) \['rating'\] not in the DataFrame"):
        Interactions.from_pandas(df, "uid", "iid", "rating")
    cat = df.astype({"uid": "category"})
    assert Interactions.from_pandas(cat, "uid", "iid").user_ids.tolist() == ["x", "y"]


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil", "dok"])
def test_from_sparse_formats(fmt):
    dense = np.array([[0, 4, 0], [5, 0, 1]], dtype=np.float32)
    data = Interactions.from_sparse(sp.csr_array(dense).asformat(fmt), user_ids=["b", "a"])
    assert data.user_ids.tolist() == ["a", "b"]
    np.testing.assert_array_equal(data.csr.toarray(), dense[[1, 0]])
    assert data.values.dtype == np.float32


def test_from_sparse_drops_stored_zeros_and_handles_duplicates():
    coo = sp.coo_array(([1.0, 0.0, 2.0, 3.0], ([0, 0, 1, 1], [0, 1, 1, 1])), shape=(2, 2))
    with pytest.raises(ValueError, match="duplicate"):
        Interactions.from_sparse(coo)
    data = Interactions.from_sparse(coo, duplicates="sum")
    assert data.nnz == 2 and data.csr.toarray().tolist() == [[1.0, 0.0], [0.0, 5.0]]


def test_from_sparse_rejects_malformed_and_wrong_input():
    bad = sp.csr_array((np.ones(2), np.array([0, 5]), np.array([0, 1, 2])), shape=(2, 3))
    with pytest.raises(ValueError, match="malformed sparse matrix"):
        Interactions.from_sparse(bad)
    with pytest.raises(TypeError, match="expects a scipy.sparse matrix"):
        Interactions.from_sparse(np.ones((2, 2)))
    with pytest.raises(ValueError, match="no non-zero entries"):
        Interactions.from_sparse(sp.csr_array((2, 2)))
    with pytest.raises(ValueError, match="2 user ids"):
        Interactions.from_sparse(sp.eye(3, format="csr"), user_ids=[1, 2])
    with pytest.raises(ValueError, match="NaN"):
        Interactions.from_sparse(sp.csr_array(np.array([[np.nan, 1.0]])))


def test_select_shares_id_maps():
    data = small()
    part = data.select(np.array([True, False, True, False]))
    assert part.same_ids(data) and part.shape == data.shape and part.nnz == 2
    np.testing.assert_array_equal(part.timestamps, data.timestamps[[0, 2]])
    np.testing.assert_array_equal(data.select([1, 3]).csr.toarray(),
                                  data.csr.toarray() * np.array([[0, 0, 0], [1, 0, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match="boolean entry mask"):
        data.select(np.array([True]))
    with pytest.raises(IndexError, match="entry positions"):
        data.select([7])


def test_item_side_data():
    data = small()
    features = sp.csr_array(np.eye(3))
    with_features = data.with_item_features(features, ["x", "y", "z"]).with_item_titles(["A", "B", "C"])
    assert with_features.item_features.shape == (3, 3) and with_features.item_titles.tolist() == ["A", "B", "C"]
    assert data.item_features is None  # the original is unchanged
    with pytest.raises(ValueError, match="has 2 rows but there are 3 items"):
        data.with_item_features(sp.csr_array(np.eye(2)))
    with pytest.raises(ValueError, match="got 2 titles for 3 items"):
        data.with_item_titles(["A", "B"])


def test_large_ids_and_uint64():
    users = np.array([2**62, 5, 2**62], dtype=np.int64)
    data = Interactions.from_arrays(users, [1, 1, 2])
    assert data.user_ids.tolist() == [5, 2**62]
    big = np.array([2**64 - 1, 3], dtype=np.uint64)
    assert Interactions.from_arrays(big, [1, 1]).user_index(np.uint64(2**64 - 1)) == 1


def test_scipy_sparse_accepted_by_models():
    model = fastrec.Popularity().fit(sp.csr_array(np.array([[1.0, 0.0], [1.0, 1.0]])))
    assert model.recommend([0], n=1, exclude_seen=False)[0].tolist() == [[0]]
