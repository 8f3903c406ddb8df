"""Reading delimited text files of interactions.

Two paths, one contract (every error names the file and the 1-based line):

- :func:`read_number_table` parses files that hold only numbers with
  ``numpy.loadtxt`` (compiled, about 1 s for 10M lines);
- :func:`load_csv` takes any delimited file: the numeric path when it can, else the
  ``csv`` module, which handles quoting, string ids and ISO dates.
"""
import csv
import operator
import os
import re
import warnings
from pathlib import Path

import numpy as np

from fastrec._checks import check_choice
from fastrec.data import DUPLICATE_POLICIES, Interactions

__all__ = ["load_csv", "read_number_table"]

_SEP_NAMES = {",": "comma", "\t": "tab", "::": "'::'", ";": "semicolon", "|": "pipe", " ": "space"}
_LOADTXT_ROW = re.compile(r"at row (\d+)")
_LOADTXT_COLUMN = re.compile(r"column (\d+)")


def _sep_label(sep):
    return _SEP_NAMES.get(sep, repr(sep))


def _error(name, line, message):
    return ValueError(f"{name}, line {line}: {message}")



def read_number_table(path, sep, fields, *, header=None):
    """Parse a delimited file holding only numbers, every line with the same fields.

    Parameters
    ----------
    path : Path
    sep : str
        Field separator: one character, or one character doubled (``"::"``).
    fields : sequence of {"int", "float"}
        One entry per field: int64 (decimals rejected) or float64 columns.
    header : sequence of str or True, optional
        The first line is a header that must hold these names (case-insensitive), or
        that is skipped (True).

    Returns
    -------
    list of ndarray, one per field.  Blank lines are skipped; extra fields beyond a
    doubled separator's last wanted one are not checked.
    """
    name = str(path)
    skip = 0
    if header is not None:
        with open(path, "rb") as f:
            got = f.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
        if header is not True and [g.strip().lower() for g in got.split(sep)] != [h.lower() for h in header]:
            raise _error(name, 1, f"expected the header {sep.join(header)!r}, got {got!r}")
        skip = 1
    doubled = len(sep) == 2 and sep[0] == sep[1]
    # "a::b" split on ":" gives "a", "", "b": read every other column
    usecols = tuple(range(0, 2 * len(fields) - 1, 2)) if doubled else None
    dtype = np.dtype([(f"f{j}", np.int64 if kind == "int" else np.float64)
                      for j, kind in enumerate(fields)])
    try:
        with warnings.catch_warnings():  # an empty file is reported below, as an error
            warnings.filterwarnings("ignore", "loadtxt: input contained no data")
            table = np.loadtxt(path, dtype=dtype, delimiter=sep[0], skiprows=skip,
                               usecols=usecols, comments=None, ndmin=1, encoding="latin-1")
    except ValueError as exc:
        raise _loadtxt_error(name, str(exc), sep, len(fields), doubled, skip) from None
    if table.size == 0:
        raise ValueError(f"{name}: the file holds no data lines")
    return [np.ascontiguousarray(table[f"f{j}"]) for j in range(len(fields))]


def _loadtxt_error(name, message, sep, n_fields, doubled, skip):
    """numpy.loadtxt's message, re-worded with the file's 1-based line number."""
    row = _LOADTXT_ROW.search(message)
    if row is None:
        return ValueError(f"{name}: {message}")
    converting = "could not convert" in message
    # loadtxt counts data rows (blank lines and skipped rows aside): from 0 in conversion
    # errors, from 1 in the others
    line, text = _find_data_row(name, int(row.group(1)) - (0 if converting else 1), skip)
    column = _LOADTXT_COLUMN.search(message)
    if converting and column:
        field = int(column.group(1))
        field = (field - 1) // 2 + 1 if doubled else field
        value = message.split("'")[1] if "'" in message else "?"
        kind = "an integer" if "int" in message.split(" to ")[-1] else "a number"
        return _error(name, line, f"field {field} ({value!r}) is not {kind}")
    return _error(name, line, f"expected {n_fields} {_sep_label(sep)}-separated fields, "
                              f"got {len(text.split(sep))}")


def _find_data_row(name, row, skip):
    """``(line number, text)`` of the 0-based data row ``row`` (blank lines don't count)."""
    with open(name, encoding="latin-1") as f:
        seen = -1
        for line, text in enumerate(f, 1):
            if line > skip and text.strip():
                seen += 1
                if seen == row:
                    return line, text.rstrip("\r\n")
    return row + skip + 1, ""


