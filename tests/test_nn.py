"""``tinylm.nn``: Module bookkeeping (registration, names, modes, saving/loading) and the
basic layers' shapes, initialisation and repr."""
import math

import numpy as np
import pytest

import tinylm as tl
from tinylm import functional as F
from tinylm import nn
from tinylm.errors import TinyLMError
from tinylm.tensor import Tensor


class Block(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        self.proj = nn.Linear(3, 4, seed=seed)
        self.norm = nn.LayerNorm(4)
        self.scale = nn.Parameter(np.ones(1, np.float32))
        self.constant = Tensor(np.ones(2))          # a plain Tensor: not a parameter
        self.note = "hello"
        self.register_buffer("running", np.zeros(4, np.float32))

    def forward(self, x):
        return self.norm(self.proj(x)) * self.scale + Tensor(self.running)


class Model(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        self.encoder = nn.Sequential(Block(seed), nn.GELU())
        self.head = nn.Linear(4, 2, seed=seed + 1)

    def forward(self, x):
        return self.head(self.encoder(x))


# --- registration and names ----------------------------------------------------------
def test_registration():
    b = Block()
    assert list(b._parameters) == ["scale"]
    assert list(b._modules) == ["proj", "norm"]
    assert list(b._buffers) == ["running"]
    names = [n for n, _ in b.named_parameters()]
    assert names == ["scale", "proj.weight", "proj.bias", "norm.weight", "norm.bias"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in b.parameters())
    assert b.num_parameters() == 1 + 12 + 4 + 4 + 4
    assert [n for n, _ in b.named_buffers()] == ["running"]


def test_reassigning_an_attribute_unregisters_it():
    b = Block()
    b.scale = Tensor(np.ones(1))                    # no longer a Parameter
    b.proj = None
    assert [n for n, _ in b.named_parameters()] == ["norm.weight", "norm.bias"]


def test_sequential_names_like_pytorch():
    net = nn.Sequential(nn.Linear(2, 3, seed=0), nn.ReLU(), nn.Linear(3, 1, seed=1))
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                      "2.bias"]
    assert len(net) == 3 and isinstance(net[1], nn.ReLU) and isinstance(net[-1], nn.Linear)
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear"]
    assert net(Tensor(np.ones((5, 2), np.float32))).shape == (5, 1)


def test_nested_names():
    m = Model()
    assert [n for n, _ in m.named_parameters()] == [
        "encoder.0.scale", "encoder.0.proj.weight", "encoder.0.proj.bias",
        "encoder.0.norm.weight", "encoder.0.norm.bias", "head.weight", "head.bias"]
    assert [n for n, _ in m.named_modules()] == [
        "", "encoder", "encoder.0", "encoder.0.proj", "encoder.0.norm", "encoder.1", "head"]
    assert [n for n, _ in m.named_buffers()] == ["encoder.0.running"]
    # PyTorch's order: each module's own parameters and buffers, then its children's
    assert list(m.state_dict()) == [
        "encoder.0.scale", "encoder.0.running", "encoder.0.proj.weight", "encoder.0.proj.bias",
        "encoder.0.norm.weight", "encoder.0.norm.bias", "head.weight", "head.bias"]
    assert len(list(m.children())) == 2


def test_tied_weights_listed_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4, seed=0)
            self.out = nn.Linear(4, 10, bias=False, seed=1)
            self.out.weight = self.emb.weight

    m = Tied()
    params = list(m.named_parameters())
    assert [n for n, _ in params] == ["emb.weight"]
    assert m.num_parameters() == 40
    # the shared weight gets the gradient of both uses
    ids = np.array([1, 2])
    m.out(m.emb(ids)).sum().backward()
    assert m.emb.weight.grad is m.out.weight.grad
    assert np.abs(m.emb.weight.grad).sum() > 0
    sd = m.state_dict()
    assert list(sd) == ["emb.weight", "out.weight"]   # each name, as PyTorch saves it
    m2 = Tied()
    m2.load_state_dict(sd)
    assert m2.out.weight is m2.emb.weight


def test_module_needs_super_init():
    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(tl.TinyLMError, match="super\\(\\).__init__"):
        Forgot()


