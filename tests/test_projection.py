"""tinylm.embeddings.projection.pca_2d: the SVD map equals the covariance eigenvectors."""
import numpy as np
import pytest

from tinylm import ShapeError
from tinylm.embeddings.projection import pca_2d


def test_pca_2d_matches_covariance_eigenvectors():
    X = np.random.default_rng(7).normal(size=(40, 5)) * np.arange(1, 6)
    coords, explained = pca_2d(X)
    Xc = X - X.mean(axis=0)
    w, vecs = np.linalg.eigh(Xc.T @ Xc / 39)
    np.testing.assert_allclose(np.abs(coords), np.abs(Xc @ vecs[:, ::-1][:, :2]), atol=1e-10)
    np.testing.assert_allclose(explained, w[::-1], rtol=1e-10)


def test_pca_2d_bad_input():
    with pytest.raises(ShapeError, match=r"got shape \(1, 3\)"):
        pca_2d(np.ones((1, 3)))