# --------------------------------------------------------------------------
# generic delimited files
# --------------------------------------------------------------------------
def load_csv(path, *, user_col="user", item_col="item", rating_col=None, timestamp_col=None,
             sep=",", header=True, duplicates="error", encoding="utf-8"):
    """Load interactions from a delimited text file.

    Parameters
    ----------
    path : str or path-like
    user_col, item_col : str or int
        Columns of the user and item ids: header names when ``header=True``,
        0-based positions otherwise.
    rating_col, timestamp_col : str or int, optional
        Column of the ratings (None: implicit feedback) and of the timestamps
        (integers, other numbers, or ISO 8601 dates).
    sep : str
        Field separator; a one-character separator honours CSV quoting.
    header : bool
        Whether the first line names the columns.
    duplicates : {"error", "sum", "last", "mean"}
        Passed to :meth:`Interactions.from_arrays`.
    encoding : str
        Text encoding of the file.

    Returns
    -------
    Interactions
        Ids are int64 when every value of the column is an integer, else strings.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A malformed line or value; the message names the file and the line number.
    """
    check_choice(duplicates, "duplicates", DUPLICATE_POLICIES)
    if not isinstance(sep, str) or not sep or sep in ("\n", "\r"):
        raise ValueError(f"sep must be a non-empty string other than a line break, got {sep!r}")
    path = Path(os.fspath(path))
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"interactions file not found: {path} {what}")
    name = str(path)
    wanted = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": timestamp_col}
    wanted = {role: col for role, col in wanted.items() if col is not None}
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # tolerate a byte-order mark
    fast = _numeric_csv(path, sep, header, wanted, encoding)
    if fast is not None:
        return build_interactions(path, *fast, duplicates=duplicates)
    with open(path, newline="", encoding=encoding) as f:
        try:
            lines, rows, positions = _read_rows(f, name, sep, header, wanted)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{name}: not valid {encoding} text ({exc}); pass encoding=") from None
    if not rows:
        raise ValueError(f"{name}: the file holds no data lines")
    columns = dict(zip(positions, zip(*rows)))
    lines = np.array(lines, dtype=np.int64)
    users = _parse_ids(columns[positions[0]], lines, name, "user id")
    items = _parse_ids(columns[positions[1]], lines, name, "item id")
    ratings = times = None
    at = 2
    if rating_col is not None:
        ratings = _parse_numbers(columns[positions[at]], lines, name, "rating")
        at += 1
    if timestamp_col is not None:
        times = _parse_times(columns[positions[at]], lines, name)
    return build_interactions(path, users, items, ratings, times, duplicates=duplicates)


def _numeric_csv(path, sep, header, wanted, encoding):
    """``(users, items, ratings, timestamps)`` by the vectorised parser, or None.

    Taken when the file has no quotes and every field of every line is a plain
    number (ids and timestamps integers).  Anything else returns None, and the
    csv-module reader (which names the offending line) does the work.
    """
    probe = "0123456789.,;:|+- \t\nuser"
    try:
        # (encoding with "utf-8-sig" would prepend a byte-order mark: probe as utf-8)
        plain = "utf-8" if encoding == "utf-8-sig" else encoding
        ascii_compatible = probe.encode(plain) == probe.encode("ascii")
    except (LookupError, UnicodeError):
        return None
    if len(sep) != 1 or not sep.isascii() or sep in '0123456789.+-"\r' or not ascii_compatible:
        return None
    with open(path, "rb") as f:
        first = f.readline().rstrip(b"\r\n")  # quoted fields fail loadtxt below: csv path
    if not first.strip():
        return None
    names = None
    if header:
        names = [h.strip() for h in first.decode(encoding, errors="replace").split(sep)]
    n_fields = len(names) if names is not None else first.count(sep.encode()) + 1
    positions = {role: _column_position(col, role, names, str(path)) for role, col in wanted.items()}
    if max(positions.values()) >= n_fields:
        return None  # let the csv reader raise its message
    kinds = ["float"] * n_fields
    for role, j in positions.items():
        if role != "rating":
            kinds[j] = "int"
    try:
        columns = read_number_table(path, sep, kinds, header=True if header else None)
    except ValueError:
        return None
    rating, timestamp = positions.get("rating"), positions.get("timestamp")
    if rating is not None and not np.isfinite(columns[rating]).all():
        return None  # NaN or inf: the csv path names the line
    return (columns[positions["user"]], columns[positions["item"]],
            None if rating is None else columns[rating].astype(np.float64, copy=False),
            None if timestamp is None else columns[timestamp])


