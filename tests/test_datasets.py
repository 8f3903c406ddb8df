"""Tests for fastrec.datasets: MovieLens and CSV loaders, the numeric parser, synthetic data."""
import numpy as np
import pytest

import fastrec.io
from fastrec import datasets
from fastrec.io import read_number_table
from fastrec.data import Interactions
from fastrec.datasets import load_csv, load_movielens, synthetic


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


# ----------------------------------------------------------------- MovieLens 100k
def test_ml100k_folder(ml100k_path):
    data = load_movielens(ml100k_path)
    assert isinstance(data, Interactions)
    assert data.shape == (943, 1682)
    assert data.nnz == 100_000
    assert round(float(data.ratings.mean()), 5) == 3.52986
    assert data.rating_scale == (1.0, 5.0)
    assert data.timestamps.dtype == np.int64 and data.timestamps.size == 100_000
    assert data.timestamps.min() > 800_000_000
    assert data.item_titles[data.item_index(1)] == "Toy Story (1995)"
    assert data.item_titles[data.item_index(1682)] == "Scream of Stone (Schrei aus Stein) (1991)"
    assert data.item_features.shape == (1682, 19)
    assert list(data.feature_names[:3]) == ["unknown", "Action", "Adventure"]
    toy_story = data.item_features[[data.item_index(1)]].toarray().ravel()
    assert set(data.feature_names[toy_story == 1]) == {"Animation", "Children's", "Comedy"}
    # user 196 rated item 242 with a 3 at 881250949 (first line of u.data)
    u, i = data.user_index(196), data.item_index(242)
    row = slice(data.csr.indptr[u], data.csr.indptr[u + 1])
    pos = row.start + int(np.searchsorted(data.csr.indices[row], i))
    assert data.csr.data[pos] == 3.0 and data.timestamps[pos] == 881250949


def test_ml100k_split_file(ml100k_path):
    train = load_movielens(ml100k_path / "u1.base")
    assert train.nnz == 80_000
    assert train.n_items == 1682  # the movies of u.item, rated or not
    assert train.item_titles[train.item_index(1)] == "Toy Story (1995)"
    test = load_movielens(ml100k_path / "u1.test")
    assert test.nnz == 20_000
    assert test.n_items == 1682 and test.n_users == 459  # only users that rated something


def test_ml100k_without_u_genre_uses_standard_names(tmp_path, ml100k_path):
    (tmp_path / "u.data").write_bytes((ml100k_path / "u.data").read_bytes()[:2000].rsplit(b"\n", 1)[0])
    (tmp_path / "u.item").write_bytes((ml100k_path / "u.item").read_bytes())
    data = load_movielens(tmp_path)
    assert list(data.feature_names) == list(datasets.ML100K_GENRES)
    assert data.n_items == 1682


# ----------------------------------------------------------------- MovieLens 1M / 10M style
ML1M_RATINGS = """1::10::5::978300760
1::20::3::978302109
2::10::4::978301968
2::30::1::978300275
3::40::2::978824291
"""
ML1M_MOVIES = """10::Toy Story (1995)::Animation|Children's|Comedy
20::Jumanji (1995)::Adventure|Children's|Fantasy
30::Misérables, Les (1995)::Drama|Musical
50::Never Rated (2000)::Drama
"""


