"""Attention and Transformer layers against PyTorch, in float64, with the state dict loaded
from torch: outputs and gradients w.r.t. the inputs and every parameter.

Dropout is 0 and the torch modules stay in train mode, so torch takes its plain math path
(its eval-mode "fast path" fuses ops and may differ in the last bits).
"""
import numpy as np
import pytest

from tinylm import functional as F
from tinylm.nn.attention import MultiheadAttention
from tinylm.nn.layers import LayerNorm
from tinylm.nn.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                                   TransformerEncoder, TransformerEncoderLayer)
from tinylm.tensor import Tensor

torch = pytest.importorskip("torch")
tnn = torch.nn

pytestmark = pytest.mark.torch

TOL = dict(rtol=1e-9, atol=1e-11)


def close(ours, theirs):
    ours = ours.data if isinstance(ours, Tensor) else ours
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    np.testing.assert_allclose(ours, theirs, **TOL)


def load(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert set(ours.state_dict()) == set(theirs.state_dict())


def compare(ours, theirs, inputs, ours_kw=None, theirs_kw=None, seed=0, select=None,
            modules=None):
    """Run both on the same float64 inputs; compare outputs, then gradients of sum(out * R)
    w.r.t. the inputs and every parameter (of ``modules``, default ours and theirs
    themselves). ``select`` makes one tensor out of a returned tuple, after comparing it."""
    ours_in = [Tensor(a.copy(), requires_grad=True) for a in inputs]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in inputs]
    out = ours(*ours_in, **(ours_kw or {}))
    ref = theirs(*theirs_in, **(theirs_kw or {}))
    if select is not None:
        for o, r in zip(out, ref):
            if r is None:
                assert o is None
            else:
                close(o, r)
        out, ref = select(out), select(ref)
    close(out, ref)
    r = np.random.default_rng(seed).standard_normal(out.shape)
    (out * Tensor(r)).sum().backward()
    (ref * torch.tensor(r)).sum().backward()
    for a, b in zip(ours_in, theirs_in):
        close(a.grad, b.grad)
    ours_m, theirs_m = modules or (ours, theirs)
    ours_p = dict(ours_m.named_parameters())
    theirs_p = dict(theirs_m.named_parameters())
    assert set(ours_p) == set(theirs_p)
    for name, p in theirs_p.items():
        close(ours_p[name].grad, p.grad)


def t(x):
    return torch.tensor(x)


# --- scaled dot-product attention ----------------------------------------------------
@pytest.mark.parametrize("mask", ["none", "causal", "bool", "float"])
def test_sdpa(rng, mask):
    q, k, v = (rng.standard_normal(s) for s in [(2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 6)])
    kw = {}
    if mask == "causal":
        kw = dict(is_causal=True)
    elif mask == "bool":
        allowed = rng.random((4, 4)) > 0.4
        allowed[:, 0] = True
        kw = dict(attn_mask=allowed)
    elif mask == "float":
        kw = dict(attn_mask=rng.standard_normal((1, 3, 4, 4)))
    tkw = {k_: (t(v_) if isinstance(v_, np.ndarray) else v_) for k_, v_ in kw.items()}
    ours = [Tensor(a, requires_grad=True) for a in (q, k, v)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*ours, **kw)
    ref = torch.nn.functional.scaled_dot_product_attention(*theirs, **tkw)
    close(out, ref)
    r = rng.standard_normal(out.shape)
    (out * Tensor(r)).sum().backward()
    (ref * torch.tensor(r)).sum().backward()
    for a, b in zip(ours, theirs):
        close(a.grad, b.grad)


def test_sdpa_scale(rng):
    q, k, v = (rng.standard_normal((3, 4, 5)) for _ in range(3))
    close(F.scaled_dot_product_attention(q, k, v, scale=0.7),
          torch.nn.functional.scaled_dot_product_attention(t(q), t(k), t(v), scale=0.7))


