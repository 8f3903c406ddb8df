"""Numba kernels for matrix factorisation (twins in ``fastrec.reference.mf``).

SGD runs on a LIBMF-style blocked schedule.  Users and items are split into B groups
each and the ratings into B x B blocks; in stratum s the B blocks (g, (g + s) mod B)
share no user and no item, so threads take whole blocks without locks.  The user
groups are further cut into chunks that go through all B strata back to back, so
their factor rows stay in cache.  Each block visits its ratings in a fixed order and
draws its negatives from its own random stream (seeded by seed, epoch and block), so
the factors are bit-identical for every thread count, run after run.  One loop body
per loss; Numba specialises each for float32 or float64 parameters.
"""
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

MSE, LOGISTIC, BPR = 0, 1, 2
LOSSES = {"mse": MSE, "logistic": LOGISTIC, "bpr": BPR}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


PREFETCH_DISTANCE = 10  # entries ahead whose item row is fetched into cache


@intrinsic
def _prefetch(typingctx, matrix, row, col):
    """Hint the CPU to fetch the cache line of ``matrix[row, col]`` (llvm.prefetch)."""
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        index = [context.cast(builder, value, kind, types.intp)
                 for value, kind in zip(args[1:], signature.args[1:])]
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, index)
        i32 = ir.IntType(32)
        if getattr(pointer.type, "is_opaque", False):  # LLVM 15+: one pointer type
            name = "llvm.prefetch.p0"
        else:  # older llvmlite: typed pointers, the intrinsic takes an i8*
            pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
            name = "llvm.prefetch.p0i8"
        hint = ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, hint, name)
        builder.call(fn, [pointer, i32(0), i32(3), i32(1)])  # read, keep in all caches, data
        return context.get_dummy_value()
    return types.void(matrix, row, col), codegen


@numba.njit(inline="always")
def _prefetch_row(matrix, row):
    for col in range(0, matrix.shape[1], 16):  # a 64-byte line holds 16 float32 (8 float64)
        _prefetch(matrix, row, col)


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
def _step(p, q, step, decay):
    """p, q <- decay p + step q, decay q + step p (both from the old values)."""
    for f in range(p.shape[0]):
        a = p[f]
        b = q[f]
        p[f] = decay * a + step * b
        q[f] = decay * b + step * a


@numba.njit(inline="always", fastmath=True)
def _dot(p, q, start):
    total = start
    for f in range(p.shape[0]):
        total += p[f] * q[f]
    return total


@numba.njit(inline="always", fastmath=True)
def _logistic_step(u, i, positive, bu, bi, p, q, lr, decay, lr_b, reg_b, biased):
    """One binary cross-entropy step on (u, i); returns its loss before the step."""
    x = _dot(p, q, bu[u] + bi[i] if biased else bu.dtype.type(0))
    if positive:
        err = bu.dtype.type(1.0 - 1.0 / (1.0 + np.exp(-x)))
        loss = _softplus(-x)
    else:
        err = bu.dtype.type(-1.0 / (1.0 + np.exp(-x)))
        loss = _softplus(x)
    if biased:
        bu[u] += lr_b * (err - reg_b * bu[u])
        bi[i] += lr_b * (err - reg_b * bi[i])
    _step(p, q, lr * err, decay)
    return loss


@numba.njit(fastmath=True, cache=True, nogil=True)  # not inlined: compiled with its own flags
def _mse_block(start, stop, users, items, ratings, mu, bu, bi, pu, qi, lr, decay, lr_b, reg_b,
               biased):
    """Surprise's SVD step on each rating of the block; returns the summed squared error."""
    total = 0.0
    k = pu.shape[1]
    for e in range(start, stop):
        if e + PREFETCH_DISTANCE < stop:
            _prefetch_row(qi, items[e + PREFETCH_DISTANCE])
            _prefetch_row(pu, users[e + PREFETCH_DISTANCE])
        u = users[e]
        i = items[e]
        p = pu[u]
        q = qi[i]
        dot = mu + bu[u] + bi[i] if biased else mu
        for f in range(k):
            dot += p[f] * q[f]
        err = ratings[e] - dot
        if biased:
            bu[u] += lr_b * (err - reg_b * bu[u])
            bi[i] += lr_b * (err - reg_b * bi[i])
        step = lr * err
        for f in range(k):
            a = p[f]
            b = q[f]
            p[f] = decay * a + step * b
            q[f] = decay * b + step * a
        total += err * err
    return total, stop - start


