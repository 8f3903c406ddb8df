"""Reference for the bias SGD kernel: the same updates, written as a plain loop."""
import numpy as np


def baseline_sgd(ratings, users, items, global_mean, user_bias, item_bias, n_epochs, reg,
                 learning_rate):
    """Sequential SGD on biases, in place (twin of ``fastrec._kernels.baseline_nb``)."""
    ratings = np.asarray(ratings, dtype=np.float64).tolist()
    users, items = np.asarray(users).tolist(), np.asarray(items).tolist()
    bu, bi = user_bias.tolist(), item_bias.tolist()
    for _ in range(n_epochs):
        for r, u, i in zip(ratings, users, items):
            err = r - (global_mean + bu[u] + bi[i])
            bu[u] += learning_rate * (err - reg * bu[u])
            bi[i] += learning_rate * (err - reg * bi[i])
    user_bias[:] = bu
    item_bias[:] = bi
