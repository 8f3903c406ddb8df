"""Numba kernels for matrix factorisation (twins in ``fastrec.reference.mf``).

SGD runs on a LIBMF-style blocked schedule.  Users and items are dealt into B groups
each and the ratings into B x B blocks; in stratum s the B blocks (g, (g + s) mod B)
share no user and no item, so threads take whole blocks without locks.  Each block
visits its ratings in a fixed order and draws its negatives from its own random
stream (seeded by seed, epoch and block), so the factors are bit-identical for every
thread count, run after run.  One loop body per loss; Numba specialises each for
float32 or float64 parameters.
"""
import numba
import numpy as np

MSE, LOGISTIC, BPR = 0, 1, 2
LOSSES = {"mse": MSE, "logistic": LOGISTIC, "bpr": BPR}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@numba.njit(inline="always")
def _mix(z):
    """splitmix64's output function: a bijective 64-bit hash."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always")
def _block_state(seed, epoch, block):
    return _mix(np.uint64(seed) ^ _mix(np.uint64(epoch) * _GOLDEN + np.uint64(block)))


@numba.njit(inline="always")
def _draw(state, start, size, group_items):
    """Next item of the group (uniform), and the advanced stream state."""
    state = state + _GOLDEN
    pick = ((_mix(state) >> np.uint64(32)) * np.uint64(size)) >> np.uint64(32)
    return state, group_items[start + np.int64(pick)]


@numba.njit(inline="always")
def _is_positive(indptr, indices, u, j):
    """Whether user u interacted with item j (binary search in the sorted CSR row)."""
    lo, hi = indptr[u], indptr[u + 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < j:
            lo = mid + 1
        else:
            hi = mid
    return lo < indptr[u + 1] and indices[lo] == j


@numba.njit(inline="always")
def _softplus(x):
    return max(x, 0.0) + np.log1p(np.exp(-abs(x)))


@numba.njit(inline="always", fastmath=True)
def _pointwise(u, i, target, logistic, mu, bu, bi, pu, qi, lr, reg, lr_b, reg_b, biased):
    """One MSE or logistic step on (u, i); returns the pair's loss before the step."""
    dot = mu
    if biased:
        dot += bu[u] + bi[i]
    for f in range(pu.shape[1]):
        dot += pu[u, f] * qi[i, f]
    if logistic:
        err = target - 1.0 / (1.0 + np.exp(-dot))
        loss = _softplus(-dot) if target > 0 else _softplus(dot)
    else:
        err = target - dot
        loss = err * err
    err = pu.dtype.type(err)
    if biased:
        bu[u] += lr_b * (err - reg_b * bu[u])
        bi[i] += lr_b * (err - reg_b * bi[i])
    for f in range(pu.shape[1]):
        p = pu[u, f]
        q = qi[i, f]
        pu[u, f] = p + lr * (err * q - reg * p)
        qi[i, f] = q + lr * (err * p - reg * q)
    return loss


@numba.njit(inline="always", fastmath=True)
def _pairwise(u, i, j, bi, pu, qi, lr, reg, lr_b, reg_b, biased):
    """One BPR step on (u, i, j); returns -log sigmoid(x_ui - x_uj) before the step."""
    x = pu.dtype.type(0.0)
    if biased:
        x += bi[i] - bi[j]
    for f in range(pu.shape[1]):
        x += pu[u, f] * (qi[i, f] - qi[j, f])
    g = pu.dtype.type(1.0 / (1.0 + np.exp(x)))
    for f in range(pu.shape[1]):
        p = pu[u, f]
        a = qi[i, f]
        b = qi[j, f]
        pu[u, f] = p + lr * (g * (a - b) - reg * p)
        qi[i, f] = a + lr * (g * p - reg * a)
        qi[j, f] = b + lr * (-g * p - reg * b)
    if biased:
        bi[i] += lr_b * (g - reg_b * bi[i])
        bi[j] += lr_b * (-g - reg_b * bi[j])
    return _softplus(-x)


@numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def sgd_epoch(loss, block_ptr, n_blocks, users, items, ratings, group_items, group_ptr,
              indptr, indices, n_neg, seed, epoch, mu, bu, bi, pu, qi, lr, reg, lr_b, reg_b,
              biased, block_loss, block_count):
    """One epoch of SGD over the blocked schedule, updating the parameters in place.

    Contract: entries sorted by block (``block_ptr``, B*B + 1), ``users``/``items``
    int32/int64 per entry, ``ratings`` in the parameters' dtype; ``group_items`` lists
    the items of each item group (``group_ptr``, B + 1); ``indptr``/``indices`` the
    sorted CSR of the training data (to skip sampled negatives that are positives);
    scalars in the parameters' dtype.  ``block_loss``/``block_count`` receive each
    block's summed loss and its number of terms.
    """
    for s in range(n_blocks):
        for g in numba.prange(n_blocks):
            h = (g + s) % n_blocks
            b = g * n_blocks + h
            state = _block_state(seed, epoch, b)
            g_start = group_ptr[h]
            g_size = group_ptr[h + 1] - g_start
            total = 0.0
            count = 0
            for e in range(block_ptr[b], block_ptr[b + 1]):
                u = users[e]
                i = items[e]
                if loss == MSE:
                    total += _pointwise(u, i, ratings[e], False, mu, bu, bi, pu, qi, lr, reg,
                                        lr_b, reg_b, biased)
                    count += 1
                    continue
                if loss == LOGISTIC:
                    total += _pointwise(u, i, 1.0, True, mu, bu, bi, pu, qi, lr, reg, lr_b,
                                        reg_b, biased)
                    count += 1
                for _ in range(n_neg):
                    state, j = _draw(state, g_start, g_size, group_items)
                    if _is_positive(indptr, indices, u, j):
                        continue
                    if loss == LOGISTIC:
                        total += _pointwise(u, j, 0.0, True, mu, bu, bi, pu, qi, lr, reg, lr_b,
                                            reg_b, biased)
                    else:
                        total += _pairwise(u, i, j, bi, pu, qi, lr, reg, lr_b, reg_b, biased)
                    count += 1
            block_loss[b] = total
            block_count[b] = count


@numba.njit(cache=True)
def epoch_plan(block_ptr, n_blocks, users, items, group_items, group_ptr, indptr, indices,
               n_neg, seed, epoch):
    """The visiting order and negatives of one ``sgd_epoch`` (for the reference).

    Returns ``order`` (entries in visiting order) and ``negatives`` (n_entries, n_neg),
    -1 where a drawn negative was a positive and skipped.
    """
    order = np.empty(users.shape[0], dtype=np.int64)
    negatives = np.full((users.shape[0], n_neg), -1, dtype=np.int64)
    pos = 0
    for s in range(n_blocks):
        for g in range(n_blocks):
            h = (g + s) % n_blocks
            b = g * n_blocks + h
            state = _block_state(seed, epoch, b)
            g_start = group_ptr[h]
            g_size = group_ptr[h + 1] - g_start
            for e in range(block_ptr[b], block_ptr[b + 1]):
                order[pos] = e
                for t in range(n_neg):
                    state, j = _draw(state, g_start, g_size, group_items)
                    if not _is_positive(indptr, indices, users[e], j):
                        negatives[pos, t] = j
                pos += 1
    return order, negatives
