"""Datasets: the MovieLens releases, delimited files and the synthetic generator.

* :func:`load_movielens` reads MovieLens 100k, 1M, 10M, 20M, 25M, 32M and "latest",
  with titles and genres attached;
* :func:`load_csv` (from :mod:`fastrec.io`) reads any delimited interactions file;
* :func:`synthetic` generates realistic data; the embedded default dataset.

Every parse error names the file and the 1-based line number; validation of the
resulting arrays is left to ``Interactions.from_arrays``.
"""
import csv
import io
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from fastrec._synthetic import synthetic
from fastrec.io import _error, build_interactions, load_csv, read_number_table

__all__ = ["load_movielens", "load_movielens_split", "load_csv", "synthetic"]

# The 19 genres of MovieLens 100k, in the order of the flag columns of u.item.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
NO_GENRES = "(no genres listed)"

_RATING_FIELDS = ("int", "int", "float", "int")
_RATINGS_FILES = ("u.data", "ratings.dat", "ratings.csv")
_CSV_HEADER = ("userId", "movieId", "rating", "timestamp")


def load_movielens(path):
    """Load a MovieLens release, with movie titles and genres when they are available.

    Parameters
    ----------
    path : str or path-like
        A folder holding ``u.data`` (100k), ``ratings.dat`` (1M, 10M) or ``ratings.csv``
        (20M, 25M, 32M, latest), or one ratings file (e.g. ``u1.base``).  Titles and
        genres come from ``u.item`` (+ ``u.genre``), ``movies.dat`` or ``movies.csv`` in
        the same folder.

    Returns
    -------
    Interactions
        Explicit ratings with int64 timestamps.  The items are every movie of the
        movies file plus any rated movie missing from it; ``item_features`` is a binary
        (n_items, n_genres) matrix named by ``feature_names``, ``item_titles`` is ""
        for movies without a title.

    Raises
    ------
    FileNotFoundError
        No such path, or no ratings file in the folder.
    ValueError
        A malformed line; the message names the file and the line number.
    """
    path = Path(os.fspath(path))
    if not path.exists():
        raise FileNotFoundError(f"MovieLens data not found: {path} does not exist")
    if path.is_dir():
        ratings_file = next((path / f for f in _RATINGS_FILES if (path / f).is_file()), None)
        if ratings_file is None:
            raise FileNotFoundError(
                f"no MovieLens ratings file in {path} (looked for {', '.join(_RATINGS_FILES)})"
            )
    else:
        ratings_file = path
    layout = _movielens_layout(ratings_file)
    folder = ratings_file.parent
    if layout == "100k":
        sep, header, movies_file, read_movies = "\t", None, folder / "u.item", _read_u_item
    elif layout == "dat":
        sep, header, movies_file, read_movies = "::", None, folder / "movies.dat", _read_movies_dat
    else:
        sep, header, movies_file, read_movies = ",", _CSV_HEADER, folder / "movies.csv", _read_movies_csv
    users, items, ratings, times = read_number_table(ratings_file, sep, _RATING_FIELDS, header=header)
    movies = read_movies(movies_file) if movies_file.is_file() else None
    if movies is None:
        return build_interactions(ratings_file, users, items, ratings, times)
    movie_ids, titles, genre_lists, genre_names = movies
    universe = _union_ids(movie_ids, items)
    data = build_interactions(ratings_file, users, items, ratings, times, item_ids=universe)
    rows = np.searchsorted(universe, movie_ids)
    all_titles = np.full(universe.size, "", dtype=object)
    all_titles[rows] = titles
    n_genres = np.fromiter(map(len, genre_lists), dtype=np.int64, count=len(genre_lists))
    features = sp.csr_array(
        (np.ones(int(n_genres.sum())), (np.repeat(rows, n_genres),
                                        np.fromiter((g for gs in genre_lists for g in gs), dtype=np.int64))),
        shape=(universe.size, len(genre_names)),
    )
    return data.with_item_features(features, feature_names=genre_names).with_item_titles(all_titles)


