"""tinylm.models.GPT: nanoGPT's names and shapes, its forward against a PyTorch transcription
with the same weights, generation with and without the KV cache, and bad input."""
import numpy as np
import pytest

from tinylm import IndexRangeError, ShapeError, TinyLMError
from tinylm.models import GPT, GPTConfig

SMALL = dict(block_size=8, vocab_size=13, n_layer=2, n_head=2, n_embd=8)


def _model(seed=0, **kw):
    return GPT(GPTConfig(**{**SMALL, **kw}), seed=seed)


def test_names_and_shapes_are_nanogpts():
    sd = _model(n_layer=1).state_dict()
    expected = {"transformer.wte.weight": (13, 8), "transformer.wpe.weight": (8, 8),
                "transformer.h.0.ln_1.weight": (8,), "transformer.h.0.ln_1.bias": (8,),
                "transformer.h.0.attn.c_attn.weight": (24, 8),
                "transformer.h.0.attn.c_attn.bias": (24,),
                "transformer.h.0.attn.c_proj.weight": (8, 8),
                "transformer.h.0.attn.c_proj.bias": (8,),
                "transformer.h.0.ln_2.weight": (8,), "transformer.h.0.ln_2.bias": (8,),
                "transformer.h.0.mlp.c_fc.weight": (32, 8), "transformer.h.0.mlp.c_fc.bias": (32,),
                "transformer.h.0.mlp.c_proj.weight": (8, 32),
                "transformer.h.0.mlp.c_proj.bias": (8,),
                "transformer.ln_f.weight": (8,), "transformer.ln_f.bias": (8,),
                "lm_head.weight": (13, 8)}
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected


def test_tied_head_init_and_parameter_count():
    m = _model(n_layer=4, n_embd=16, vocab_size=50)
    assert m.lm_head.weight is m.transformer.wte.weight
    E, V, L, T = 16, 50, 4, 8
    per_block = 2 * 2 * E + (3 * E * E + 3 * E) + (E * E + E) + (4 * E * E + 4 * E) + \
        (4 * E * E + E)
    assert m.get_num_params(non_embedding=False) == V * E + T * E + L * per_block + 2 * E
    assert m.get_num_params() == m.get_num_params(non_embedding=False) - T * E
    proj = m.transformer.h[0].mlp.c_proj.weight.data
    assert abs(proj.std() - 0.02 / np.sqrt(2 * L)) < 0.004
    assert np.all(m.transformer.h[0].attn.c_attn.bias.data == 0)


def test_loss_at_init_is_near_log_vocab_and_targets_minus_one_are_ignored(rng):
    m = _model(vocab_size=50)
    idx = rng.integers(0, 50, (4, 8))
    logits, loss = m(idx, idx)
    assert logits.shape == (4, 8, 50) and abs(loss.item() - np.log(50)) < 0.2
    targets = idx.copy()
    targets[:, :4] = -1
    _, partial = m(idx, targets)
    manual = -np.log(np.exp(logits.data) / np.exp(logits.data).sum(-1, keepdims=True))
    expected = np.take_along_axis(manual[:, 4:], idx[:, 4:, None], -1).mean()
    assert partial.item() == pytest.approx(expected, rel=1e-5)
    last, none = m(idx)
    assert none is None and last.shape == (4, 1, 50)
    np.testing.assert_allclose(last.data[:, 0], logits.data[:, -1], rtol=1e-5, atol=1e-6)


