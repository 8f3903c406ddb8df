"""NumPy twin of ``fastrec._kernels.ncf_nb``: neural collaborative filtering, a batch at a time.

``params`` is a dict of the arrays ``user_gmf``, ``item_gmf``, ``user_mlp``,
``item_mlp`` (tables with zero columns when the part is absent) and ``dense`` (the MLP
tower ``[W_0, b_0, ...]`` then ``h`` and ``c``); ``layout`` is ``(dims, w_off, b_off,
h_off)`` as the kernel takes them.
"""
import numpy as np


def tower_weights(dense, layout):
    """The tower's weight matrices and bias vectors, as views of ``dense``."""
    dims, w_off, b_off, h_off = layout
    n_layers = len(dims) - 1
    ws = [dense[w_off[l]:w_off[l] + dims[l] * dims[l + 1]].reshape(dims[l], dims[l + 1])
          for l in range(n_layers)]
    bs = [dense[b_off[l]:b_off[l] + dims[l + 1]] for l in range(n_layers)]
    return ws, bs


def forward(params, layout, users, items):
    """Logits of the (user, item) pairs, and what the backward pass needs."""
    dims, _, _, h_off = layout
    dense = params["dense"]
    f = params["user_gmf"].shape[1]
    e = params["user_mlp"].shape[1]
    gmf = params["user_gmf"][users] * params["item_gmf"][items]
    parts = [gmf]
    acts = []
    if e:
        ws, bs = tower_weights(dense, layout)
        a = np.hstack([params["user_mlp"][users], params["item_mlp"][items]])
        acts.append(a)
        for w, b in zip(ws, bs, strict=True):
            a = np.maximum(a @ w + b, 0.0)
            acts.append(a)
        parts.append(a)
    x = np.hstack(parts)
    n_x = f + (dims[-1] if e else 0)
    h, c = dense[h_off:h_off + n_x], dense[h_off + n_x]
    return x @ h + c, (x, acts)


def loss_and_gradients(params, layout, users, items, labels, *, mse, reg):
    """The batch objective (1/B) sum_s [l_s + reg/2 (|e_u|^2 + |e_i|^2)] + reg/2 (|W|^2 + |h|^2)
    and its gradient for every array of ``params`` (full-size, zero where unused)."""
    dims, w_off, b_off, h_off = layout
    dense = params["dense"]
    f = params["user_gmf"].shape[1]
    e = params["user_mlp"].shape[1]
    b = users.size
    logits, (x, acts) = forward(params, layout, users, items)
    if mse:
        losses = (logits - labels) ** 2
        delta = 2 * (logits - labels) / b
    else:
        losses = np.logaddexp(0, logits) - labels * logits
        delta = (1 / (1 + np.exp(-logits)) - labels) / b
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    n_x = x.shape[1]
    h = dense[h_off:h_off + n_x]
    grads["dense"][h_off:h_off + n_x] = delta @ x
    grads["dense"][h_off + n_x] = delta.sum()
    dx = delta[:, None] * h[None, :]
    np.add.at(grads["user_gmf"], users, dx[:, :f] * params["item_gmf"][items])
    np.add.at(grads["item_gmf"], items, dx[:, :f] * params["user_gmf"][users])
    if e:
        ws, _ = tower_weights(dense, layout)
        d = dx[:, f:]
        for l in range(len(ws) - 1, -1, -1):
            d = d * (acts[l + 1] > 0)
            grads["dense"][w_off[l]:w_off[l] + ws[l].size] = (acts[l].T @ d).ravel()
            grads["dense"][b_off[l]:b_off[l] + ws[l].shape[1]] = d.sum(axis=0)
            d = d @ ws[l].T
        np.add.at(grads["user_mlp"], users, d[:, :e])
        np.add.at(grads["item_mlp"], items, d[:, e:])
    # regularisation: each sample's embedding rows, and the weights once
    objective = losses.sum() / b
    for side, index in (("user", users), ("item", items)):
        for part in ("gmf", "mlp"):
            table = params[f"{side}_{part}"]
            np.add.at(grads[f"{side}_{part}"], index, reg / b * table[index])
            objective += reg / (2 * b) * (table[index] ** 2).sum()
    mask = decay_mask(layout, dense.size)
    grads["dense"] += reg * mask * dense
    objective += reg / 2 * (mask * dense ** 2).sum()
    return objective, losses.sum(), grads


def decay_mask(layout, size):
    """1 on the weights (W, h), 0 on the biases (b, c)."""
    dims, _, b_off, _ = layout
    mask = np.ones(size)
    for l in range(len(dims) - 1):
        mask[b_off[l]:b_off[l] + dims[l + 1]] = 0
    mask[-1] = 0
    return mask


def train_epoch(params, moments, layout, users, items, labels, batch, *, mse, adam, lr, beta1,
                beta2, eps, reg, step):
    """The kernel's epoch: mini-batches in the given order, Adam (lazy on embedding rows:
    only rows in the batch move) or SGD.  Updates ``params`` and ``moments`` (dicts of
    ``(m, v)`` per array) in place; returns (summed loss, steps)."""
    total = 0.0
    for s0 in range(0, users.size, batch):
        u, i, y = users[s0:s0 + batch], items[s0:s0 + batch], labels[s0:s0 + batch]
        _, loss, grads = loss_and_gradients(params, layout, u, i, y, mse=mse, reg=reg)
        total += loss
        step += 1
        rows = {"user_gmf": np.unique(u), "user_mlp": np.unique(u), "item_gmf": np.unique(i),
                "item_mlp": np.unique(i), "dense": slice(None)}
        for name, value in params.items():
            where = rows[name]
            g = grads[name][where]
            if adam:
                m, v = moments[name]
                m[where] = beta1 * m[where] + (1 - beta1) * g
                v[where] = beta2 * v[where] + (1 - beta2) * g * g
                m_hat = m[where] / (1 - beta1 ** step)
                v_hat = v[where] / (1 - beta2 ** step)
                value[where] -= lr * m_hat / (np.sqrt(v_hat) + eps)
            else:
                value[where] -= lr * g
    return total, step