@numba.njit(fastmath=True, cache=True, nogil=True)
def _sampled_block(bpr, start, stop, users, items, g_start, g_size, group_items, indptr, indices,
                   n_neg, state, bu, bi, pu, qi, lr, decay, lr_b, reg_b, biased):
    """Logistic or BPR steps on each positive of the block and its sampled negatives."""
    total = 0.0
    count = 0
    for e in range(start, stop):
        if e + PREFETCH_DISTANCE < stop:
            _prefetch_row(qi, items[e + PREFETCH_DISTANCE])
        u = users[e]
        i = items[e]
        p = pu[u]
        if not bpr:
            total += _logistic_step(u, i, True, bu, bi, p, qi[i], lr, decay, lr_b, reg_b, biased)
            count += 1
        for _ in range(n_neg):
            state, j = _draw(state, g_start, g_size, group_items)
            if _is_positive(indptr, indices, u, j):
                continue
            if bpr:
                total += _pairwise(i, j, bi, p, qi[i], qi[j], lr, decay, lr_b, reg_b, biased)
            else:
                total += _logistic_step(u, j, False, bu, bi, p, qi[j], lr, decay, lr_b, reg_b, biased)
            count += 1
    return total, count


@numba.njit(inline="always", fastmath=True)
def _pairwise(i, j, bi, p, qi, qj, lr, decay, lr_b, reg_b, biased):
    """One BPR step on (u, i, j); returns -log sigmoid(x_ui - x_uj) before the step."""
    x = bi[i] - bi[j] if biased else bi.dtype.type(0)
    for f in range(p.shape[0]):
        x += p[f] * (qi[f] - qj[f])
    g = bi.dtype.type(1.0 / (1.0 + np.exp(x)))
    step = lr * g
    for f in range(p.shape[0]):
        a = p[f]
        b = qi[f]
        c = qj[f]
        p[f] = decay * a + step * (b - c)
        qi[f] = decay * b + step * a
        qj[f] = decay * c - step * a
    if biased:
        bi[i] += lr_b * (g - reg_b * bi[i])
        bi[j] += lr_b * (-g - reg_b * bi[j])
    return _softplus(-x)


@numba.njit(inline="always", fastmath=True)
def _adagrad_row(row, grad_scale, direction_a, direction_b, coef_b, reg, acc, index, lr, eps):
    """row += lr / sqrt(acc + eps) * g with g = grad_scale * (a + coef_b b) - reg row,
    acc[index] += mean(g^2) first (row-wise Adagrad); ``direction_b`` may be ``direction_a``."""
    total = 0.0
    for f in range(row.shape[0]):
        g = grad_scale * (direction_a[f] + coef_b * direction_b[f]) - reg * row[f]
        total += g * g
    acc[index] += total / row.shape[0]
    scale = row.dtype.type(lr / np.sqrt(acc[index] + eps))
    for f in range(row.shape[0]):
        row[f] += scale * (grad_scale * (direction_a[f] + coef_b * direction_b[f]) - reg * row[f])


@numba.njit(inline="always")
def _adagrad_bias(bias, index, grad, acc, lr, eps):
    acc[index] += grad * grad
    bias[index] += bias.dtype.type(lr / np.sqrt(acc[index] + eps) * grad)