def _read_rows(f, name, sep, header, wanted):
    """Rows of the wanted columns and their line numbers (blank lines are skipped)."""
    if len(sep) == 1:
        reader = csv.reader(f, delimiter=sep)
        records = ((reader.line_num, row) for row in reader)
    else:
        records = ((line, text.rstrip("\r\n").split(sep)) for line, text in enumerate(f, 1)
                   if text.strip())
    records = ((line, row) for line, row in records if row)
    label = _sep_label(sep)
    names = None
    if header:
        first = next(records, None)
        if first is None:
            raise ValueError(f"{name}: the file is empty")
        names = [h.strip() for h in first[1]]
    positions = []
    for role, col in wanted.items():
        positions.append(_column_position(col, role, names, name))
    n_fields = None if names is None else len(names)
    pick = operator.itemgetter(*positions)
    lines, rows = [], []
    for line, row in records:
        if n_fields is None:
            n_fields = len(row)
            if max(positions) >= n_fields:
                raise _error(name, line, f"column {max(positions)} asked for, but the line has "
                                         f"{n_fields} {label}-separated fields")
        if len(row) != n_fields:
            raise _error(name, line, f"expected {n_fields} {label}-separated fields, got {len(row)}")
        lines.append(line)
        rows.append(pick(row) if len(positions) > 1 else (pick(row),))
    return lines, rows, positions


def _column_position(col, role, names, name):
    arg = f"{role}_col"
    if isinstance(col, bool) or not isinstance(col, (str, int, np.integer)):
        raise TypeError(f"{arg} must be a column name or a 0-based position, got {col!r}")
    if names is None:
        if isinstance(col, str):
            raise ValueError(
                f"{arg}={col!r} names a column, but header=False: give 0-based positions "
                "(e.g. user_col=0, item_col=1)"
            )
        if col < 0:
            raise ValueError(f"{arg} must be a 0-based position >= 0, got {col}")
        return int(col)
    if isinstance(col, str):
        matches = [j for j, h in enumerate(names) if h == col]
        if not matches:
            raise ValueError(f"{name}: no column {col!r} ({arg}); the header has {names}")
        if len(matches) > 1:
            raise ValueError(f"{name}: the header names column {col!r} ({arg}) {len(matches)} times")
        return matches[0]
    if not 0 <= col < len(names):
        raise ValueError(f"{arg}={col} is outside the {len(names)} columns of {name}")
    return int(col)


def _convert_column(values, lines, name, what, converters, why):
    """Convert a column of strings with the first converter that takes all of it.

    When none does, raise naming the line of the first value that no converter
    takes; if each value is fine alone, the column mixes kinds.
    """
    arr = np.strings.strip(np.array(values, dtype=str))
    for convert in converters:
        try:
            return convert(arr)
        except (ValueError, OverflowError):
            pass
    step = 1 << 14
    for lo in range(0, arr.size, step):
        chunk = arr[lo:lo + step]
        if any(_converts(convert, chunk) for convert in converters):
            continue
        for k in range(chunk.size):
            if not any(_converts(convert, chunk[k:k + 1]) for convert in converters):
                raise _error(name, int(lines[lo + k]), f"{what} {values[lo + k]!r} {why}")
    raise ValueError(f"{name}: the {what} column mixes kinds of values (such as numbers "
                     "and dates); use one kind per column")


def _converts(convert, arr):
    try:
        convert(arr)
    except (ValueError, OverflowError):
        return False
    return True


def _as_int64(arr):
    return arr.astype(np.int64)


def _as_float64(arr):
    return arr.astype(np.float64)


def _as_datetime(arr):
    # numpy would also read "17" as the year 17: insist on ISO dates, YYYY-MM-DD...
    if not (np.strings.find(arr, "-") == 4).all():
        raise ValueError("not ISO 8601 dates")
    return arr.astype("datetime64[s]")


def _parse_ids(values, lines, name, what):
    """int64 when every value is an integer, else the (stripped) strings."""
    arr = np.strings.strip(np.array(values, dtype=str))
    empty = arr == ""
    if empty.any():
        raise _error(name, int(lines[np.argmax(empty)]), f"empty {what}")
    try:
        return arr.astype(np.int64)
    except (ValueError, OverflowError):
        return arr


def _parse_numbers(values, lines, name, what):
    out = _convert_column(values, lines, name, what, [_as_float64], "is not a number")
    bad = ~np.isfinite(out)
    if bad.any():
        first = int(np.argmax(bad))
        raise _error(name, int(lines[first]), f"{what} {values[first]!r} is not a finite number")
    return out


def _parse_times(values, lines, name):
    """int64 if every value is an integer, else float64, else datetime64 (ISO 8601)."""
    out = _convert_column(values, lines, name, "timestamp", [_as_int64, _as_float64, _as_datetime],
                          "is neither a number nor an ISO 8601 date")
    bad = ~np.isfinite(out) if out.dtype.kind == "f" else np.isnat(out) if out.dtype.kind == "M" else None
    if bad is not None and bad.any():
        first = int(np.argmax(bad))
        raise _error(name, int(lines[first]), f"timestamp {values[first]!r} is missing or not finite")
    return out




def build_interactions(path, users, items, ratings, times, **kwargs):
    """``Interactions.from_arrays`` with the file named in its errors."""
    try:
        return Interactions.from_arrays(users, items, ratings, times, **kwargs)
    except (ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ValueError(f"{path}: {message}") from exc