# --- multi-head attention ------------------------------------------------------------
def mha_pair(batch_first, **kw):
    torch.manual_seed(0)
    theirs = tnn.MultiheadAttention(8, 2, batch_first=batch_first, dtype=torch.float64, **kw)
    ours = MultiheadAttention(8, 2, batch_first=batch_first, dtype=np.float64, **kw)
    load(ours, theirs)
    with torch.no_grad():           # torch starts the biases at 0: move them
        for p in theirs.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn(p.shape, dtype=torch.float64))
    load(ours, theirs)
    return ours, theirs


def layout(x, batch_first):
    """x is (N, T, E); give it the module's layout."""
    return x if batch_first else x.transpose(1, 0, 2)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights, average", [(True, True), (True, False), (False, True)])
def test_mha_self_attention(rng, batch_first, need_weights, average):
    ours, theirs = mha_pair(batch_first)
    x = layout(rng.standard_normal((2, 4, 8)), batch_first)
    kw = dict(need_weights=need_weights, average_attn_weights=average)
    compare(lambda a: ours(a, a, a, **kw), lambda a: theirs(a, a, a, **kw), [x],
            select=lambda o: o[0] if not need_weights else o[0].sum() + (o[1] * o[1]).sum(),
            modules=(ours, theirs))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("masks", ["attn_bool", "attn_float", "padding_bool", "padding_float",
                                   "both", "per_head"])
def test_mha_cross_attention_with_masks(rng, batch_first, masks):
    ours, theirs = mha_pair(batch_first)
    q = layout(rng.standard_normal((3, 4, 8)), batch_first)
    kv = layout(rng.standard_normal((3, 5, 8)), batch_first)
    kw = {}
    blocked = rng.random((4, 5)) > 0.6
    blocked[:, 0] = False
    pad = np.zeros((3, 5), bool)
    pad[0, 3:] = True
    pad[2, 1] = True
    if masks in ("attn_bool", "both"):
        kw["attn_mask"] = blocked
    if masks == "attn_float":
        kw["attn_mask"] = rng.standard_normal((4, 5))
    if masks == "per_head":
        kw["attn_mask"] = rng.random((3 * 2, 4, 5)) > 0.7
        kw["attn_mask"][..., 0] = False
    if masks in ("padding_bool", "both"):
        kw["key_padding_mask"] = pad
    if masks == "padding_float":
        kw["key_padding_mask"] = np.where(pad, -np.inf, 0.0)
    tkw = {k: t(v) for k, v in kw.items()}
    compare(lambda a, b: ours(a, b, b, **kw), lambda a, b: theirs(a, b, b, **tkw), [q, kv],
            select=lambda o: o[0].sum() + (o[1] * o[1]).sum() * 3, modules=(ours, theirs))


def test_mha_kdim_vdim(rng):
    torch.manual_seed(1)
    theirs = tnn.MultiheadAttention(8, 4, kdim=3, vdim=5, dtype=torch.float64)
    ours = MultiheadAttention(8, 4, kdim=3, vdim=5, dtype=np.float64)
    load(ours, theirs)
    q, k, v = (rng.standard_normal(s) for s in [(4, 2, 8), (6, 2, 3), (6, 2, 5)])
    compare(lambda *a: ours(*a)[0], lambda *a: theirs(*a)[0], [q, k, v],
            modules=(ours, theirs))


def test_mha_causal_with_mask_and_no_bias(rng):
    torch.manual_seed(2)
    theirs = tnn.MultiheadAttention(8, 2, bias=False, dtype=torch.float64)
    ours = MultiheadAttention(8, 2, bias=False, dtype=np.float64)
    load(ours, theirs)
    x = rng.standard_normal((5, 2, 8))
    mask = Transformer.generate_square_subsequent_mask(5, dtype=np.float64)
    tmask = tnn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    close(mask, tmask)
    compare(lambda a: ours(a, a, a, attn_mask=mask, is_causal=True)[0],
            lambda a: theirs(a, a, a, attn_mask=tmask, is_causal=True)[0], [x],
            modules=(ours, theirs))


