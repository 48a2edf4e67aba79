"""tinylm.scaling (A16, D8): the parameter, FLOP and activation formulas against a real GPT and
its recorded graph, the memory of training, and the power-law fit."""

import numpy as np
import pytest

import tinylm as tl
from tinylm import scaling
from tinylm.errors import ShapeError, TinyLMError
from tinylm.models import GPT, GPTConfig
from tinylm.optim import SGD, AdamW

pytestmark = pytest.mark.ch17

# (n_layer, n_embd, n_head, vocab, block, bias)
CONFIGS = [(1, 16, 2, 50, 16, True), (2, 32, 4, 61, 24, False), (3, 24, 3, 20, 40, True),
           (2, 40, 5, 300, 8, False)]


def _config(L, d, H, V, T, bias):
    return GPTConfig(block_size=T, vocab_size=V, n_layer=L, n_head=H, n_embd=d, bias=bias)


def _forward(cfg, batch, seq_len, seed=0):
    model = GPT(cfg, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, cfg.vocab_size, (batch, seq_len))
    y = rng.integers(0, cfg.vocab_size, (batch, seq_len))
    return model, model(x, y)[1]


@pytest.mark.parametrize("spec", CONFIGS)
def test_parameter_count_equals_gpt(spec):
    cfg = _config(*spec)
    parts = scaling.gpt_parameter_count(cfg)
    model = GPT(cfg, seed=0)
    assert parts["total"] == model.num_parameters()
    assert parts["total"] - parts["non_embedding"] == model.transformer.wte.weight.size + \
        model.transformer.wpe.weight.size
    L, d = spec[0], spec[1]
    assert parts["per_block"] == sum(p.size for p in model.transformer.h[0].parameters())
    assert parts["blocks"] == L * parts["per_block"] and parts["per_block"] > 12 * d * d


def test_gpt2_released_sizes_and_their_names():
    for name, size in scaling.GPT2_SIZES.items():
        cfg = GPTConfig(block_size=scaling.GPT2_CONTEXT, vocab_size=scaling.GPT2_VOCAB,
                        n_layer=size["n_layer"], n_head=size["n_head"], n_embd=size["n_embd"])
        assert scaling.gpt_parameter_count(cfg)["total"] == size["params"], name
    rounded = [round(s["params"] / 1e6) for s in scaling.GPT2_SIZES.values()]
    assert rounded == [124, 355, 774, 1558]


@pytest.mark.parametrize("spec", CONFIGS)
def test_forward_flops_formula_equals_the_graph_count(spec):
    cfg = _config(*spec)
    batch, seq_len = 3, cfg.block_size - 1
    _, loss = _forward(cfg, batch, seq_len)
    counted = scaling.matmul_flops(loss)
    formula = scaling.gpt_forward_flops(cfg, seq_len)
    assert counted["forward"] == formula["total"] * batch * seq_len
    assert counted["backward"] == 2 * counted["forward"]
    assert formula["training"] == 3 * formula["total"]
    assert counted["products"] > 6 * cfg.n_layer      # every block's products were visited


def test_matmul_flops_of_plain_products():
    rng = np.random.default_rng(0)
    x = tl.Tensor(rng.normal(size=(3, 4)))
    w = tl.Tensor(rng.normal(size=(4, 5)), requires_grad=True)
    counted = scaling.matmul_flops((x @ w).sum())
    assert counted == {"forward": 2 * 3 * 4 * 5, "backward": 2 * 3 * 4 * 5, "products": 1}
    a = tl.Tensor(rng.normal(size=(2, 1, 3, 4)), requires_grad=True)      # broadcast batch
    b = tl.Tensor(rng.normal(size=(6, 4, 5)), requires_grad=True)
    v = tl.Tensor(rng.normal(size=(5,)), requires_grad=True)                # matrix @ vector
    counted = scaling.matmul_flops(((a @ b) @ v).sum())
    f1, f2 = 2 * 12 * 3 * 4 * 5, 2 * 12 * 3 * 5
    assert counted == {"forward": f1 + f2, "backward": 2 * (f1 + f2), "products": 2}


def test_matmul_flops_and_graph_bytes_refuse_what_they_cannot_count():
    with pytest.raises(TinyLMError, match="no graph"):
        scaling.matmul_flops(tl.Tensor(np.ones(3)))
    with pytest.raises(TinyLMError, match="expected the Tensor"):
        scaling.graph_bytes(np.ones(3))
    cfg = GPTConfig(block_size=300, vocab_size=10, n_layer=1, n_head=1, n_embd=4)
    _, loss = _forward(cfg, 1, 260)                      # 260^2 > 256^2: the streaming kernel
    with pytest.raises(TinyLMError, match="streaming FusedAttention"):
        scaling.matmul_flops(loss)


@pytest.mark.parametrize("spec,batch,seq_len", [(CONFIGS[0], 2, 16), (CONFIGS[1], 3, 24),
                                                (CONFIGS[2], 1, 7), (CONFIGS[3], 4, 8),
                                                ((1, 8, 2, 20, 300, True), 1, 260),
                                                ((2, 8, 2, 20, 300, False), 1, 300)])
def test_activation_formula_equals_graph_bytes(spec, batch, seq_len):
    cfg = _config(*spec)
    model, loss = _forward(cfg, batch, seq_len)
    walked = scaling.graph_bytes(loss, exclude=model.parameters())
    assert scaling.gpt_activation_bytes(cfg, batch, seq_len)["total"] == walked
    by_op = scaling.graph_bytes(loss, exclude=model.parameters(), by_op=True)
    assert sum(by_op.values()) == walked and "MatMul" in by_op


