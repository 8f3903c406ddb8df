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


@numba.njit(inline="always", fastmath=True)
def _step_vector(param, m, v, grad, adam, lr_t, beta1, beta2, eps_t, bias2):
    """One optimiser step on the vector ``param``.  Adam's bias corrections are folded
    into ``lr_t = lr / (1 - beta1^t)`` and ``bias2 = 1 / sqrt(1 - beta2^t)``, so the step
    is lr * m_hat / (sqrt(v_hat) + eps); SGD ignores ``m`` and ``v``."""
    if adam:
        for q in range(param.shape[0]):
            g = grad[q]
            mq = beta1 * m[q] + (1 - beta1) * g
            vq = beta2 * v[q] + (1 - beta2) * g * g
            m[q] = mq
            v[q] = vq
            param[q] -= lr_t * mq / (np.sqrt(vq) * bias2 + eps_t)
    else:
        for q in range(param.shape[0]):
            param[q] -= lr_t * grad[q]


@numba.njit(cache=True)
def _groups(keys):
    """Positions of ``keys`` sorted by key (stable), and where each key's run starts."""
    order = np.argsort(keys, kind="mergesort")
    starts = np.empty(order.size + 1, dtype=np.int64)
    n = 0
    for p in range(order.size):
        if p == 0 or keys[order[p]] != keys[order[p - 1]]:
            starts[n] = p
            n += 1
    starts[n] = order.size
    return order, starts[:n + 1]


@numba.njit(inline="always", fastmath=True)
def _step_rows(keys, order, starts, grads, table, m, v, adam, lr_t, beta1, beta2, eps_t, bias2):
    """Add the per-sample gradient rows of each distinct key (in sample order, into the
    first one's row) and step that row of ``table`` once: lazy Adam, rows not in the
    batch are left alone."""
    if table.shape[1] == 0:
        return
    for k in range(starts.size - 1):
        g = grads[order[starts[k]]]
        for p in range(starts[k] + 1, starts[k + 1]):
            other = grads[order[p]]
            for q in range(g.shape[0]):
                g[q] += other[q]
        key = keys[order[starts[k]]]
        if adam:
            _step_vector(table[key], m[key], v[key], g, True, lr_t, beta1, beta2, eps_t, bias2)
        else:
            _step_vector(table[key], g, g, g, False, lr_t, beta1, beta2, eps_t, bias2)