def load_movielens_split(folder, name="u1"):
    """MovieLens 100k's own split files (``u1.base`` / ``u1.test`` ... ``ua``, ``ub``).

    Both parts are built over one id universe (every user of either file, every movie
    of ``u.item``), so a model fitted on the base part can be scored on the test part;
    users and items seen only in the test part are reported as cold, as by
    ``fastrec.model_selection``.

    Returns
    -------
    fastrec.model_selection.TrainTestSplit
    """
    from fastrec.model_selection import TrainTestSplit

    folder = Path(os.fspath(folder))
    base_file, test_file = folder / f"{name}.base", folder / f"{name}.test"
    for part in (base_file, test_file):
        if not part.is_file():
            raise FileNotFoundError(f"MovieLens split file not found: {part}")
    base, test = load_movielens(base_file), load_movielens(test_file)
    b_users, b_items, b_values, b_times = base.to_arrays()
    t_users, t_items, t_values, t_times = test.to_arrays()
    items = np.union1d(base.item_ids, test.item_ids)
    both = build_interactions(
        folder / name, np.concatenate([b_users, t_users]), np.concatenate([b_items, t_items]),
        np.concatenate([b_values, t_values]), np.concatenate([b_times, t_times]), item_ids=items,
    )
    both = both.with_item_features(_aligned_rows(base.item_features, base.item_ids, items),
                                   base.feature_names).with_item_titles(
        _aligned_titles(base.item_titles, base.item_ids, items))
    keys = both.entry_users.astype(np.int64) * both.n_items + both.csr.indices
    test_keys = both.user_index(t_users) * both.n_items + both.item_index(t_items)
    in_test = np.isin(keys, test_keys)
    return TrainTestSplit(both.select(~in_test), both.select(in_test))


def _aligned_rows(features, ids, universe):
    if features is None:
        return None
    rows = np.searchsorted(universe, ids)
    coo = features.tocoo()
    return sp.csr_array((coo.data, (rows[coo.row], coo.col)), shape=(universe.size, features.shape[1]))


def _aligned_titles(titles, ids, universe):
    if titles is None:
        return None
    out = np.full(universe.size, "", dtype=object)
    out[np.searchsorted(universe, ids)] = titles
    return out


def _movielens_layout(path):
    """'100k', 'dat' or 'csv', from the first line of a ratings file."""
    with open(path, "rb") as f:
        first = f.readline(4096)
    if b"::" in first:
        return "dat"
    if b"\t" in first:
        return "100k"
    if b"," in first or path.suffix.lower() == ".csv":
        return "csv"
    if path.suffix.lower() == ".dat":
        return "dat"
    if not first.strip():
        raise ValueError(f"{path}: the file is empty")
    raise ValueError(
        f"{path}, line 1: not a MovieLens ratings file (expected user, item, rating and "
        "timestamp separated by a tab, '::' or ',')"
    )


def _union_ids(movie_ids, rated):
    """Sorted union of the movie ids and the rated item ids."""
    lo = min(int(movie_ids.min()), int(rated.min())) if movie_ids.size else int(rated.min())
    hi = max(int(movie_ids.max()), int(rated.max())) if movie_ids.size else int(rated.max())
    if hi - lo <= 4 * (movie_ids.size + rated.size) + 1_000_000:  # dense ids: a presence table
        present = np.zeros(hi - lo + 1, dtype=bool)
        present[movie_ids - lo] = True
        present[rated - lo] = True
        return np.flatnonzero(present) + lo
    return np.unique(np.sort(np.concatenate([movie_ids, rated])))


def _int_field(text, name, line, what):
    try:
        return int(text)
    except ValueError:
        raise _error(name, line, f"{what} {text!r} is not an integer") from None


def _movie_table(name, rows):
    """Check ``(line, id, title, genre names)`` rows; number the genres alphabetically."""
    seen = {}
    for line, movie, _, _ in rows:
        if movie in seen:
            raise _error(name, line, f"movie id {movie} already appeared on line {seen[movie]}")
        seen[movie] = line
    genre_names = sorted({g for *_, genres in rows for g in genres})
    column = {g: j for j, g in enumerate(genre_names)}
    ids = np.array([r[1] for r in rows], dtype=np.int64)
    titles = [r[2] for r in rows]
    genre_lists = [sorted({column[g] for g in r[3]}) for r in rows]
    return ids, titles, genre_lists, genre_names


