"""NumPy reference of the matrix-factorisation SGD kernels (twin of ``_kernels.mf_nb``).

One epoch visits the entries in the order given, updating the parameters in place
with the same rules as the kernel; sampled negatives are passed in, so the reference
needs no random numbers of its own.
"""
import numpy as np


def sgd_epoch(loss, users, items, ratings, negatives, mu, bu, bi, pu, qi, lr, reg,
              lr_bias, reg_bias, biased):
    """One sequential SGD pass; ``negatives`` (n_entries, n_neg) for "logistic" / "bpr".

    - "mse" (Surprise's SVD): e = r - (mu + b_u + b_i + p_u.q_i), then
      b += lr_bias (e - reg_bias b) and p_u += lr (e q_i - reg p_u), q_i += lr (e p_u - reg q_i)
      with the old p_u;
    - "logistic": the same step with e = y - sigmoid(b_u + b_i + p_u.q_i), for the
      positive (y = 1) and then each of its negatives (y = 0);
    - "bpr": for each negative j, g = sigmoid(-(x_ui - x_uj)) with x = b_i + p_u.q_i;
      p_u += lr (g (q_i - q_j) - reg p_u), q_i += lr (g p_u - reg q_i),
      q_j += lr (-g p_u - reg q_j), b_i += lr_bias (g - reg_bias b_i),
      b_j += lr_bias (-g - reg_bias b_j).
    """
    for e in range(users.size):
        u, i = users[e], items[e]
        if loss == "mse":
            _pointwise(u, i, ratings[e], False, mu, bu, bi, pu, qi, lr, reg, lr_bias, reg_bias, biased)
        elif loss == "logistic":
            _pointwise(u, i, 1.0, True, mu, bu, bi, pu, qi, lr, reg, lr_bias, reg_bias, biased)
            for j in negatives[e]:
                _pointwise(u, j, 0.0, True, mu, bu, bi, pu, qi, lr, reg, lr_bias, reg_bias, biased)
        else:
            for j in negatives[e]:
                x = pu[u] @ (qi[i] - qi[j]) + ((bi[i] - bi[j]) if biased else 0.0)
                g = 1.0 / (1.0 + np.exp(x))
                p_old, qi_old, qj_old = pu[u].copy(), qi[i].copy(), qi[j].copy()
                pu[u] += lr * (g * (qi_old - qj_old) - reg * p_old)
                qi[i] += lr * (g * p_old - reg * qi_old)
                qi[j] += lr * (-g * p_old - reg * qj_old)
                if biased:
                    bi[i] += lr_bias * (g - reg_bias * bi[i])
                    bi[j] += lr_bias * (-g - reg_bias * bi[j])


def _pointwise(u, i, target, logistic, mu, bu, bi, pu, qi, lr, reg, lr_bias, reg_bias, biased):
    x = mu + pu[u] @ qi[i] + ((bu[u] + bi[i]) if biased else 0.0)
    err = target - (1.0 / (1.0 + np.exp(-x)) if logistic else x)
    if biased:
        bu[u] += lr_bias * (err - reg_bias * bu[u])
        bi[i] += lr_bias * (err - reg_bias * bi[i])
    p_old = pu[u].copy()
    pu[u] += lr * (err * qi[i] - reg * p_old)
    qi[i] += lr * (err * p_old - reg * qi[i])


def gd_epoch(users, items, ratings, mu, bu, bi, pu, qi, lr, reg, lr_bias, reg_bias, biased):
    """One full-batch gradient step on the summed squared error.

    Every gradient is taken at the current parameters, then all move at once:
    p_u += lr (sum_i e_ui q_i - reg n_u p_u) and likewise for q_i and the biases
    (regularisation counted once per rating, as SGD applies it).
    """
    err = ratings - (mu + np.einsum("ij,ij->i", pu[users], qi[items])
                     + ((bu[users] + bi[items]) if biased else 0.0))
    n_users, n_items = pu.shape[0], qi.shape[0]
    count_u = np.bincount(users, minlength=n_users)[:, None]
    count_i = np.bincount(items, minlength=n_items)[:, None]
    grad_p = np.zeros_like(pu)
    grad_q = np.zeros_like(qi)
    np.add.at(grad_p, users, err[:, None] * qi[items])
    np.add.at(grad_q, items, err[:, None] * pu[users])
    grad_p -= reg * count_u * pu
    grad_q -= reg * count_i * qi
    if biased:
        bu += lr_bias * (np.bincount(users, weights=err, minlength=n_users) - reg_bias * count_u[:, 0] * bu)
        bi += lr_bias * (np.bincount(items, weights=err, minlength=n_items) - reg_bias * count_i[:, 0] * bi)
    pu += lr * grad_p
    qi += lr * grad_q


def adagrad_epoch(loss, users, items, ratings, negatives, mu, bu, bi, pu, qi, lr, reg, lr_bias,
                  reg_bias, biased, sums, eps):
    """``sgd_epoch`` with row-wise Adagrad: every row (and bias) g-step is scaled by
    lr / sqrt(sum + eps) after adding the step's mean squared gradient (the bias's
    squared gradient) to its running sum; ``sums`` = (users, items, user bias, item bias).
    """
    acc_u, acc_i, acc_bu, acc_bi = sums

    def row_step(rows, index, grad, acc):
        acc[index] += np.mean(grad ** 2)
        rows[index] += lr / np.sqrt(acc[index] + eps) * grad

    def bias_step(bias, index, grad, acc):
        acc[index] += grad ** 2
        bias[index] += lr_bias / np.sqrt(acc[index] + eps) * grad

    for e in range(users.size):
        u, i = users[e], items[e]
        if loss == "bpr":
            for j in negatives[e]:
                x = pu[u] @ (qi[i] - qi[j]) + ((bi[i] - bi[j]) if biased else 0.0)
                g = 1.0 / (1.0 + np.exp(x))
                p, a, b = pu[u].copy(), qi[i].copy(), qi[j].copy()
                row_step(pu, u, g * (a - b) - reg * p, acc_u)
                row_step(qi, i, g * p - reg * a, acc_i)
                row_step(qi, j, -g * p - reg * b, acc_i)
                if biased:
                    bias_step(bi, i, g - reg_bias * bi[i], acc_bi)
                    bias_step(bi, j, -g - reg_bias * bi[j], acc_bi)
            continue
        terms = [(i, ratings[e])] if loss == "mse" else [(i, 1.0)] + [(j, 0.0) for j in negatives[e]]
        for j, target in terms:
            x = mu + pu[u] @ qi[j] + ((bu[u] + bi[j]) if biased else 0.0)
            err = target - (x if loss == "mse" else 1.0 / (1.0 + np.exp(-x)))
            if biased:
                bias_step(bu, u, err - reg_bias * bu[u], acc_bu)
                bias_step(bi, j, err - reg_bias * bi[j], acc_bi)
            p, q = pu[u].copy(), qi[j].copy()
            row_step(pu, u, err * q - reg * p, acc_u)
            row_step(qi, j, err * p - reg * q, acc_i)