def test_ml1m_style(tmp_path):
    write(tmp_path / "ratings.dat", ML1M_RATINGS)
    write(tmp_path / "movies.dat", ML1M_MOVIES, encoding="latin-1")
    data = load_movielens(tmp_path)
    # movies 10, 20, 30, 50 from movies.dat, plus 40: rated but not listed
    assert list(data.item_ids) == [10, 20, 30, 40, 50]
    assert list(data.user_ids) == [1, 2, 3]
    assert data.nnz == 5
    assert list(data.item_titles) == ["Toy Story (1995)", "Jumanji (1995)", "Misérables, Les (1995)",
                                      "", "Never Rated (2000)"]
    assert list(data.feature_names) == sorted(
        ["Animation", "Children's", "Comedy", "Adventure", "Fantasy", "Drama", "Musical"])
    features = data.item_features.toarray()
    assert features.shape == (5, 7)
    assert features.sum(axis=1).tolist() == [3, 3, 2, 0, 1]
    names = data.feature_names
    assert set(names[features[data.item_index(50)] == 1]) == {"Drama"}
    assert data.item_counts[data.item_index(50)] == 0
    assert data.ratings.tolist() == [5.0, 3.0, 4.0, 1.0, 2.0]
    assert data.timestamps.dtype == np.int64
    assert data.timestamps.tolist() == [978300760, 978302109, 978301968, 978300275, 978824291]


def test_ml10m_style_half_stars_and_utf8_titles(tmp_path):
    write(tmp_path / "ratings.dat", "1::1::3.5::1112486027\n1::2::0.5::1112484676\n2::1::5::1112484819\n")
    write(tmp_path / "movies.dat", "1::Amélie (2001)::Comedy|Romance\n2::Heat (1995)::(no genres listed)\n")
    data = load_movielens(tmp_path / "ratings.dat")
    assert data.ratings.tolist() == [3.5, 0.5, 5.0]
    assert list(data.item_titles) == ["Amélie (2001)", "Heat (1995)"]
    assert data.item_features.toarray().tolist() == [[1, 1], [0, 0]]


def test_ratings_without_movies_file(tmp_path):
    write(tmp_path / "ratings.dat", ML1M_RATINGS)
    data = load_movielens(tmp_path)
    assert list(data.item_ids) == [10, 20, 30, 40]
    assert data.item_titles is None and data.item_features is None


# ----------------------------------------------------------------- MovieLens latest / 20M+
LATEST_RATINGS = """userId,movieId,rating,timestamp
1,1,4.0,964982703
1,3,4.5,964981247
2,1,2.5,1445714835
2,6,0.5,1445714836
"""
LATEST_MOVIES = '''movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
3,"American President, The (1995)",Comedy|Drama|Romance
6,Heat (1995),Action|Crime|Thriller
9,"Unrated, Unloved (2020)",(no genres listed)
'''


def test_ml_latest_style(tmp_path):
    write(tmp_path / "ratings.csv", LATEST_RATINGS)
    write(tmp_path / "movies.csv", LATEST_MOVIES)
    data = load_movielens(tmp_path)
    assert list(data.item_ids) == [1, 3, 6, 9]
    assert data.shape == (2, 4)
    assert data.ratings.tolist() == [4.0, 4.5, 2.5, 0.5]
    assert data.rating_scale == (0.5, 4.5)
    assert data.item_titles[data.item_index(3)] == "American President, The (1995)"
    assert data.item_titles[data.item_index(9)] == "Unrated, Unloved (2020)"
    assert data.item_features.shape == (4, 10)
    assert data.item_features.toarray()[data.item_index(9)].sum() == 0
    assert data.item_features.toarray()[data.item_index(1)].sum() == 5
    assert "(no genres listed)" not in set(data.feature_names)
    assert list(data.feature_names) == sorted(data.feature_names)
    assert data.timestamps.tolist() == [964982703, 964981247, 1445714835, 1445714836]


def test_ml_latest_ratings_file_path_and_crlf(tmp_path):
    write(tmp_path / "ratings.csv", LATEST_RATINGS.replace("\n", "\r\n") + "\r\n\r\n")
    write(tmp_path / "movies.csv", LATEST_MOVIES.replace("\n", "\r\n"))
    data = load_movielens(tmp_path / "ratings.csv")
    assert data.nnz == 4 and data.n_items == 4
    assert data.item_titles[data.item_index(3)] == "American President, The (1995)"


