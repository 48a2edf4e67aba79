"""Word vectors on a page: the 2-D PCA map the chapters draw (05, 06, 07)."""
import numpy as np

from ..errors import ShapeError


def pca_2d(X):
    """Project the rows of X on their two main directions: centre, then X_c = U S V^T (SVD);
    the coordinates are U[:, :2] S[:2] = X_c V[:, :2]. Returns (coords (n, 2), the variance
    along every direction, S^2 / (n - 1))."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 2:
        raise ShapeError(f"pca_2d: need an (n, d) array with n >= 2 rows and d >= 2 columns, "
                         f"got shape {X.shape}")
    Xc = X - X.mean(axis=0)
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    return U[:, :2] * S[:2], S ** 2 / (len(X) - 1)