def _decode(raw):
    """UTF-8 text (ML-10M and later), else latin-1 (ML-100k, ML-1M)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _lines(text):
    """Split on line breaks only (``str.splitlines`` also splits on \\x85, \\x1c, ...)."""
    return text.replace("\r\n", "\n").split("\n")


def _split_genres(text):
    text = text.strip()
    if not text or text == NO_GENRES:
        return []
    return [g for g in text.split("|") if g]


def _read_genre_names(path):
    """``u.genre`` (``name|index`` lines) -> genre names by index."""
    name = str(path)
    names = {}
    for line, text in enumerate(_lines(path.read_bytes().decode("latin-1")), 1):
        if not text.strip():
            continue
        parts = text.split("|")
        if len(parts) != 2:
            raise _error(name, line, f"expected 2 pipe-separated fields (name|index), got {len(parts)}")
        names[_int_field(parts[1], name, line, "genre index")] = parts[0]
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{name}: genre indices must be 0..{len(names) - 1}, got {sorted(names)}")
    return [names[j] for j in range(len(names))]


def _read_u_item(path):
    """ML-100k ``u.item``: id | title | release | video release | IMDb URL | genre flags.

    The genre names come from ``u.genre`` beside it, else the standard 19.
    """
    genre_path = path.parent / "u.genre"
    genre_names = _read_genre_names(genre_path) if genre_path.is_file() else list(ML100K_GENRES)
    name = str(path)
    n_cols = 5 + len(genre_names)
    ids, titles, genre_lists = [], [], []
    seen = {}
    for line, text in enumerate(_lines(path.read_bytes().decode("latin-1")), 1):
        if not text.strip():
            continue
        parts = text.split("|")
        if len(parts) != n_cols:
            raise _error(name, line, f"expected {n_cols} pipe-separated fields, got {len(parts)}")
        movie = _int_field(parts[0], name, line, "movie id")
        if movie in seen:
            raise _error(name, line, f"movie id {movie} already appeared on line {seen[movie]}")
        seen[movie] = line
        flags = parts[5:]
        if not all(f in ("0", "1") for f in flags):
            raise _error(name, line, "genre flags must be 0 or 1")
        ids.append(movie)
        titles.append(parts[1])
        genre_lists.append([j for j, f in enumerate(flags) if f == "1"])
    return np.array(ids, dtype=np.int64), titles, genre_lists, genre_names


def _read_movies_dat(path):
    """ML-1M / ML-10M ``movies.dat``: ``id::title::Genre1|Genre2``."""
    name = str(path)
    rows = []
    for line, row in enumerate(_lines(_decode(path.read_bytes())), 1):
        if not row.strip():
            continue
        parts = row.split("::")
        if len(parts) < 3:
            raise _error(name, line, f"expected 3 '::'-separated fields, got {len(parts)}")
        movie = _int_field(parts[0], name, line, "movie id")
        rows.append((line, movie, "::".join(parts[1:-1]), _split_genres(parts[-1])))
    return _movie_table(name, rows)


def _read_movies_csv(path):
    """ML-20M+ ``movies.csv``: header ``movieId,title,genres``, titles may be quoted."""
    name = str(path)
    rows = []
    with io.StringIO(_decode(path.read_bytes()), newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["movieId", "title", "genres"]:
            raise _error(name, 1, f"expected the header 'movieId,title,genres', got {header!r}")
        for fields in reader:
            line = reader.line_num
            if not fields:
                continue
            if len(fields) != 3:
                raise _error(name, line, f"expected 3 comma-separated fields, got {len(fields)}")
            movie = _int_field(fields[0], name, line, "movie id")
            rows.append((line, movie, fields[1], _split_genres(fields[2])))
    return _movie_table(name, rows)


