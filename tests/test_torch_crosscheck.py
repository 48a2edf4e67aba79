"""tinylm against PyTorch, in float64: forward values and gradients w.r.t. inputs and
parameters of the layers and losses, with the same weights in both.

Skipped cleanly when torch is not installed (``pip install tinylm[compare]``).
"""
import numpy as np
import pytest

from tinylm import functional as F
from tinylm import nn
from tinylm.tensor import Tensor

torch = pytest.importorskip("torch")
tnn, tF = torch.nn, torch.nn.functional

pytestmark = pytest.mark.torch

RTOL, ATOL = 1e-10, 1e-12


def close(ours, theirs, rtol=RTOL, atol=ATOL):
    ours = ours.data if isinstance(ours, Tensor) else ours
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


def pair(array, requires_grad=True):
    """The same float64 values as a tinylm Tensor and a torch tensor."""
    array = np.asarray(array, dtype=np.float64)
    return (Tensor(array.copy(), requires_grad=requires_grad),
            torch.tensor(array, requires_grad=requires_grad))


def backward_both(ours, theirs, rng):
    """Backpropagate L = sum(out * R) with the same random R through both graphs."""
    close(ours, theirs)
    r = rng.standard_normal(ours.shape)
    (ours * Tensor(r)).sum().backward()
    (theirs * torch.tensor(r)).sum().backward()


def copy_from_torch(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def copy_to_torch(ours, theirs):
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})


def compare_module(ours, theirs, x_np, rng, ids=False):
    """Forward, then gradients w.r.t. the input (unless ids) and every parameter."""
    if ids:
        out, ref = ours(x_np), theirs(torch.tensor(x_np))
    else:
        x, tx = pair(x_np)
        out, ref = ours(x), theirs(tx)
    backward_both(out, ref, rng)
    if not ids:
        close(x.grad, tx.grad)
    theirs_params = dict(theirs.named_parameters())
    ours_params = dict(ours.named_parameters())
    assert set(ours_params) == set(theirs_params)
    for name, p in ours_params.items():
        close(p.grad, theirs_params[name].grad)


# --- layers --------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_linear(rng, bias):
    torch.manual_seed(0)
    theirs = tnn.Linear(5, 3, bias=bias, dtype=torch.float64)
    ours = nn.Linear(5, 3, bias=bias, dtype=np.float64)
    copy_from_torch(ours, theirs)
    compare_module(ours, theirs, rng.standard_normal((2, 4, 5)), rng)


def test_linear_weights_back_to_torch(rng):
    ours = nn.Linear(6, 2, seed=3, dtype=np.float64)
    theirs = tnn.Linear(6, 2, dtype=torch.float64)
    copy_to_torch(ours, theirs)
    close(ours.weight, theirs.weight, rtol=0, atol=0)
    compare_module(ours, theirs, rng.standard_normal((4, 6)), rng)


def test_state_dict_keys_match_torch():
    ours = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.LayerNorm(4), nn.Linear(4, 2))
    theirs = tnn.Sequential(tnn.Linear(3, 4), tnn.GELU(), tnn.LayerNorm(4), tnn.Linear(4, 2))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for k, v in ours.state_dict().items():
        assert v.shape == tuple(theirs.state_dict()[k].shape)


@pytest.mark.parametrize("padding_idx", [None, 0, 3])
def test_embedding(rng, padding_idx):
    torch.manual_seed(0)
    theirs = tnn.Embedding(7, 4, padding_idx=padding_idx, dtype=torch.float64)
    ours = nn.Embedding(7, 4, padding_idx=padding_idx, dtype=np.float64)
    copy_from_torch(ours, theirs)
    ids = np.array([[0, 3, 3, 6], [1, 0, 2, 3]])
    compare_module(ours, theirs, ids, rng, ids=True)
    if padding_idx is not None:
        np.testing.assert_array_equal(ours.weight.grad[padding_idx], 0)


def test_embedding_padding_init_matches_torch():
    theirs = tnn.Embedding(5, 3, padding_idx=-2)
    ours = nn.Embedding(5, 3, padding_idx=-2)
    assert ours.padding_idx == theirs.padding_idx == 3
    np.testing.assert_array_equal(ours.weight.data[3], theirs.weight.detach().numpy()[3])