@numba.njit(fastmath=True, cache=True, nogil=True)
def _chunk_gradients(lo, hi, batch_start, users, items, labels, mse, inv_b, reg_e, user_gmf, item_gmf,
                     user_mlp, item_mlp, dense, dims, w_off, b_off, h_off, gd, act_buf, back_buf, delta,
                     grad_user_gmf, grad_item_gmf, grad_user_mlp, grad_item_mlp):
    """Forward and backward pass of samples ``lo:hi``: adds their dense gradients to ``gd``,
    writes their embedding gradients (rows ``s - batch_start``), returns their summed loss.

    The MLP tower runs layer by layer over the chunk as small matrix products (BLAS),
    so each weight row is read once per chunk rather than once per sample.
    """
    rows = hi - lo
    f = user_gmf.shape[1]
    e = user_mlp.shape[1]
    n_layers = dims.size - 1 if e > 0 else 0
    top = dims[dims.size - 1] if e > 0 else 0
    c_off = h_off + f + top
    zero = dense.dtype.type(0)
    # activations of layer l: rows x dims[l], one after the other in act_buf
    starts = np.zeros(n_layers + 2, dtype=np.int64)
    for l in range(n_layers + 1):
        starts[l + 1] = starts[l] + rows * dims[l]
    x = act_buf[0:rows * dims[0]].reshape((rows, dims[0])) if e > 0 else act_buf[0:0].reshape((0, 0))
    for r in range(rows):
        pm, qm = user_mlp[users[lo + r]], item_mlp[items[lo + r]]
        xr = x[r]
        for q in range(e):
            xr[q] = pm[q]
            xr[e + q] = qm[q]
    for l in range(n_layers):
        d_in, d_out = dims[l], dims[l + 1]
        w = dense[w_off[l]:w_off[l] + d_in * d_out].reshape((d_in, d_out))
        bias = dense[b_off[l]:b_off[l] + d_out]
        x = act_buf[starts[l]:starts[l + 1]].reshape((rows, d_in))
        out = act_buf[starts[l + 1]:starts[l + 2]].reshape((rows, d_out))
        np.dot(x, w, out)
        for r in range(rows):
            o = out[r]
            for j in range(d_out):
                o[j] = max(o[j] + bias[j], zero)
    last = act_buf[starts[n_layers]:starts[n_layers + 1]].reshape((rows, top))
    h_gmf = dense[h_off:h_off + f]
    h_mlp = dense[h_off + f:h_off + f + top]
    loss = 0.0
    for r in range(rows):
        s = lo + r
        pu, qi = user_gmf[users[s]], item_gmf[items[s]]
        logit = dense[c_off]
        for q in range(f):
            logit += h_gmf[q] * pu[q] * qi[q]
        lr_ = last[r]
        for j in range(top):
            logit += h_mlp[j] * lr_[j]
        y = labels[s]
        if mse:
            diff = logit - y
            loss += diff * diff
            delta[r] = 2 * diff * inv_b
        else:
            loss += _softplus(logit) - y * logit
            delta[r] = (1 / (1 + np.exp(-logit)) - y) * inv_b
    # backward: the output layer and GMF per sample
    g_h_gmf = gd[h_off:h_off + f]
    g_h_mlp = gd[h_off + f:h_off + f + top]
    for r in range(rows):
        s = lo + r
        dr = delta[r]
        gd[c_off] += dr
        pu, qi = user_gmf[users[s]], item_gmf[items[s]]
        g_pu, g_qi = grad_user_gmf[s - batch_start], grad_item_gmf[s - batch_start]
        for q in range(f):
            g_h_gmf[q] += dr * pu[q] * qi[q]
            dg = dr * h_gmf[q]
            g_pu[q] = dg * qi[q] + reg_e * pu[q]
            g_qi[q] = dg * pu[q] + reg_e * qi[q]
    if e == 0:
        return loss
    # the tower, layer by layer: dA (rows x d_out) in one half of back_buf, dA below in the other
    half = back_buf.size // 2
    d_above = back_buf[0:rows * top].reshape((rows, top))
    for r in range(rows):
        lr_ = last[r]
        dr = delta[r]
        da = d_above[r]
        for j in range(top):
            g_h_mlp[j] += dr * lr_[j]
            da[j] = dr * h_mlp[j]
    current = 0
    for l in range(n_layers - 1, -1, -1):
        d_in, d_out = dims[l], dims[l + 1]
        w = dense[w_off[l]:w_off[l] + d_in * d_out].reshape((d_in, d_out))
        gw = gd[w_off[l]:w_off[l] + d_in * d_out].reshape((d_in, d_out))
        g_bias = gd[b_off[l]:b_off[l] + d_out]
        x = act_buf[starts[l]:starts[l + 1]].reshape((rows, d_in))
        out = act_buf[starts[l + 1]:starts[l + 2]].reshape((rows, d_out))
        dz = back_buf[current * half:current * half + rows * d_out].reshape((rows, d_out))
        below = back_buf[(1 - current) * half:(1 - current) * half + rows * d_in].reshape((rows, d_in))
        for r in range(rows):
            o, z = out[r], dz[r]
            for j in range(d_out):
                if o[j] <= 0:
                    z[j] = 0
                g_bias[j] += z[j]
        gw += np.dot(x.T, dz)
        np.dot(dz, w.T, below)
        current = 1 - current
    d0 = back_buf[current * half:current * half + rows * dims[0]].reshape((rows, dims[0]))
    for r in range(rows):
        s = lo + r
        g_pm, g_qm = grad_user_mlp[s - batch_start], grad_item_mlp[s - batch_start]
        pm, qm = user_mlp[users[s]], item_mlp[items[s]]
        dr_ = d0[r]
        for q in range(e):
            g_pm[q] = dr_[q] + reg_e * pm[q]
            g_qm[q] = dr_[e + q] + reg_e * qm[q]
    return loss


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
    width = 1
    for l in range(dims.size):
        width = max(width, dims[l])
    n_chunks = (batch + chunk - 1) // chunk
    grad_dense = np.zeros((n_chunks, dense.size), dtype=dtype)
    act_buf = np.zeros((n_chunks, chunk * max(dims.sum(), 1)), dtype=dtype)
    back_buf = np.zeros((n_chunks, 2 * chunk * width), dtype=dtype)
    delta_buf = np.zeros((n_chunks, chunk), dtype=dtype)
    grad_user_gmf = np.zeros((batch, f), dtype=dtype)
    grad_item_gmf = np.zeros((batch, f), dtype=dtype)
    grad_user_mlp = np.zeros((batch, e), dtype=dtype)
    grad_item_mlp = np.zeros((batch, e), dtype=dtype)
    chunk_loss = np.zeros(n_chunks)
    total = 0.0
    for s0 in range(0, n, batch):
        s1 = min(n, s0 + batch)
        inv_b = dtype.type(1.0 / (s1 - s0))
        reg_e = dtype.type(reg) * inv_b
        used = (s1 - s0 + chunk - 1) // chunk
        for c in prange(used):
            gd = grad_dense[c]
            gd[:] = 0
            lo = s0 + c * chunk
            chunk_loss[c] = _chunk_gradients(
                lo, min(s1, lo + chunk), s0, users, items, labels, mse, inv_b, reg_e, user_gmf,
                item_gmf, user_mlp, item_mlp, dense, dims, w_off, b_off, h_off, gd, act_buf[c],
                back_buf[c], delta_buf[c], grad_user_gmf, grad_item_gmf, grad_user_mlp, grad_item_mlp)
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
        g = grad_dense[0]  # the chunks' rows added in chunk order
        for c in range(1, used):
            gc = grad_dense[c]
            for p in range(g.shape[0]):
                g[p] += gc[p]
        reg_w = dtype.type(reg)
        for p in range(g.shape[0]):
            g[p] += reg_w * decay_mask[p] * dense[p]
        _step_vector(dense, m_dense, v_dense, g, adam, lr_t, b1, b2, eps_t, bias2)
        batch_users = users[s0:s1]
        batch_items = items[s0:s1]
        u_order, u_starts = _groups(batch_users)
        i_order, i_starts = _groups(batch_items)
        _step_rows(batch_users, u_order, u_starts, grad_user_gmf, user_gmf, m_user_gmf, v_user_gmf,
                   adam, lr_t, b1, b2, eps_t, bias2)
        _step_rows(batch_users, u_order, u_starts, grad_user_mlp, user_mlp, m_user_mlp, v_user_mlp,
                   adam, lr_t, b1, b2, eps_t, bias2)
        _step_rows(batch_items, i_order, i_starts, grad_item_gmf, item_gmf, m_item_gmf, v_item_gmf,
                   adam, lr_t, b1, b2, eps_t, bias2)
        _step_rows(batch_items, i_order, i_starts, grad_item_mlp, item_mlp, m_item_mlp, v_item_mlp,
                   adam, lr_t, b1, b2, eps_t, bias2)
    return total, step