def test_graph_bytes_counts_a_view_once_and_excludes_parameters():
    w = tl.Tensor(np.ones((10, 10), dtype=np.float32), requires_grad=True)
    y = w * 2.0                     # 400 bytes, kept as Mul's output and the next input
    z = y.reshape(100)              # a view of y: no new memory
    total = scaling.graph_bytes(z.sum(), exclude=[w])
    scalar_bytes = 4 + 4            # the constant 2.0 and the sum
    assert total == 400 + scalar_bytes
    assert scaling.graph_bytes(z.sum()) == total + 400       # w itself when not excluded


def test_traced_memory_sees_numpy_retained_and_peak():
    def compute():
        kept = np.ones(250_000)                            # 2 MB, returned
        np.ones(500_000).sum()                              # 4 MB, freed again
        return kept
    retained, peak, arr = scaling.traced_memory(compute)
    assert arr.nbytes == 2_000_000 and 2_000_000 <= retained < 2_010_000
    assert 6_000_000 <= peak < 6_020_000


def test_graph_bytes_is_what_tracemalloc_sees():
    cfg = _config(2, 32, 4, 40, 32, True)
    model = GPT(cfg, seed=0)
    x = np.random.default_rng(0).integers(0, 40, (4, 32))
    model(x, x)                                    # first call: kernels loaded, caches built
    retained, _, (logits, loss) = scaling.traced_memory(lambda: model(x, x))
    walked = scaling.graph_bytes(loss, exclude=model.parameters())
    assert walked > 0 and abs(retained / walked - 1) < 0.05


def test_training_memory_is_measured_state():
    model = GPT(_config(*CONFIGS[0]), seed=0)
    x = np.random.default_rng(0).integers(0, 50, (2, 16))
    N = model.num_parameters()
    for opt, kind in ((AdamW(model.parameters(), lr=1e-3), "adamw"),
                      (SGD(model.parameters(), lr=1e-3, momentum=0.9), "momentum"),
                      (SGD(model.parameters(), lr=1e-3), "sgd")):
        model.zero_grad()
        model(x, x)[1].backward()
        opt.step()
        mem = scaling.training_memory_bytes(N, kind)
        assert mem["weights"] == sum(p.data.nbytes for p in model.parameters()) == 4 * N
        assert mem["gradients"] == sum(p.grad.nbytes for p in model.parameters())
        assert mem["optimizer"] == scaling.optimizer_state_bytes(opt)
    assert scaling.training_memory_bytes(N, "adam")["total"] == 16 * N
    assert scaling.training_memory_bytes(N, "adam", mixed_precision=True) == {
        "weights": 2 * N, "gradients": 2 * N, "optimizer": 12 * N, "total": 16 * N}


def test_power_law_fit_recovers_an_exact_law():
    n = np.array([1e3, 3e3, 1e4, 3e4, 1e5])
    law = scaling.fit_power_law(n, 5.0 * n ** -0.3)
    assert law.a == pytest.approx(5.0, rel=1e-10) and law.alpha == pytest.approx(0.3, rel=1e-10)
    assert law.c == 0 and law.r2 == pytest.approx(1.0)
    offset = scaling.fit_power_law(n, 5.0 * n ** -0.3 + 0.2, offset=True, grid=4000)
    assert offset.c == pytest.approx(0.2, abs=2e-3)
    assert offset.alpha == pytest.approx(0.3, rel=0.05) and offset.r2 > 0.9999
    plain = scaling.fit_power_law(n, 5.0 * n ** -0.3 + 0.2)
    assert offset.r2 > plain.r2


def test_power_law_fit_is_least_squares_on_log_axes():
    rng = np.random.default_rng(0)
    n = np.geomspace(1e3, 1e6, 7)
    loss = 4.0 * n ** -0.1 * np.exp(rng.normal(0, 0.02, n.size))
    law = scaling.fit_power_law(n, loss)
    resid = np.log(loss) - np.log(law(n))
    np.testing.assert_allclose([resid.sum(), resid @ np.log(n)], 0.0, atol=1e-10)


def test_bad_input_is_named():
    with pytest.raises(TinyLMError, match="gpt_parameter_count: expected a GPTConfig"):
        scaling.gpt_parameter_count(object())
    with pytest.raises(TinyLMError, match="seq_len must be an integer in"):
        scaling.gpt_forward_flops(_config(*CONFIGS[0]), 17)
    with pytest.raises(TinyLMError, match="dropout=0"):
        scaling.gpt_activation_bytes(GPTConfig(block_size=8, vocab_size=5, n_layer=1,
                                               n_head=1, n_embd=4, dropout=0.1), 2)
    with pytest.raises(TinyLMError, match="batch must be a positive integer"):
        scaling.gpt_activation_bytes(_config(*CONFIGS[0]), 0)
    with pytest.raises(TinyLMError, match="optimizer must be one of"):
        scaling.training_memory_bytes(10, "lion")
    with pytest.raises(TinyLMError, match="optimizer_state_bytes: expected"):
        scaling.optimizer_state_bytes(object())
    with pytest.raises(ShapeError, match="same length"):
        scaling.fit_power_law([1, 2, 3], [1, 2])
    with pytest.raises(TinyLMError, match="positive and finite"):
        scaling.fit_power_law([1, 2, 3], [1, -2, 3])
    with pytest.raises(TinyLMError, match="at least 4 points"):
        scaling.fit_power_law([1, 2, 3], [3, 2, 1], offset=True)
    with pytest.raises(TinyLMError, match="two different sizes"):
        scaling.fit_power_law([2, 2], [3, 2])