@pytest.mark.parametrize("shape", [(4,), (3, 4)])
@pytest.mark.parametrize("eps", [1e-5, 1e-2])
def test_layer_norm(rng, shape, eps):
    theirs = tnn.LayerNorm(shape, eps=eps, dtype=torch.float64)
    with torch.no_grad():                           # non-trivial affine parameters
        theirs.weight.copy_(torch.tensor(rng.standard_normal(shape)))
        theirs.bias.copy_(torch.tensor(rng.standard_normal(shape)))
    ours = nn.LayerNorm(shape, eps=eps, dtype=np.float64)
    copy_from_torch(ours, theirs)
    compare_module(ours, theirs, rng.standard_normal((2, 3, 4)) * 2 + 1, rng)


def test_layer_norm_without_affine(rng):
    theirs = tnn.LayerNorm(6, elementwise_affine=False, dtype=torch.float64)
    ours = nn.LayerNorm(6, elementwise_affine=False, dtype=np.float64)
    compare_module(ours, theirs, rng.standard_normal((5, 6)), rng)


@pytest.mark.parametrize("ours, theirs", [
    (nn.GELU(), tnn.GELU()),
    (nn.GELU("tanh"), tnn.GELU(approximate="tanh")),
    (nn.ReLU(), tnn.ReLU()),
    (nn.Tanh(), tnn.Tanh()),
    (nn.Sigmoid(), tnn.Sigmoid()),
], ids=["gelu", "gelu_tanh", "relu", "tanh", "sigmoid"])
def test_activations(rng, ours, theirs):
    x = rng.standard_normal((3, 5)) * 3
    x[0, :3] = [-30.0, 30.0, 0.5]
    compare_module(ours, theirs, x, rng)


def test_sequential_mlp(rng):
    torch.manual_seed(1)
    theirs = tnn.Sequential(tnn.Linear(4, 8), tnn.GELU(), tnn.Linear(8, 8), tnn.Tanh(),
                            tnn.LayerNorm(8), tnn.Linear(8, 3), tnn.Sigmoid()).double()
    ours = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 8), nn.Tanh(),
                         nn.LayerNorm(8), nn.Linear(8, 3), nn.Sigmoid()).to(np.float64)
    copy_from_torch(ours, theirs)
    compare_module(ours, theirs, rng.standard_normal((6, 4)), rng)


def test_mlp_training_step_loss_matches(rng):
    """A whole forward + cross-entropy + backward, weights made by tinylm and sent to torch."""
    ours = nn.Sequential(nn.Linear(5, 16, seed=0), nn.ReLU(), nn.Linear(16, 4, seed=1))
    ours.to(np.float64)
    theirs = tnn.Sequential(tnn.Linear(5, 16), tnn.ReLU(), tnn.Linear(16, 4)).double()
    copy_to_torch(ours, theirs)
    x, y = rng.standard_normal((10, 5)), rng.integers(0, 4, 10)
    loss = F.cross_entropy(ours(Tensor(x)), y)
    ref = tF.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
    close(loss, ref)
    loss.backward()
    ref.backward()
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        close(p.grad, tp.grad)


# --- softmax and losses --------------------------------------------------------------
@pytest.mark.ch02
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax(rng, axis):
    for ours_fn, theirs_fn in [(F.softmax, torch.softmax), (F.log_softmax, torch.log_softmax)]:
        x, tx = pair(rng.standard_normal((3, 4, 5)) * 4)
        backward_both(ours_fn(x, axis=axis), theirs_fn(tx, dim=axis), rng)
        close(x.grad, tx.grad)


@pytest.mark.ch02
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore", [False, True])
def test_cross_entropy(rng, reduction, label_smoothing, ignore):
    logits_np = rng.standard_normal((6, 5)) * 2
    target = rng.integers(0, 5, 6)
    if ignore:
        target[[1, 4]] = -100
    x, tx = pair(logits_np)
    ours = F.cross_entropy(x, target, label_smoothing=label_smoothing, reduction=reduction)
    theirs = tF.cross_entropy(tx, torch.tensor(target), label_smoothing=label_smoothing,
                              reduction=reduction)
    backward_both(ours, theirs, rng)
    close(x.grad, tx.grad)