def test_sequential_rejects_non_modules():
    with pytest.raises(tl.TinyLMError, match="argument 1 must be a Module, got function"):
        nn.Sequential(nn.ReLU(), F.relu)


def test_forward_not_defined():
    class Empty(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match="Empty"):
        Empty()(1)


# --- modes, gradients, dtype ---------------------------------------------------------
def test_train_eval_flags_recurse():
    m = Model()
    assert all(mod.training for mod in m.modules())
    assert m.eval() is m
    assert not any(mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())
    m.encoder.train(False)
    assert m.training and not m.encoder.training and not m.encoder[0].proj.training


def test_zero_grad():
    m = Model()
    m(Tensor(np.ones((2, 3), np.float32))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_to_float64():
    m = Model()
    assert all(p.dtype == np.float32 for p in m.parameters())
    before = m.state_dict()
    assert m.to(np.float64) is m
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m.encoder[0].running.dtype == np.float64
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    out = m(Tensor(np.ones((2, 3))))
    assert out.dtype == np.float64


# --- saving and loading --------------------------------------------------------------
def test_state_dict_round_trip():
    a, b = Model(seed=0), Model(seed=5)
    a.encoder[0].register_buffer("running", np.arange(4, dtype=np.float32))
    x = Tensor(np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32))
    assert not np.allclose(a(x).data, b(x).data)
    state = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    b.load_state_dict(state)
    np.testing.assert_array_equal(a(x).data, b(x).data)
    np.testing.assert_array_equal(b.encoder[0].running, np.arange(4))
    # state_dict returns copies, and loading copies too
    state["head.bias"][:] = 99
    assert not np.any(a.head.bias.data == 99) and not np.any(b.head.bias.data == 99)
    # loaded parameters keep the module's dtype
    b.load_state_dict({k: v.astype(np.float64) for k, v in a.state_dict().items()})
    assert all(p.dtype == np.float32 for p in b.parameters())


def test_state_dict_round_trip_with_none_buffer():
    m = nn.Linear(2, 2, seed=0)
    m.register_buffer("mask", None)              # an optional buffer that is not set
    state = m.state_dict()
    assert "mask" not in state
    m.load_state_dict(state)


def test_load_state_dict_accepts_tensors_and_lists():
    m = nn.Linear(2, 1, seed=0)
    m.load_state_dict({"weight": Tensor(np.array([[1.0, 2.0]])), "bias": [0.5]})
    np.testing.assert_array_equal(m.weight.data, [[1, 2]])
    np.testing.assert_array_equal(m.bias.data, [0.5])


def test_load_state_dict_missing_and_unexpected_keys():
    m = Model()
    state = m.state_dict()
    del state["head.bias"]
    with pytest.raises(tl.TinyLMError, match=r"missing keys \['head.bias'\]"):
        m.load_state_dict(state)
    state = m.state_dict()
    state["head.extra"] = np.zeros(2)
    with pytest.raises(tl.TinyLMError, match=r"unexpected keys \['head.extra'\]"):
        m.load_state_dict(state)
    # strict=False loads what matches and skips the rest
    state = {"head.bias": np.array([7.0, 8.0]), "nothing": np.zeros(1)}
    m.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(m.head.bias.data, [7.0, 8.0])


def test_load_state_dict_wrong_shape_names_the_key():
    m = Model()
    state = m.state_dict()
    state["encoder.0.proj.weight"] = np.zeros((3, 4))
    with pytest.raises(tl.ShapeError, match=r"encoder.0.proj.weight.*\(3, 4\).*\(4, 3\)"):
        m.load_state_dict(state)
    state = m.state_dict()
    state["encoder.0.running"] = np.zeros(5)
    with pytest.raises(tl.ShapeError, match="encoder.0.running"):
        m.load_state_dict(state)


