"""Small input checks shared by the public modules (never used inside kernels)."""
import numbers

import numpy as np


def check_random_state(random_state):
    """None | int | SeedSequence | Generator -> ``numpy.random.Generator``."""
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(random_state, bool):
            raise TypeError(f"random_state must be None, an int, a SeedSequence or a Generator, got {random_state!r}")
        if isinstance(random_state, numbers.Integral) and random_state < 0:
            raise ValueError(f"random_state must be a non-negative int, got {random_state}")
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    raise TypeError(
        f"random_state must be None, an int, a SeedSequence or a Generator, got {type(random_state).__name__}"
    )


def check_positive_int(value, name, *, minimum=1, allow_none=False):
    """An integer >= minimum (bools rejected), named in the error."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_non_negative_float(value, name, *, strictly_positive=False):
    """A finite float >= 0 (or > 0), named in the error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (strictly_positive and value == 0):
        bound = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")
    return value


def check_choice(value, name, choices):
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def as_1d(values, name):
    """A 1-D ndarray view of a list, Series or array (no copy when possible)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got an array of shape {arr.shape}")
    return arr


def describe_some(values, limit=5):
    """'[a, b, c, ...]' with at most ``limit`` values, for error messages."""
    values = list(values[: limit + 1])
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"