@pytest.mark.ch02
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_nd_and_custom_ignore_index(rng, reduction):
    logits_np = rng.standard_normal((2, 3, 4))            # (batch, time, classes)
    target = rng.integers(0, 4, (2, 3))
    target[0, 1] = 2
    x, tx = pair(logits_np)
    ours = F.cross_entropy(x, target, ignore_index=2, label_smoothing=0.1,
                           reduction=reduction)
    # PyTorch wants the class axis second for N-D input
    theirs = tF.cross_entropy(tx.permute(0, 2, 1), torch.tensor(target), ignore_index=2,
                              label_smoothing=0.1, reduction=reduction)
    backward_both(ours, theirs, rng)
    close(x.grad, tx.grad)


@pytest.mark.ch02
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy(rng, reduction):
    p, tp = pair(rng.uniform(0.02, 0.98, (4, 3)))
    y, ty = pair(rng.uniform(0, 1, (4, 3)), requires_grad=False)
    ours = F.binary_cross_entropy(p, y, reduction=reduction)
    theirs = tF.binary_cross_entropy(tp, ty, reduction=reduction)
    backward_both(ours, theirs, rng)
    close(p.grad, tp.grad)


@pytest.mark.ch02
def test_binary_cross_entropy_at_the_clamped_ends(rng):
    """p = 0 or 1: the logs are clamped at -100 and p (1 - p) at 1e-12, as in PyTorch."""
    p, tp = pair([0.0, 1.0, 0.0, 1.0, 0.5])
    y, ty = pair([1.0, 0.0, 0.0, 1.0, 0.3], requires_grad=False)
    ours = F.binary_cross_entropy(p, y, reduction="none")
    theirs = tF.binary_cross_entropy(tp, ty, reduction="none")
    close(ours, theirs)
    ours.sum().backward()
    theirs.sum().backward()
    close(p.grad, tp.grad, rtol=1e-6)     # gradients of size 1e12: rounding differs slightly


@pytest.mark.ch02
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_logits(rng, reduction):
    z_np = rng.standard_normal((4, 3)) * 5
    z_np[0] = [-1e4, 1e4, 40.0]
    z, tz = pair(z_np)
    y, ty = pair(rng.uniform(0, 1, (4, 3)))        # the target's gradient too
    ours = F.binary_cross_entropy_with_logits(z, y, reduction=reduction)
    theirs = tF.binary_cross_entropy_with_logits(tz, ty, reduction=reduction)
    backward_both(ours, theirs, rng)
    close(z.grad, tz.grad)
    close(y.grad, ty.grad)


@pytest.mark.ch02
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(rng, reduction):
    p, tp = pair(rng.standard_normal((3, 4)))
    t, tt = pair(rng.standard_normal((3, 4)))
    backward_both(F.mse_loss(p, t, reduction=reduction),
                  tF.mse_loss(tp, tt, reduction=reduction), rng)
    close(p.grad, tp.grad)
    close(t.grad, tt.grad)


def test_dropout_statistics_like_torch():
    """Not the same random numbers, but the same rule: kept values are x / (1 - p)."""
    x = np.full(10_000, 3.0)
    ours = F.dropout(Tensor(x), 0.25, generator=0).data
    theirs = tF.dropout(torch.tensor(x), 0.25).numpy()
    assert set(np.unique(ours)) == set(np.unique(theirs)) == {0.0, 4.0}


def test_load_from_torch_does_not_share_memory():
    theirs = tnn.Linear(2, 2, dtype=torch.float64)
    ours = nn.Linear(2, 2, dtype=np.float64)
    copy_from_torch(ours, theirs)
    before = ours.weight.data.copy()
    with torch.no_grad():
        theirs.weight.add_(1.0)
    np.testing.assert_array_equal(ours.weight.data, before)


def test_tied_weight_state_dict_moves_both_ways():
    class TorchTied(tnn.Module):
        def __init__(self):
            super().__init__()
            self.emb = tnn.Embedding(5, 3)
            self.out = tnn.Linear(3, 5, bias=False)
            self.out.weight = self.emb.weight

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 3, seed=0, dtype=np.float64)
            self.out = nn.Linear(3, 5, bias=False, seed=1, dtype=np.float64)
            self.out.weight = self.emb.weight

    t, m = TorchTied().double(), Tied()
    m.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    np.testing.assert_array_equal(m.emb.weight.data, t.emb.weight.detach().numpy())
    t.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
