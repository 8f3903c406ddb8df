"""Numba kernels for neural collaborative filtering (twin: ``fastrec.reference.ncf``).

Parameters live in flat arrays: the four embedding tables, and ``dense`` holding the
MLP tower ``[W_0, b_0, W_1, b_1, ...]`` (W_l row-major, ``dims[l] x dims[l + 1]``),
then the output weights ``h`` and bias ``c``.  A batch is cut into chunks of a fixed
number of samples; the chunks run in parallel, each summing its dense gradients into
its own row, and the rows are then added in chunk order.  Embedding gradients are
kept per sample and added row by row in sample order.  The result therefore does not
depend on the thread count.
"""
import numba
import numpy as np
from numba import prange

from fastrec._kernels.mf_nb import _GOLDEN, _block_state, _is_positive, _mix, _softplus

SGD, ADAM = 0, 1
OPTIMIZERS = {"sgd": SGD, "adam": ADAM}


@numba.njit(inline="always")
def _below(state, n):
    """Next draw of the stream, uniform in [0, n) (n < 2**32), and the advanced state."""
    state = state + _GOLDEN
    return state, np.int64(((_mix(state) >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


@numba.njit(cache=True)
def epoch_samples(indptr, indices, values, n_items, neg_samples, implicit, seed, epoch):
    """The epoch's training samples ``(users, items, labels)`` in visiting order.

    Ratings: one sample per rating, labelled by it.  Implicit data: each interaction
    (label 1) followed by ``neg_samples`` items the user has not interacted with
    (label 0), drawn uniformly; then all samples are shuffled (Fisher-Yates).  One
    random stream per (seed, epoch).  Every user needs an item it has not interacted
    with (checked by the caller).
    """
    per = 1 + neg_samples if implicit else 1
    n = indices.size * per
    users = np.empty(n, dtype=np.int64)
    items = np.empty(n, dtype=np.int64)
    labels = np.empty(n, dtype=np.float64)
    state = _block_state(seed, epoch, 0)
    k = 0
    for u in range(indptr.size - 1):
        for p in range(indptr[u], indptr[u + 1]):
            users[k] = u
            items[k] = indices[p]
            labels[k] = 1.0 if implicit else values[p]
            k += 1
            if implicit:
                for _ in range(neg_samples):
                    state, j = _below(state, n_items)
                    while _is_positive(indptr, indices, u, j):
                        state, j = _below(state, n_items)
                    users[k] = u
                    items[k] = j
                    labels[k] = 0.0
                    k += 1
    for a in range(n - 1, 0, -1):
        state, b = _below(state, a + 1)
        users[a], users[b] = users[b], users[a]
        items[a], items[b] = items[b], items[a]
        labels[a], labels[b] = labels[b], labels[a]
    return users, items, labels


@numba.njit(inline="always")
def _apply(param, m, v, index, grad, adam, lr_t, beta1, beta2, eps_t, bias2):
    """One optimiser step on ``param[index]`` (flat arrays).  Adam's bias corrections are
    folded into ``lr_t = lr / (1 - beta1^t)`` and the denominator sqrt(v) / sqrt(1 - beta2^t) + eps."""
    if adam:
        m[index] = beta1 * m[index] + (1 - beta1) * grad
        v[index] = beta2 * v[index] + (1 - beta2) * grad * grad
        param[index] -= lr_t * m[index] / (np.sqrt(v[index]) * bias2 + eps_t)
    else:
        param[index] -= lr_t * grad


@numba.njit(cache=True, fastmath=True)
def _update_rows(keys, grads, table, m, v, adam, lr_t, beta1, beta2, eps_t, bias2):
    """Add the per-sample gradient rows of each distinct key (in sample order) and step
    that row of ``table`` once (lazy Adam: rows not in the batch are left alone)."""
    width = table.shape[1]
    if width == 0:
        return
    order = np.argsort(keys, kind="mergesort")
    flat, m_flat, v_flat = table.reshape(-1), m.reshape(-1), v.reshape(-1)
    start = 0
    while start < order.size:
        stop = start + 1
        row = keys[order[start]]
        while stop < order.size and keys[order[stop]] == row:
            stop += 1
        for q in range(width):
            grad = grads[order[start], q]
            for p in range(start + 1, stop):
                grad += grads[order[p], q]
            _apply(flat, m_flat, v_flat, row * width + q, grad, adam, lr_t, beta1, beta2, eps_t, bias2)
        start = stop


@numba.njit(parallel=True, fastmath=True, cache=True, nogil=True)
def train_epoch(users, items, labels, batch, chunk, mse, user_gmf, item_gmf, user_mlp, item_mlp,
                dense, dims, w_off, b_off, h_off, decay_mask, m_user_gmf, v_user_gmf, m_item_gmf,
                v_item_gmf, m_user_mlp, v_user_mlp, m_item_mlp, v_item_mlp, m_dense, v_dense,
                adam, lr, beta1, beta2, eps, reg, step):
    """One pass over the samples in mini-batches; returns (summed loss, optimiser steps).

    Per batch of B samples the objective is (1/B) sum_s [l_s + reg/2 (|e_u|^2 + |e_i|^2)]
    + reg/2 (|W|^2 + |h|^2), with l the squared error (``mse``) or the binary
    cross-entropy of the logit, and e the sample's embedding rows.  GMF is used when
    ``user_gmf`` has columns, the MLP tower when ``user_mlp`` has.
    """
    dtype = dense.dtype
    n = users.size
    f = user_gmf.shape[1]
    e = user_mlp.shape[1]
    n_layers = dims.size - 1 if e > 0 else 0
    top = dims[dims.size - 1] if e > 0 else 0
    width = 1
    for l in range(dims.size):
        width = max(width, dims[l])
    c_off = h_off + f + top
    n_chunks = (batch + chunk - 1) // chunk
    grad_dense = np.zeros((n_chunks, dense.size), dtype=dtype)
    acts = np.zeros((n_chunks, n_layers + 1, width), dtype=dtype)
    back = np.zeros((n_chunks, 2, width), dtype=dtype)
    grad_user_gmf = np.zeros((batch, f), dtype=dtype)
    grad_item_gmf = np.zeros((batch, f), dtype=dtype)
    grad_user_mlp = np.zeros((batch, e), dtype=dtype)
    grad_item_mlp = np.zeros((batch, e), dtype=dtype)
    chunk_loss = np.zeros(n_chunks)
    zero = dense.dtype.type(0)
    total = 0.0
    for s0 in range(0, n, batch):
        s1 = min(n, s0 + batch)
        inv_b = dtype.type(1.0 / (s1 - s0))
        reg_e = dtype.type(reg) * inv_b
        used = (s1 - s0 + chunk - 1) // chunk
        for c in prange(used):
            gd = grad_dense[c]
            gd[:] = 0
            a = acts[c]
            loss = 0.0
            for s in range(s0 + c * chunk, min(s1, s0 + (c + 1) * chunk)):
                # row views indexed by range() loops: no negative-index checks, so LLVM vectorises
                t = s - s0
                pu, qi = user_gmf[users[s]], item_gmf[items[s]]
                pm, qm = user_mlp[users[s]], item_mlp[items[s]]
                # forward: the MLP tower, then the output layer
                a0 = a[0]
                for q in range(e):
                    a0[q] = pm[q]
                    a0[e + q] = qm[q]
                for l in range(n_layers):
                    d_in, d_out = dims[l], dims[l + 1]
                    w = dense[w_off[l]:w_off[l] + d_in * d_out].reshape((d_in, d_out))
                    bias = dense[b_off[l]:b_off[l] + d_out]
                    x, out = a[l], a[l + 1]
                    for j in range(d_out):
                        out[j] = bias[j]
                    for k in range(d_in):
                        xk = x[k]
                        if xk != 0:
                            wk = w[k]
                            for j in range(d_out):
                                out[j] += xk * wk[j]
                    for j in range(d_out):
                        out[j] = max(out[j], zero)
                h_gmf = dense[h_off:h_off + f]
                h_mlp = dense[h_off + f:h_off + f + top]
                last = a[n_layers]
                logit = dense[c_off]
                for q in range(f):
                    logit += h_gmf[q] * pu[q] * qi[q]
                for j in range(top):
                    logit += h_mlp[j] * last[j]
                y = labels[s]
                if mse:
                    diff = logit - y
                    loss += diff * diff
                    delta = 2 * diff * inv_b
                else:
                    loss += _softplus(logit) - y * logit
                    delta = (1 / (1 + np.exp(-logit)) - y) * inv_b
                # backward
                gd[c_off] += delta
                g_h_gmf = gd[h_off:h_off + f]
                g_pu, g_qi = grad_user_gmf[t], grad_item_gmf[t]
                for q in range(f):
                    g_h_gmf[q] += delta * pu[q] * qi[q]
                    dg = delta * h_gmf[q]
                    g_pu[q] = dg * qi[q] + reg_e * pu[q]
                    g_qi[q] = dg * pu[q] + reg_e * qi[q]
                if e > 0:
                    current = 0
                    d = back[c, 0]
                    g_h_mlp = gd[h_off + f:h_off + f + top]
                    for j in range(top):
                        g_h_mlp[j] += delta * last[j]
                        d[j] = delta * h_mlp[j]
                    for l in range(n_layers - 1, -1, -1):
                        d_in, d_out = dims[l], dims[l + 1]
                        w = dense[w_off[l]:w_off[l] + d_in * d_out].reshape((d_in, d_out))
                        gw = gd[w_off[l]:w_off[l] + d_in * d_out].reshape((d_in, d_out))
                        g_bias = gd[b_off[l]:b_off[l] + d_out]
                        dz, below = back[c, current], back[c, 1 - current]
                        x, out = a[l], a[l + 1]
                        for j in range(d_out):
                            if out[j] <= 0:
                                dz[j] = 0
                            g_bias[j] += dz[j]
                        for k in range(d_in):
                            xk = x[k]
                            wk, gwk = w[k], gw[k]
                            acc = zero
                            for j in range(d_out):
                                gwk[j] += xk * dz[j]
                                acc += wk[j] * dz[j]
                            below[k] = acc
                        current = 1 - current
                    d = back[c, current]
                    g_pm, g_qm = grad_user_mlp[t], grad_item_mlp[t]
                    for q in range(e):
                        g_pm[q] = d[q] + reg_e * pm[q]
                        g_qm[q] = d[e + q] + reg_e * qm[q]
            chunk_loss[c] = loss
        for c in range(used):
            total += chunk_loss[c]
        # the optimiser: dense parameters, then the embedding rows of the batch
        step += 1
        if adam:
            lr_t = dtype.type(lr / (1 - beta1 ** step))
            bias2 = dtype.type(1 / np.sqrt(1 - beta2 ** step))
        else:
            lr_t = dtype.type(lr)
            bias2 = dtype.type(1)
        eps_t = dtype.type(eps)
        b1 = dtype.type(beta1)
        b2 = dtype.type(beta2)
        for p in range(dense.size):
            grad = dtype.type(0)
            for c in range(used):
                grad += grad_dense[c, p]
            grad += dtype.type(reg) * decay_mask[p] * dense[p]
            _apply(dense, m_dense, v_dense, p, grad, adam, lr_t, b1, b2, eps_t, bias2)
        b = s1 - s0
        batch_users = users[s0:s1]
        batch_items = items[s0:s1]
        _update_rows(batch_users, grad_user_gmf[:b], user_gmf, m_user_gmf, v_user_gmf, adam, lr_t,
                     b1, b2, eps_t, bias2)
        _update_rows(batch_items, grad_item_gmf[:b], item_gmf, m_item_gmf, v_item_gmf, adam, lr_t,
                     b1, b2, eps_t, bias2)
        _update_rows(batch_users, grad_user_mlp[:b], user_mlp, m_user_mlp, v_user_mlp, adam, lr_t,
                     b1, b2, eps_t, bias2)
        _update_rows(batch_items, grad_item_mlp[:b], item_mlp, m_item_mlp, v_item_mlp, adam, lr_t,
                     b1, b2, eps_t, bias2)
    return total, step