# --- Transformer layers ----------------------------------------------------------------
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_layer(rng, norm_first, activation, batch_first):
    torch.manual_seed(3)
    args = (8, 2, 16, 0.0, activation)
    kw = dict(norm_first=norm_first, batch_first=batch_first)
    theirs = tnn.TransformerEncoderLayer(*args, dtype=torch.float64, **kw)
    ours = TransformerEncoderLayer(*args, dtype=np.float64, **kw)
    load(ours, theirs)
    x = layout(rng.standard_normal((3, 5, 8)), batch_first)
    pad = np.zeros((3, 5), bool)
    pad[1, 3:] = True
    compare(ours, theirs, [x], dict(src_key_padding_mask=pad),
            dict(src_key_padding_mask=t(pad)))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_layer(rng, norm_first, activation):
    torch.manual_seed(4)
    args = (8, 2, 16, 0.0, activation)
    theirs = tnn.TransformerDecoderLayer(*args, norm_first=norm_first, dtype=torch.float64)
    ours = TransformerDecoderLayer(*args, norm_first=norm_first, dtype=np.float64)
    load(ours, theirs)
    tgt, mem = rng.standard_normal((4, 3, 8)), rng.standard_normal((6, 3, 8))
    mask = Transformer.generate_square_subsequent_mask(4, dtype=np.float64)
    mpad = np.zeros((3, 6), bool)
    mpad[0, 4:] = True
    compare(ours, theirs, [tgt, mem], dict(tgt_mask=mask, memory_key_padding_mask=mpad),
            dict(tgt_mask=t(mask.data), memory_key_padding_mask=t(mpad)))


def test_encoder_stack(rng):
    torch.manual_seed(5)
    layer = tnn.TransformerEncoderLayer(8, 2, 16, 0.0, dtype=torch.float64)
    theirs = tnn.TransformerEncoder(layer, 2, norm=tnn.LayerNorm(8, dtype=torch.float64),
                                    enable_nested_tensor=False)
    ours = TransformerEncoder(TransformerEncoderLayer(8, 2, 16, 0.0, dtype=np.float64), 2,
                              norm=LayerNorm(8, dtype=np.float64))
    load(ours, theirs)
    compare(ours, theirs, [rng.standard_normal((5, 2, 8))])


def test_decoder_stack(rng):
    torch.manual_seed(6)
    layer = tnn.TransformerDecoderLayer(8, 2, 16, 0.0, norm_first=True, dtype=torch.float64)
    theirs = tnn.TransformerDecoder(layer, 2, norm=tnn.LayerNorm(8, dtype=torch.float64))
    ours = TransformerDecoder(TransformerDecoderLayer(8, 2, 16, 0.0, norm_first=True,
                                                      dtype=np.float64), 2,
                              norm=LayerNorm(8, dtype=np.float64))
    load(ours, theirs)
    compare(ours, theirs, [rng.standard_normal((4, 2, 8)), rng.standard_normal((5, 2, 8))],
            dict(tgt_is_causal=True), dict(tgt_mask=tnn.Transformer.generate_square_subsequent_mask(
                4, dtype=torch.float64), tgt_is_causal=True))


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer(rng, batch_first):
    torch.manual_seed(7)
    kw = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1,
              dim_feedforward=16, dropout=0.0, batch_first=batch_first)
    theirs = tnn.Transformer(dtype=torch.float64, **kw)
    ours = Transformer(dtype=np.float64, **kw)
    load(ours, theirs)
    src = layout(rng.standard_normal((2, 5, 8)), batch_first)
    tgt = layout(rng.standard_normal((2, 4, 8)), batch_first)
    mask = Transformer.generate_square_subsequent_mask(4, dtype=np.float64)
    spad = np.zeros((2, 5), bool)
    spad[1, 4] = True
    compare(ours, theirs, [src, tgt],
            dict(tgt_mask=mask, src_key_padding_mask=spad, memory_key_padding_mask=spad),
            dict(tgt_mask=t(mask.data), src_key_padding_mask=t(spad),
                 memory_key_padding_mask=t(spad)))
