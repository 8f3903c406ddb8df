"""NumPy twin of ``fastrec._kernels.blend``."""
import numpy as np
import scipy.sparse as sp

NORMALIZATIONS = ("zscore", "minmax", None)


def row_stats(block, normalize):
    """Per row ``(scale, shift)`` with normalised = (block - shift) * scale."""
    block = np.asarray(block, dtype=np.float64)
    how = NORMALIZATIONS[normalize]
    if how is None:
        return np.ones(block.shape[0]), np.zeros(block.shape[0])
    if how == "zscore":
        shift, spread = block.mean(axis=1), block.std(axis=1)
    else:
        shift = block.min(axis=1)
        spread = block.max(axis=1) - shift
    return 1.0 / np.where(spread > 0, spread, 1.0), shift


def add_normalized_product(block, block_scale, block_offset, x, t, rows, fallback, weight, normalize):
    """``block[r] = block_scale[r] * block[r] + block_offset[r] + weight * normalise(x[rows[r]] @ t)``;
    a row -1 takes ``fallback``."""
    x, t = sp.csr_array(x, dtype=np.float64), sp.csr_array(t, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    scores = np.tile(np.asarray(fallback, dtype=np.float64), (rows.size, 1))
    valid = rows >= 0
    scores[valid] = (x[rows[valid]] @ t).toarray()
    scale, shift = row_stats(scores, normalize)
    scores = (scores - shift[:, None]) * scale[:, None]
    combined = block_scale[:, None] * block.astype(np.float64) + block_offset[:, None] + weight * scores
    block[...] = combined.astype(block.dtype)
    return block
