"""Chapter 06 (word2vec): it runs end to end with ``--quick``, and its hand-derived gradients,
its C9-as-written demonstration and its PCA are tested here directly."""
import numpy as np
import pytest

from tinylm.tensor import Tensor
from tinylm.embeddings import word2vec_autograd as wa

from chapter_tools import assert_chapter_passes, load_definitions


@pytest.fixture(scope="module")
def ch06():
    return load_definitions("06_word2vec.py")


@pytest.mark.ch06
def test_chapter_06_runs(tmp_path):
    out = assert_chapter_passes("06_word2vec.py", tmp_path, ["06_word2vec_map.png"])
    assert "kernel step == autograd step (input vectors)" in out
    assert "C9 as written is minimised (loss ~ 0) by identical vectors" in out


@pytest.mark.ch06
@pytest.mark.parametrize("seed", [0, 1])
def test_c9_softmax_hand_gradient_equals_autograd(ch06, seed):
    rng = np.random.default_rng(seed)
    v, U, o = rng.normal(size=5), rng.normal(size=(9, 5)), 4
    loss, g_v, g_U = ch06.softmax_grads(v, U, o)
    V_, U_ = Tensor(v[None].copy(), requires_grad=True), Tensor(U.copy(), requires_grad=True)
    ref = wa.softmax_loss(V_, U_, np.array([o]))
    ref.backward()
    assert loss == pytest.approx(float(ref.data), rel=1e-12)
    np.testing.assert_allclose(g_v, V_.grad[0], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(g_U, U_.grad, rtol=1e-10, atol=1e-13)


@pytest.mark.ch06
def test_c9_negative_sampling_hand_gradient_equals_finite_differences(ch06):
    rng = np.random.default_rng(2)
    h, u, Un = rng.normal(size=4), rng.normal(size=4), rng.normal(size=(5, 4))
    _, g_h, g_u, g_un = ch06.negative_sampling_grads(h, u, Un)
    f = lambda x: ch06.negative_sampling_grads(x, u, Un)[0]
    np.testing.assert_allclose(g_h, ch06.numeric_grad(f, h.copy()), rtol=1e-6, atol=1e-9)
    fu = lambda x: ch06.negative_sampling_grads(h, u, x)[0]
    np.testing.assert_allclose(g_un, ch06.numeric_grad(fu, Un.copy()), rtol=1e-6, atol=1e-9)


@pytest.mark.ch06
def test_c9_as_written_never_lowers_wrong_words(ch06):
    pairs = [([1, 2], 0), ([0, 2], 1), ([0, 1], 2)]
    (t0, o0), (t1, o1) = ch06.c9_positive_only_training(10, 4, pairs, steps=30, lr=1.0, seed=0)
    assert t1 > 0.9 > t0 and o1 > o0 - 0.01     # the wrong words are never pushed down

