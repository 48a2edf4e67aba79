"""The check every model makes of its token-id input."""
import numpy as np

from ..backend import to_numpy
from ..errors import IndexRangeError, ShapeError


def check_token_ids(ids, vocab_size, where, allow_ignore=False):
    """``ids`` as a (B, T) integer array with values in [0, vocab_size) (or -1, "ignore",
    for targets when ``allow_ignore``); a ShapeError or IndexRangeError naming ``where``."""
    ids = to_numpy(getattr(ids, "data", ids))     # ids on the GPU are checked on the host
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ShapeError(f"{where} must be (B, T) integer token ids (pad with "
                         f"tinylm.text.pad_sequences), got shape {ids.shape}, dtype {ids.dtype}")
    low = -1 if allow_ignore else 0
    if ids.size and (ids.min() < low or ids.max() >= vocab_size):
        raise IndexRangeError(f"{where} must be in [{low}, {vocab_size}), got values in "
                              f"[{ids.min()}, {ids.max()}]")
    return ids