# --- layers --------------------------------------------------------------------------
def test_linear_shapes_and_init():
    lin = nn.Linear(50, 30, seed=0)
    assert lin.weight.shape == (30, 50) and lin.bias.shape == (30,)
    assert lin.weight.dtype == np.float32
    bound = 1 / math.sqrt(50)
    for p in (lin.weight, lin.bias):
        assert np.abs(p.data).max() <= bound
    assert np.abs(lin.weight.data).max() > 0.95 * bound         # uniform fills the range
    assert abs(lin.weight.data.mean()) < 0.02
    assert lin(Tensor(np.ones((7, 50), np.float32))).shape == (7, 30)
    assert lin(Tensor(np.ones((2, 7, 50), np.float32))).shape == (2, 7, 30)
    assert lin(Tensor(np.ones(50, np.float32))).shape == (30,)
    x = np.random.default_rng(1).standard_normal((4, 50)).astype(np.float32)
    np.testing.assert_allclose(lin(Tensor(x)).data, x @ lin.weight.data.T + lin.bias.data,
                               rtol=1e-5, atol=1e-6)


def test_linear_without_bias_and_float64():
    lin = nn.Linear(3, 2, bias=False, seed=0, dtype=np.float64)
    assert lin.bias is None and [n for n, _ in lin.named_parameters()] == ["weight"]
    assert lin.weight.dtype == np.float64
    x = np.ones((1, 3))
    np.testing.assert_allclose(lin(Tensor(x)).data, x @ lin.weight.data.T)


def test_same_seed_same_weights():
    a, b, c = nn.Linear(4, 3, seed=42), nn.Linear(4, 3, seed=42), nn.Linear(4, 3, seed=43)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    e1, e2 = nn.Embedding(5, 2, seed=1), nn.Embedding(5, 2, seed=1)
    np.testing.assert_array_equal(e1.weight.data, e2.weight.data)
    # a shared Generator gives different weights to consecutive layers, repeatably
    g1, g2 = np.random.default_rng(0), np.random.default_rng(0)
    l1, l2 = nn.Linear(2, 2, seed=g1), nn.Linear(2, 2, seed=g1)
    assert not np.array_equal(l1.weight.data, l2.weight.data)
    np.testing.assert_array_equal(nn.Linear(2, 2, seed=g2).weight.data, l1.weight.data)
    assert nn.make_rng(g1) is g1


def test_embedding_layer():
    emb = nn.Embedding(1000, 16, seed=0)
    assert emb.weight.shape == (1000, 16) and emb.weight.dtype == np.float32
    assert abs(emb.weight.data.mean()) < 0.02 and abs(emb.weight.data.std() - 1) < 0.02
    ids = np.array([[1, 2, 3], [4, 5, 999]])
    out = emb(ids)
    assert out.shape == (2, 3, 16)
    np.testing.assert_array_equal(out.data, emb.weight.data[ids])


def test_embedding_padding_row():
    emb = nn.Embedding(6, 3, padding_idx=-1, seed=0)
    assert emb.padding_idx == 5
    np.testing.assert_array_equal(emb.weight.data[5], 0)
    emb(np.array([0, 5, 5, 2])).sum().backward()
    np.testing.assert_array_equal(emb.weight.grad[5], 0)
    np.testing.assert_array_equal(emb.weight.grad[0], 1)


def test_layer_norm_layer():
    ln = nn.LayerNorm(8)
    np.testing.assert_array_equal(ln.weight.data, np.ones(8))
    np.testing.assert_array_equal(ln.bias.data, np.zeros(8))
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
    y = ln(Tensor(x))
    assert y.shape == (2, 5, 8) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, F.layer_norm(x, 8).data)
    assert nn.LayerNorm((2, 8)).weight.shape == (2, 8)
    assert list(nn.LayerNorm(8, elementwise_affine=False).parameters()) == []
    no_bias = nn.LayerNorm(8, bias=False)
    assert no_bias.bias is None and [n for n, _ in no_bias.named_parameters()] == ["weight"]


def test_dropout_layer():
    d = nn.Dropout(0.5, seed=0)
    x = Tensor(np.ones((10, 10), np.float32))
    y1, y2 = d(x).data, d(x).data
    assert set(np.unique(y1)) <= {0.0, 2.0}
    assert not np.array_equal(y1, y2)                 # its generator moves on
    np.testing.assert_array_equal(nn.Dropout(0.5, seed=0)(x).data, y1)   # repeatable
    d.eval()
    np.testing.assert_array_equal(d(x).data, x.data)
    with pytest.raises(tl.TinyLMError, match="p must be in"):
        nn.Dropout(1.5)