@numba.njit(fastmath=True, cache=True, nogil=True)
def _adagrad_block(loss, start, stop, users, items, ratings, g_start, g_size, group_items,
                   indptr, indices, n_neg, state, mu, bu, bi, pu, qi, lr, reg, lr_b, reg_b,
                   biased, acc_u, acc_i, acc_bu, acc_bi, eps):
    """The block's steps with row-wise Adagrad: each user and item row (and bias) keeps
    the running sum of its squared gradients and steps by lr / sqrt(sum + eps)."""
    total = 0.0
    count = 0
    zero = pu.dtype.type(0)
    old_p = np.empty(pu.shape[1], dtype=pu.dtype)  # the user row before a step
    for e in range(start, stop):
        u = users[e]
        i = items[e]
        p = pu[u]
        n_terms = 1 if loss == MSE else (n_neg + 1 if loss == LOGISTIC else n_neg)
        for t in range(n_terms):  # mse: the rating; logistic: the positive, then negatives
            if loss == MSE or (loss == LOGISTIC and t == 0):
                j = i
            else:
                state, j = _draw(state, g_start, g_size, group_items)
                if _is_positive(indptr, indices, u, j):
                    continue
            q = qi[j]
            if loss == BPR:
                qi_row = qi[i]
                x = (bi[i] - bi[j]) if biased else zero
                for f in range(p.shape[0]):
                    x += p[f] * (qi_row[f] - q[f])
                g = pu.dtype.type(1.0 / (1.0 + np.exp(x)))
                total += _softplus(-x)
                old_p[:] = p
                _adagrad_row(p, g, qi_row, q, -1.0, reg, acc_u, u, lr, eps)
                _adagrad_row(qi_row, g, old_p, old_p, 0.0, reg, acc_i, i, lr, eps)
                _adagrad_row(q, -g, old_p, old_p, 0.0, reg, acc_i, j, lr, eps)
                if biased:
                    _adagrad_bias(bi, i, g - reg_b * bi[i], acc_bi, lr_b, eps)
                    _adagrad_bias(bi, j, -g - reg_b * bi[j], acc_bi, lr_b, eps)
            else:
                x = _dot(p, q, (mu + bu[u] + bi[j]) if biased else mu)
                if loss == MSE:
                    err = ratings[e] - x
                    total += err * err
                else:
                    target = 1.0 if t == 0 else 0.0
                    err = pu.dtype.type(target - 1.0 / (1.0 + np.exp(-x)))
                    total += _softplus(-x) if t == 0 else _softplus(x)
                if biased:
                    _adagrad_bias(bu, u, err - reg_b * bu[u], acc_bu, lr_b, eps)
                    _adagrad_bias(bi, j, err - reg_b * bi[j], acc_bi, lr_b, eps)
                old_p[:] = p
                _adagrad_row(p, err, q, q, 0.0, reg, acc_u, u, lr, eps)
                _adagrad_row(q, err, old_p, old_p, 0.0, reg, acc_i, j, lr, eps)
            count += 1
    return total, count


@numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def sgd_epoch(loss, block_ptr, n_blocks, users, items, ratings, group_items, group_ptr,
              indptr, indices, n_neg, seed, epoch, mu, bu, bi, pu, qi, lr, decay, lr_b, reg_b,
              biased, block_loss, block_count, use_adagrad, acc_u, acc_i, acc_bu, acc_bi, eps):
    """One epoch of SGD over the blocked schedule, updating the parameters in place.

    Contract: entries sorted by block, ``block_ptr`` of length C*B*B + 1 where block
    b = (c * B + g) * B + h holds chunk c of user group g against item group h;
    ``users``/``items`` int32/int64 per entry, ``ratings`` in the parameters' dtype;
    ``group_items`` lists the items of each item group (``group_ptr``, B + 1);
    ``indptr``/``indices`` the sorted CSR of the training data (to skip sampled
    negatives that are positives); scalars in the parameters' dtype, ``decay`` =
    1 - lr * reg.  ``block_loss`` / ``block_count`` receive each block's summed loss
    and its number of terms.  Chunk by chunk, the B strata run one after the other,
    so a chunk's user rows are still in cache when its next stratum comes.
    ``use_adagrad``: row-wise Adagrad with the running sums ``acc_*`` (users, items,
    user and item biases) and ``eps``; ``decay`` is then taken as ``reg``.
    """
    n_chunks = (block_ptr.shape[0] - 1) // (n_blocks * n_blocks)
    for c in range(n_chunks):
        for s in range(n_blocks):
            for g in numba.prange(n_blocks):
                h = (g + s) % n_blocks
                b = (c * n_blocks + g) * n_blocks + h
                if use_adagrad:
                    total, count = _adagrad_block(
                        loss, block_ptr[b], block_ptr[b + 1], users, items, ratings, group_ptr[h],
                        group_ptr[h + 1] - group_ptr[h], group_items, indptr, indices, n_neg,
                        _block_state(seed, epoch, b), mu, bu, bi, pu, qi, lr, decay, lr_b, reg_b,
                        biased, acc_u, acc_i, acc_bu, acc_bi, eps)
                elif loss == MSE:
                    total, count = _mse_block(block_ptr[b], block_ptr[b + 1], users, items,
                                              ratings, mu, bu, bi, pu, qi, lr, decay, lr_b, reg_b,
                                              biased)
                else:
                    total, count = _sampled_block(
                        loss == BPR, block_ptr[b], block_ptr[b + 1], users, items, group_ptr[h],
                        group_ptr[h + 1] - group_ptr[h], group_items, indptr, indices, n_neg,
                        _block_state(seed, epoch, b), bu, bi, pu, qi, lr, decay, lr_b, reg_b,
                        biased)
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
    n_chunks = (block_ptr.shape[0] - 1) // (n_blocks * n_blocks)
    for c in range(n_chunks):
        for s in range(n_blocks):
            for g in range(n_blocks):
                h = (g + s) % n_blocks
                b = (c * n_blocks + g) * n_blocks + h
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