# ----------------------------------------------------------------- MovieLens errors
def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_movielens(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="u.data, ratings.dat, ratings.csv"):
        load_movielens(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_csv(tmp_path / "missing.csv")


@pytest.mark.parametrize("body, line, message", [
    ("1\t2\t3\t4\n1\t3\t4\n", 2, "expected 4 tab-separated fields, got 3"),
    ("1\t2\t3\t4\n1\t3\t4\t5\t6\n", 2, "expected 4 tab-separated fields, got 5"),
    ("1\t2\t3\t4\n\n1\t3\n", 3, "expected 4 tab-separated fields, got 2"),
    ("1\t2\t3\t4\n1\t3\t4\t5\n1\tx\t4\t5\n", 3, "field 2 ('x') is not an integer"),
    ("1\t2\t3\t4\n1\t3\tx\t5\n", 2, "field 3 ('x') is not a number"),
    ("1\t2\t3\t4\n1\t3\t4\t99999999999999999999\n", 2, "field 4 ('99999999999999999999') is not an integer"),
    ("1\t2\t3\t4\n1\t3\t\t5\n", 2, "field 3 ('') is not a number"),
    ("1\t2\t3\t4\n1.5\t3\t4\t5\n", 2, "field 1 ('1.5') is not an integer"),
    ("1\t2\t3\t4\n1\t3\t4-\t5\n", 2, "field 3 ('4-') is not a number"),
    ("1\t2\t3\t4\n1\t3\t4.5.1\t5\n", 2, "field 3 ('4.5.1') is not a number"),
])
def test_u_data_malformed_line(tmp_path, body, line, message):
    write(tmp_path / "u.data", body)
    with pytest.raises(ValueError) as info:
        load_movielens(tmp_path)
    text = str(info.value)
    assert f"u.data, line {line}: " in text
    assert message in text


def test_malformed_dat_and_csv(tmp_path):
    write(tmp_path / "ratings.dat", "1::2::3::4\n1::2:3::4\n")
    with pytest.raises(ValueError, match=r"ratings\.dat, line 2: "):
        load_movielens(tmp_path)
    (tmp_path / "ratings.dat").unlink()
    write(tmp_path / "ratings.csv", "user,movie,rating,timestamp\n1,2,3,4\n")
    with pytest.raises(ValueError, match=r"ratings\.csv, line 1: expected the header"):
        load_movielens(tmp_path)
    write(tmp_path / "ratings.csv", LATEST_RATINGS + "3,1,abc,5\n")
    with pytest.raises(ValueError, match=r"ratings\.csv, line 6: field 3 \('abc'\)"):
        load_movielens(tmp_path)


def test_malformed_movie_files(tmp_path):
    write(tmp_path / "ratings.csv", LATEST_RATINGS)
    write(tmp_path / "movies.csv", LATEST_MOVIES + "10,Too,Many,Fields\n")
    with pytest.raises(ValueError, match=r"movies\.csv, line 6: expected 3 comma-separated fields, got 4"):
        load_movielens(tmp_path)
    write(tmp_path / "movies.csv", LATEST_MOVIES + "1,Toy Story again,Comedy\n")
    with pytest.raises(ValueError, match=r"movies\.csv, line 6: movie id 1 already appeared on line 2"):
        load_movielens(tmp_path)
    item = "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join("0" * 19) + "\n"
    write(tmp_path / "u.data", "1\t1\t5\t10\n")
    write(tmp_path / "u.item", item + "x|Bad|01-Jan-1995||http://x|" + "|".join("0" * 19) + "\n")
    with pytest.raises(ValueError, match=r"u\.item, line 2: movie id 'x' is not an integer"):
        load_movielens(tmp_path)
    write(tmp_path / "u.item", item + "2|Short|01-Jan-1995\n")
    with pytest.raises(ValueError, match=r"u\.item, line 2: expected 24 pipe-separated fields, got 3"):
        load_movielens(tmp_path)


def test_duplicate_ratings_name_the_file(tmp_path):
    write(tmp_path / "u.data", "1\t2\t3\t4\n1\t2\t5\t6\n")
    with pytest.raises(ValueError, match=r"u\.data: 1 duplicate \(user, item\) pair"):
        load_movielens(tmp_path)


# ----------------------------------------------------------------- the vectorised parser
def _reference_table(path, sep):
    rows = [line.split(sep) for line in path.read_text().splitlines() if line]
    return [np.array([int(r[j]) for r in rows]) for j in (0, 1)] + [
        np.array([float(r[2]) for r in rows]), np.array([int(r[3]) for r in rows])]


@pytest.mark.parametrize("sep", ["\t", "::", ","])
def test_parser_matches_python(tmp_path, sep, seed):
    rng = np.random.default_rng(seed)
    n = 3000
    users = rng.integers(-5, 10 ** rng.integers(1, 12, n), dtype=np.int64)
    items = rng.integers(0, 10 ** 17, n, dtype=np.int64)
    ratings = [f"{v:.{d}f}" for v, d in zip(rng.normal(0, 100, n), rng.integers(0, 6, n))]
    ratings[:5] = ["+3", "-0.5", ".25", "7.", "1e2"]
    times = rng.integers(0, 2 ** 40, n)
    lines = [sep.join(map(str, row)) for row in zip(users.tolist(), items.tolist(), ratings, times.tolist())]
    path = write(tmp_path / "table.txt", "\n".join(lines))  # no final newline
    got = read_number_table(path, sep, ("int", "int", "float", "int"))
    expected = _reference_table(path, sep)
    for column, reference in zip(got, expected):
        np.testing.assert_array_equal(column, reference)
    assert got[0].dtype == np.int64 and got[2].dtype == np.float64


def test_parser_reports_the_line_past_blank_lines(tmp_path):
    lines = [f"{k}\t{k + 1}\t3\t{1000 + k}" for k in range(2000)]
    lines[1000] = ""
    lines[1233] = "1\t2\t3"
    path = write(tmp_path / "u.data", "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"u\.data, line 1234: expected 4 tab-separated fields, got 3"):
        load_movielens(path)
    lines[1233] = "1\t2\t3\t4"
    lines[1700] = "1\tx\t3\t4"
    write(path, "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"u\.data, line 1701: field 2 \('x'\)"):
        load_movielens(path)


# ----------------------------------------------------------------- load_csv
def test_load_csv_string_ids_and_header(tmp_path):
    path = write(tmp_path / "log.csv", 'user,item,score,when\n'
                                       'alice,"The Matrix, Reloaded",4.5,100\n'
                                       'bob,Heat,3,200\n\n'
                                       'alice,Heat,5,300\n')
    data = load_csv(path, rating_col="score", timestamp_col="when")
    assert list(data.user_ids) == ["alice", "bob"]
    assert list(data.item_ids) == ["Heat", "The Matrix, Reloaded"]
    assert data.ratings.tolist() == [5.0, 4.5, 3.0]
    assert data.timestamps.tolist() == [300, 100, 200]
    assert data.timestamps.dtype == np.int64


def test_load_csv_integer_ids_become_int64(tmp_path):
    path = write(tmp_path / "log.csv", "u,i\n10,7\n2, 7\n10,300\n")
    data = load_csv(path, user_col="u", item_col="i")
    assert data.user_ids.dtype == np.int64 and list(data.user_ids) == [2, 10]
    assert data.item_ids.dtype == np.int64 and list(data.item_ids) == [7, 300]
    assert data.is_implicit and data.ratings is None and data.timestamps is None


def test_load_csv_mixed_ids_stay_strings(tmp_path):
    path = write(tmp_path / "log.csv", "user,item\n1,a\n2,7\nx,7\n")
    data = load_csv(path)
    assert list(data.user_ids) == ["1", "2", "x"]
    assert data.user_ids.dtype.kind == "U"


def test_load_csv_without_header_by_position(tmp_path):
    path = write(tmp_path / "log.tsv", "5\t1\t2.5\n6\t1\t4\n")
    data = load_csv(path, user_col=0, item_col=1, rating_col=2, sep="\t", header=False)
    assert list(data.user_ids) == [5, 6] and data.ratings.tolist() == [2.5, 4.0]
    with pytest.raises(ValueError, match="header=False"):
        load_csv(path, sep="\t", header=False)


def test_load_csv_multichar_separator_and_iso_dates(tmp_path):
    path = write(tmp_path / "log.dat", "u::i::t\n1::2::2020-01-01\n1::3::2020-01-02T10:00\n")
    data = load_csv(path, user_col="u", item_col="i", timestamp_col="t", sep="::")
    assert data.timestamps.dtype.kind == "M"
    assert str(data.timestamps[1]) == "2020-01-02T10:00:00"


def test_load_csv_duplicates(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,rating\n1,1,2\n1,1,4\n")
    with pytest.raises(ValueError, match=r"log\.csv: 1 duplicate"):
        load_csv(path, rating_col="rating")
    data = load_csv(path, rating_col="rating", duplicates="mean")
    assert data.ratings.tolist() == [3.0]


@pytest.mark.parametrize("body, kwargs, pattern", [
    ("user,item\n1,2\n1,2,3\n", {}, r"log\.csv, line 3: expected 2 comma-separated fields, got 3"),
    ("user,item,r\n1,2,3\n1,3,\n", {"rating_col": "r"}, r"log\.csv, line 3: rating '' is not a number"),
    ("user,item,r\n1,2,3\n\n1,3,x\n", {"rating_col": "r"}, r"log\.csv, line 4: rating 'x' is not a number"),
    ("user,item,r\n1,2,nan\n", {"rating_col": "r"}, r"log\.csv, line 2: rating 'nan' is not a finite"),
    ("user,item,t\n1,2,5\n1,3,soon\n", {"timestamp_col": "t"}, r"log\.csv, line 3: timestamp 'soon'"),
    ("user,item,t\n1,2,5\n1,3,2020-01-01\n", {"timestamp_col": "t"}, r"mixes kinds"),
    ("user,item\n1,2\n,3\n", {}, r"log\.csv, line 3: empty user id"),
    ("user,item\n1,2\n", {"item_col": "movie"}, r"no column 'movie' \(item_col\)"),
    ("user,user\n1,2\n", {}, r"names column 'user' \(user_col\) 2 times"),
    ("user,item\n", {}, r"log\.csv: the file holds no data lines"),
])
def test_load_csv_errors(tmp_path, body, kwargs, pattern):
    path = write(tmp_path / "log.csv", body)
    with pytest.raises(ValueError, match=pattern):
        load_csv(path, **kwargs)


@pytest.mark.parametrize("header", [True, False])
def test_load_csv_numeric_fast_path_matches_csv_reader(tmp_path, monkeypatch, header, seed):
    rng = np.random.default_rng(seed)
    n = 500
    users, items = rng.integers(0, 50, n), rng.integers(-10, 10 ** 12, n)
    ratings = rng.integers(1, 11, n) / 2
    lines = [f"{u};{i};{r};{t};{x:.3f}" for u, i, r, t, x in
             zip(users, items, ratings, rng.integers(0, 2 ** 33, n), rng.random(n))]
    path = write(tmp_path / "log.txt", "u;i;r;t;extra\n" * header + "\n".join(lines) + "\n")
    cols = dict(user_col="u", item_col="i", rating_col="r", timestamp_col="t") if header else \
        dict(user_col=0, item_col=1, rating_col=2, timestamp_col=3)
    fast = load_csv(path, sep=";", header=header, duplicates="last", **cols)
    monkeypatch.setattr(fastrec.io, "_numeric_csv", lambda *args: None)
    slow = load_csv(path, sep=";", header=header, duplicates="last", **cols)
    for a, b in zip(fast.to_arrays(), slow.to_arrays()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_load_csv_numbers_outside_the_fast_path(tmp_path):
    # a blank line, spaces, an exponent and decimal timestamps: the csv reader takes over
    path = write(tmp_path / "log.csv", "user,item,rating,t\n1,2,3,10.5\n\n2, 3,1e0,11\n")
    data = load_csv(path, rating_col="rating", timestamp_col="t")
    assert list(data.item_ids) == [2, 3] and data.item_ids.dtype == np.int64
    assert data.ratings.tolist() == [3.0, 1.0]
    assert data.timestamps.dtype == np.float64 and data.timestamps.tolist() == [10.5, 11.0]


def test_load_csv_bad_arguments(tmp_path):
    path = write(tmp_path / "log.csv", "user,item\n1,2\n")
    with pytest.raises(ValueError, match="duplicates"):
        load_csv(path, duplicates="keep")
    with pytest.raises(ValueError, match="sep"):
        load_csv(path, sep="")
    with pytest.raises(TypeError, match="user_col"):
        load_csv(path, user_col=1.5)


# ----------------------------------------------------------------- synthetic
@pytest.fixture(scope="module")
def small():
    return synthetic(1000, 500, 50_000, seed=3)


def test_synthetic_shape_and_universe(small):
    assert small.shape == (1000, 500)
    assert small.nnz == 50_000
    np.testing.assert_array_equal(small.user_ids, np.arange(1000))
    np.testing.assert_array_equal(small.item_ids, np.arange(500))
    assert small.user_counts.min() >= 1
    assert small.user_counts.max() <= 500
    users, items, _, _ = small.to_arrays()
    assert np.unique(users * 500 + items).size == small.nnz
    assert small.item_titles[17] == "Item 17"


def test_synthetic_ratings(small):
    ratings = small.ratings
    assert not small.is_implicit
    assert set(np.unique(ratings)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 3.3 <= ratings.mean() <= 3.7
    assert small.rating_scale == (1.0, 5.0)
    assert 0.8 < ratings.std() < 1.4


def test_synthetic_timestamps(small):
    ts = small.timestamps
    assert ts.dtype == np.int64 and ts.size == small.nnz
    assert ts.min() >= 1_420_070_400 and ts.max() < 1_420_070_400 + 4 * 365 * 86_400
    # each user is active over a period, not over the whole span
    first = np.minimum.reduceat(ts, small.csr.indptr[:-1])
    last = np.maximum.reduceat(ts, small.csr.indptr[:-1])
    assert np.median(last - first) < 365 * 86_400


def test_synthetic_item_features(small):
    features = small.item_features
    assert features.shape == (500, 18)
    assert set(np.unique(features.data)) == {1.0}
    per_item = np.diff(features.indptr)
    assert per_item.min() >= 1 and per_item.max() <= 3
    assert small.feature_names[0] == "genre_00" and small.feature_names[-1] == "genre_17"
    sizes = np.sort(np.asarray(features.sum(axis=0)).ravel())
    assert sizes[-1] > 3 * sizes[0]  # skewed genre sizes


def test_synthetic_power_law(small):
    counts = np.sort(small.item_counts)[::-1]
    assert counts[:50].sum() > 0.30 * counts.sum()
    activity = np.sort(small.user_counts)[::-1]
    assert activity[:100].sum() > 0.18 * activity.sum()
    sparse = synthetic(20_000, 5_000, 200_000, seed=1)  # low density: little saturation
    counts = np.sort(sparse.item_counts)[::-1]
    assert counts[:500].sum() > 0.45 * counts.sum()


def test_synthetic_collaborative_signal(small):
    """Items sharing a genre co-occur well above chance; item biases predict ratings."""
    binary = small.to_implicit().csr
    cooc = (binary.T @ binary).toarray()
    counts = small.item_counts.astype(float)
    lift = cooc * small.n_users / np.outer(counts, counts)
    genres = small.item_features.toarray()
    shared = (genres @ genres.T) > 0
    off_diagonal = ~np.eye(small.n_items, dtype=bool)
    assert lift[shared & off_diagonal].mean() > 1.5 * lift[~shared].mean()

    rng = np.random.default_rng(0)
    test = rng.random(small.nnz) < 0.2
    items, ratings = small.csr.indices, small.ratings
    mean = ratings[~test].mean()
    sums = np.bincount(items[~test], weights=ratings[~test] - mean, minlength=small.n_items)
    bias = sums / (np.bincount(items[~test], minlength=small.n_items) + 10)
    rmse_mean = np.sqrt(np.mean((ratings[test] - mean) ** 2))
    rmse_bias = np.sqrt(np.mean((ratings[test] - mean - bias[items[test]]) ** 2))
    assert rmse_bias < 0.96 * rmse_mean


def test_synthetic_deterministic(small):
    again = synthetic(1000, 500, 50_000, seed=3)
    for a, b in zip(small.to_arrays(), again.to_arrays()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(small.item_features.toarray(), again.item_features.toarray())
    other = synthetic(1000, 500, 50_000, seed=4)
    assert not np.array_equal(small.csr.indices, other.csr.indices)
    assert not np.array_equal(small.timestamps, other.timestamps)


def test_synthetic_implicit_has_the_same_pairs(small):
    implicit = synthetic(1000, 500, 50_000, kind="implicit", seed=3)
    assert implicit.is_implicit and implicit.ratings is None
    np.testing.assert_array_equal(implicit.csr.indptr, small.csr.indptr)
    np.testing.assert_array_equal(implicit.csr.indices, small.csr.indices)
    np.testing.assert_array_equal(implicit.timestamps, small.timestamps)
    assert set(np.unique(implicit.values)) == {1.0}


def test_synthetic_defaults():
    data = synthetic()
    assert data.shape == (1000, 500) and data.nnz == 50_000


@pytest.mark.parametrize("shape", [(5, 3, 15), (40, 30, 1100), (100, 50, 20), (1, 1, 1), (3, 200, 5)])
def test_synthetic_edge_shapes(shape):
    n_users, n_items, n_ratings = shape
    data = synthetic(n_users, n_items, n_ratings, n_genres=4, n_factors=2, seed=7)
    assert data.shape == (n_users, n_items) and data.nnz == n_ratings
    if n_ratings >= n_users:
        assert data.user_counts.min() >= 1
    assert data.item_features.shape == (n_items, 4)


def test_synthetic_more_genres_than_items():
    data = synthetic(50, 5, 100, n_genres=30, seed=2)
    assert data.item_features.shape == (5, 30)
    assert data.feature_names[0] == "genre_00" and data.nnz == 100


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"n_users": 0}, ValueError, "n_users"),
    ({"n_items": -3}, ValueError, "n_items"),
    ({"n_ratings": 2.5}, TypeError, "n_ratings"),
    ({"n_genres": 0}, ValueError, "n_genres"),
    ({"n_factors": True}, TypeError, "n_factors"),
    ({"kind": "binary"}, ValueError, "kind"),
    ({"n_users": 10, "n_items": 10, "n_ratings": 101}, ValueError, "distinct"),
    ({"seed": "abc"}, TypeError, "random_state|seed"),
    ({"seed": -1}, ValueError, "non-negative"),
])
def test_synthetic_bad_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        synthetic(**kwargs)


def test_movielens_split_shares_ids(ml100k_path):
    split = datasets.load_movielens_split(ml100k_path, "u1")
    train, test = split
    assert (train.nnz, test.nnz) == (80_000, 20_000)
    assert train.same_ids(test) and train.n_items == 1682 and train.n_users == 943
    assert train.item_titles[0] == "Toy Story (1995)" and train.item_features.shape == (1682, 19)
    assert split.n_cold_users == 0 and split.n_cold_items > 0
    with pytest.raises(FileNotFoundError, match="u9.base"):
        datasets.load_movielens_split(ml100k_path, "u9")