@pytest.mark.parametrize("layer, fn", [
    (nn.ReLU(), F.relu), (nn.Tanh(), F.tanh), (nn.Sigmoid(), F.sigmoid), (nn.GELU(), F.gelu),
    (nn.GELU("tanh"), lambda x: F.gelu(x, approximate="tanh")),
])
def test_activation_layers(layer, fn):
    x = Tensor(np.linspace(-3, 3, 12).reshape(3, 4).astype(np.float32))
    y = layer(x)
    assert y.shape == (3, 4) and y.dtype == np.float32
    np.testing.assert_array_equal(y.data, fn(x).data)
    assert list(layer.parameters()) == []


def test_reprs():
    net = nn.Sequential(nn.Linear(3, 4, seed=0), nn.ReLU(), nn.Dropout(0.1),
                        nn.Embedding(10, 4, padding_idx=0), nn.LayerNorm(4))
    r = repr(net)
    assert r.splitlines()[0] == "Sequential("
    assert "  (0): Linear(in_features=3, out_features=4, bias=True)" in r
    assert "  (1): ReLU()" in r
    assert "  (2): Dropout(p=0.1)" in r
    assert "  (3): Embedding(10, 4, padding_idx=0)" in r
    assert "  (4): LayerNorm((4,), eps=1e-05)" in r
    assert r.endswith("\n)")
    nested = repr(Model())
    assert "    (0): Block(" in nested          # children of children are indented twice
    p = repr(nn.Linear(1, 1, seed=0).bias)
    assert p.startswith("Parameter(") and "requires_grad=True" in p


class Tied(nn.Module):
    """An embedding and an output layer sharing one weight (as GPT-2 does)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 3, seed=0, dtype=np.float64)
        self.out = nn.Linear(3, 5, bias=False, seed=1, dtype=np.float64)
        self.out.weight = self.emb.weight


def test_tied_weights_are_one_parameter_but_saved_under_each_name():
    m = Tied()
    assert [n for n, _ in m.named_parameters()] == ["emb.weight"]
    state = m.state_dict()
    assert list(state) == ["emb.weight", "out.weight"]        # as PyTorch lists them
    state = {k: v + 1 for k, v in state.items()}
    m.load_state_dict(state)
    np.testing.assert_array_equal(m.out.weight.data, state["out.weight"])
    assert m.out.weight is m.emb.weight


def test_load_state_dict_changes_nothing_when_a_later_entry_is_bad():
    m = nn.Sequential(nn.Linear(2, 3, seed=0), nn.Linear(3, 1, seed=1))
    before = m.state_dict()
    bad = {k: v + 1 for k, v in before.items()}
    bad["1.weight"] = np.ones((2, 2))
    with pytest.raises(tl.ShapeError, match="1.weight"):
        m.load_state_dict(bad)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_sequential_slice_is_a_sequential():
    m = nn.Sequential(nn.Linear(2, 3, seed=0), nn.Tanh(), nn.Linear(3, 1, seed=1))
    head = m[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2
    assert head(np.ones((1, 2), np.float32)).shape == (1, 3)


def test_module_list_and_dict_register_children_with_pytorch_names():
    blocks = nn.ModuleList([nn.Linear(2, 3, seed=0), nn.Linear(3, 2, seed=1)])
    blocks.append(nn.LayerNorm(2))
    model = nn.ModuleDict(dict(wte=nn.Embedding(5, 2, seed=0), h=blocks))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["wte.weight", "h.0.weight", "h.0.bias", "h.1.weight", "h.1.bias",
                     "h.2.weight", "h.2.bias"]
    assert len(blocks) == 3 and isinstance(blocks[1:], nn.ModuleList) and len(blocks[1:]) == 2
    assert model["h"] is blocks and "wte" in model and len(model) == 2
    assert [type(m).__name__ for m in blocks] == ["Linear", "Linear", "LayerNorm"]
    with pytest.raises(TinyLMError, match="must be Modules"):
        blocks.append(3)
    with pytest.raises(TinyLMError, match="'x' must be a Module"):
        model["x"] = "not a module"
    with pytest.raises(KeyError, match="no module 'nope'"):
        model["nope"]
