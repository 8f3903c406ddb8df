"""Numba kernel: SGD on user and item biases (Surprise's BaselineOnly update rule)."""
import numba


@numba.njit(cache=True, nogil=True)
def baseline_sgd(ratings, users, items, global_mean, user_bias, item_bias, n_epochs, reg,
                 learning_rate):
    """Run ``n_epochs`` sequential passes over the entries, updating the biases in place.

    Contract: ``ratings`` float64, ``users``/``items`` int64 of the same length (visit
    order), ``user_bias``/``item_bias`` float64 (mutated).  Single-threaded and exact:
    equals ``fastrec.reference.baseline.baseline_sgd`` to rounding.
    """
    for _ in range(n_epochs):
        for e in range(ratings.shape[0]):
            u = users[e]
            i = items[e]
            err = ratings[e] - (global_mean + user_bias[u] + item_bias[i])
            user_bias[u] += learning_rate * (err - reg * user_bias[u])
            item_bias[i] += learning_rate * (err - reg * item_bias[i])