def test_same_as_a_pytorch_transcription_with_the_same_weights(rng):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    m = _model(seed=3).to(np.float64)
    for p in m.parameters():
        p.data = p.data + 0.1 * rng.standard_normal(p.shape)
    W = {k: torch.tensor(v, requires_grad=True) for k, v in m.state_dict().items()
         if k != "lm_head.weight"}
    idx = rng.integers(0, 13, (3, 8))
    targets = rng.integers(0, 13, (3, 8))
    B, T, E, H = 3, 8, 8, 2
    ti = torch.tensor(idx)
    x = W["transformer.wte.weight"][ti] + W["transformer.wpe.weight"][torch.arange(T)]
    for i in range(2):
        p = f"transformer.h.{i}."
        h = tF.layer_norm(x, (E,), W[p + "ln_1.weight"], W[p + "ln_1.bias"])
        q, k, v = tF.linear(h, W[p + "attn.c_attn.weight"], W[p + "attn.c_attn.bias"]).split(
            E, dim=2)
        q, k, v = (t.view(B, T, H, E // H).transpose(1, 2) for t in (q, k, v))
        y = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, E)
        x = x + tF.linear(y, W[p + "attn.c_proj.weight"], W[p + "attn.c_proj.bias"])
        h = tF.layer_norm(x, (E,), W[p + "ln_2.weight"], W[p + "ln_2.bias"])
        h = tF.gelu(tF.linear(h, W[p + "mlp.c_fc.weight"], W[p + "mlp.c_fc.bias"]))
        x = x + tF.linear(h, W[p + "mlp.c_proj.weight"], W[p + "mlp.c_proj.bias"])
    x = tF.layer_norm(x, (E,), W["transformer.ln_f.weight"], W["transformer.ln_f.bias"])
    theirs_logits = x @ W["transformer.wte.weight"].T
    theirs = tF.cross_entropy(theirs_logits.reshape(-1, 13), torch.tensor(targets).reshape(-1))
    theirs.backward()
    logits, loss = m(idx, targets)
    loss.backward()
    np.testing.assert_allclose(logits.data, theirs_logits.detach().numpy(), atol=1e-10)
    assert loss.item() == pytest.approx(theirs.item(), abs=1e-12)
    grads = dict(m.named_parameters())
    for name, w in W.items():
        np.testing.assert_allclose(grads[name].grad, w.grad.numpy(), atol=1e-10, err_msg=name)


def test_generate_cached_equals_uncached_and_is_seeded(rng):
    m = _model(seed=1)
    prompt = rng.integers(0, 13, (2, 3))
    a = m.generate(prompt, 5, seed=7)
    b = m.generate(prompt, 5, seed=7, use_cache=False)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 8) and np.array_equal(a[:, :3], prompt)
    greedy = m.generate(prompt, 5, temperature=0)
    np.testing.assert_array_equal(greedy, m.generate(prompt, 5, temperature=0, seed=99))
    # past block_size the context is cropped (nanoGPT), cached or not
    long_a = m.generate(prompt, 12, seed=3)
    long_b = m.generate(prompt, 12, seed=3, use_cache=False)
    np.testing.assert_array_equal(long_a, long_b)
    assert long_a.shape == (2, 15) and m.training


def test_a_tiny_gpt_learns_to_continue_a_pattern():
    m = _model(seed=0, vocab_size=5, block_size=8)
    opt = m.configure_optimizers(weight_decay=0.1, learning_rate=1e-2, betas=(0.9, 0.99))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert all(p.ndim >= 2 for p in opt.param_groups[0]["params"])
    seq = np.tile(np.arange(5), 4)[None]                     # 0 1 2 3 4 0 1 2 ...
    x, y = seq[:, :8], seq[:, 1:9]
    for _ in range(150):
        _, loss = m(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    out = m.generate(np.array([[0, 1, 2]]), 5, temperature=0)     # within the trained context
    np.testing.assert_array_equal(out, [[0, 1, 2, 3, 4, 0, 1, 2]])


def test_bad_input():
    with pytest.raises(TinyLMError, match="divisible by n_head"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(TinyLMError, match="vocab_size must be a positive integer"):
        GPTConfig(vocab_size=0)
    m = _model()
    with pytest.raises(ShapeError, match="longer than block_size=8"):
        m(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(IndexRangeError, match=r"\[0, 13\)"):
        m(np.array([[1, 13]]))
    with pytest.raises(ShapeError, match="integer token ids"):
        m(np.zeros((1, 3)))
    with pytest.raises(ShapeError, match="targets"):
        m(np.zeros((1, 3), dtype=np.int64), np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(TinyLMError, match="expected a GPTConfig"):
        GPT(dict(SMALL))
