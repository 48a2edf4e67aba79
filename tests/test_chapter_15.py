"""Chapter 15 (optimisation and regularisation): it runs end to end with ``--quick``, and its
tools are tested directly: each NumPy update rule against tinylm.optim and torch.optim,
Adam's bias correction, weight decay vs L2, dropout and clipping by hand against the
library, the text augmentations (hypothesis), the model's gradient, the training loop."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinylm as tl
from tinylm import functional as F
from tinylm import nn, optim
from tinylm.errors import TinyLMError
from tinylm.gradcheck import gradcheck

from chapter_tools import assert_chapter_passes, load_definitions

FIGURES = ["15_trajectories.png", "15_lr_sweep.png", "15_optimizer_race.png",
           "15_weight_decay.png", "15_dropout.png", "15_schedules.png", "15_clipping.png",
           "15_augmentation.png"]


@pytest.fixture(scope="module")
def ch15():
    return load_definitions("15_optimization.py")


@pytest.mark.ch15
def test_chapter_15_runs(tmp_path):
    out = assert_chapter_passes("15_optimization.py", tmp_path, FIGURES)
    assert "Adam: the bias-corrected m^_t == g exactly" in out
    assert "but AdamW != Adam with L2 after five steps" in out
    assert "swap is invisible to a bag-of-words model" in out
    assert "TEST accuracy" in out


def noisy_grad(seed, dim=4):
    """A fixed noisy quadratic: g(w, t) = c * (w - target) + noise_t."""
    rng = np.random.default_rng(seed)
    c, target, noise = rng.uniform(0.5, 3, dim), rng.normal(size=dim), rng.normal(size=(50, dim))
    state = {"t": 0}

    def grad(w):
        g = c * (w - target) + 0.3 * noise[state["t"] % 50]
        state["t"] += 1
        return g
    return grad


RULES = [  # (rule name, its kwargs, the tinylm optimiser, the torch optimiser name + kwargs)
    ("sgd_rule", dict(lr=0.1), lambda p: optim.SGD(p, lr=0.1), ("SGD", dict(lr=0.1))),
    ("momentum_rule", dict(lr=0.05, mu=0.9), lambda p: optim.SGD(p, lr=0.05, momentum=0.9),
     ("SGD", dict(lr=0.05, momentum=0.9))),
    ("momentum_rule", dict(lr=0.05, mu=0.8, nesterov=True),
     lambda p: optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
     ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True))),
    ("adagrad_rule", dict(lr=0.3), lambda p: optim.Adagrad(p, lr=0.3), ("Adagrad", dict(lr=0.3))),
    ("rmsprop_rule", dict(lr=0.01, alpha=0.9), lambda p: optim.RMSprop(p, lr=0.01, alpha=0.9),
     ("RMSprop", dict(lr=0.01, alpha=0.9))),
    ("adam_rule", dict(lr=0.05, b1=0.8, b2=0.99), lambda p: optim.Adam(p, lr=0.05,
                                                                         betas=(0.8, 0.99)),
     ("Adam", dict(lr=0.05, betas=(0.8, 0.99)))),
    ("adam_rule", dict(lr=0.05, weight_decay=0.2), lambda p: optim.Adam(p, lr=0.05,
                                                                         weight_decay=0.2),
     ("Adam", dict(lr=0.05, weight_decay=0.2))),
    ("adam_rule", dict(lr=0.05, weight_decay=0.2, decoupled=True),
     lambda p: optim.AdamW(p, lr=0.05, weight_decay=0.2),
     ("AdamW", dict(lr=0.05, weight_decay=0.2))),
]
RULE_IDS = [f"{r[0]}-{i}" for i, r in enumerate(RULES)]


@pytest.mark.ch15
@pytest.mark.parametrize("rule,kwargs,make,_", RULES, ids=RULE_IDS)
def test_each_numpy_rule_equals_tinylm_optimizer(ch15, rule, kwargs, make, _):
    w0 = np.array([1.0, -2.0, 0.5, 3.0])
    ours = ch15.run_rule(getattr(ch15, rule), w0, 30, grad=noisy_grad(0), **kwargs)
    lib = ch15.run_optimizer(make, w0, 30, grad=noisy_grad(0))
    np.testing.assert_allclose(ours, lib, rtol=1e-12, atol=1e-14)


@pytest.mark.ch15
@pytest.mark.torch
@pytest.mark.parametrize("rule,kwargs,_,torch_opt", RULES, ids=RULE_IDS)
def test_each_numpy_rule_equals_torch_optim(ch15, rule, kwargs, _, torch_opt):
    torch = pytest.importorskip("torch")
    w0 = np.array([1.0, -2.0, 0.5, 3.0])
    ours = ch15.run_rule(getattr(ch15, rule), w0, 30, grad=noisy_grad(1), **kwargs)
    w = torch.tensor(w0, requires_grad=True)
    opt = getattr(torch.optim, torch_opt[0])([w], **torch_opt[1])
    grad = noisy_grad(1)
    for _ in range(30):
        w.grad = torch.from_numpy(grad(w.detach().numpy()))
        opt.step()
    np.testing.assert_allclose(ours[-1], w.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.ch15
def test_adam_bias_correction_and_first_step(ch15):
    g = np.array([0.3, -5.0, 2e-3])
    state = {}
    for t in range(1, 20):
        ch15.adam_rule(np.zeros(3), g, state, lr=0.1, b1=0.9, b2=0.99)
        np.testing.assert_allclose(state["m"], (1 - 0.9 ** t) * g, rtol=1e-12)
        np.testing.assert_allclose(state["v"] / (1 - 0.99 ** t), g * g, rtol=1e-12)
    step = ch15.adam_rule(np.zeros(3), g, {}, lr=0.1, eps=0.0)
    np.testing.assert_allclose(step, -0.1 * np.sign(g), rtol=1e-12)


@pytest.mark.ch15
def test_sgd_stability_edge_on_the_quadratic(ch15):
    edge = 2 / ch15.QUAD_CURVATURE.max()
    below = ch15.run_rule(ch15.sgd_rule, ch15.QUAD_START, 200, lr=0.95 * edge)
    above = ch15.run_rule(ch15.sgd_rule, ch15.QUAD_START, 200, lr=1.05 * edge)
    assert np.linalg.norm(below[-1]) < 1e-3 < 1e3 < np.linalg.norm(above[-1])
    # the steep coordinate flips sign every step: the multiplier 1 - lr c is negative
    assert np.all(np.sign(below[1:6, 1]) == np.array([-1, 1, -1, 1, -1]))


@pytest.mark.ch15
def test_bag_of_words_is_the_mean_one_hot(ch15):
    X = ch15.bag_of_words([[1, 1, 3], [], [0]], 5)
    np.testing.assert_allclose(X, [[0, 2 / 3, 0, 1 / 3, 0], [0] * 5, [1, 0, 0, 0, 0]])
    model = ch15.BowClassifier(5, seed=0)
    e = (tl.Tensor(X[:1]) @ model.embed).numpy()[0]
    np.testing.assert_allclose(e, model.embed.data[[1, 1, 3]].mean(axis=0), atol=1e-15)


@pytest.mark.ch15
@pytest.mark.gradcheck
def test_bow_classifier_gradient_matches_finite_differences(ch15):
    model = ch15.BowClassifier(7, num_classes=3, embed_dim=4, hidden=5, seed=2)
    X = ch15.bag_of_words([[0, 2, 2], [5, 6], [1]], 7)
    y = np.array([2, 0, 1])
    leaves = list(model.parameters())
    result = gradcheck(lambda: F.cross_entropy(model(tl.Tensor(X)), y), leaves,
                       name="BowClassifier")
    assert result.passed, result


@pytest.mark.ch15
def test_weight_decay_equals_l2_for_sgd_not_for_adam(ch15):
    rng = np.random.default_rng(0)
    X = ch15.bag_of_words([rng.integers(0, 9, 5).tolist() for _ in range(16)], 9)
    y = rng.integers(0, 4, 16)

    def run(make, penalty=0.0):
        m = ch15.BowClassifier(9, embed_dim=4, hidden=6, seed=1)
        opt = make(m)
        for _ in range(4):
            loss = F.cross_entropy(m(tl.Tensor(X)), y)
            if penalty:
                loss = loss + ch15.l2_penalty(m, penalty)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return np.concatenate([p.data.ravel() for p in m.parameters()])
    sgd = run(lambda m: optim.SGD(optim.decay_groups(m.parameters(), 0.3), lr=0.5))
    np.testing.assert_allclose(sgd, run(lambda m: optim.SGD(m.parameters(), lr=0.5), 0.3),
                               atol=1e-13)
    adam = run(lambda m: optim.Adam(optim.decay_groups(m.parameters(), 0.3), lr=0.05))
    np.testing.assert_allclose(adam, run(lambda m: optim.Adam(m.parameters(), lr=0.05), 0.3),
                               atol=1e-12)
    adamw = run(lambda m: optim.AdamW(optim.decay_groups(m.parameters(), 0.3), lr=0.05))
    assert np.max(np.abs(adamw - adam)) > 1e-3
    # the groups: matrices decayed, biases not
    groups = optim.decay_groups(ch15.BowClassifier(9, seed=0).parameters(), 0.1)
    assert all(p.ndim >= 2 for p in groups[0]["params"]) and groups[1]["weight_decay"] == 0.0
    assert all(p.ndim < 2 for p in groups[1]["params"])


@pytest.mark.ch15
def test_make_optimizer_names(ch15):
    m = ch15.BowClassifier(5, seed=0)
    kinds = {name: type(ch15.make_optimizer(name, m, 0.1)).__name__ for name in ch15.OPTIMIZERS}
    assert kinds == {"SGD": "SGD", "momentum": "SGD", "Adagrad": "Adagrad",
                     "RMSprop": "RMSprop", "Adam": "Adam", "AdamW": "AdamW"}
    assert ch15.make_optimizer("momentum", m, 0.1).param_groups[0]["momentum"] == 0.9
    with pytest.raises(TinyLMError, match="name must be one of"):
        ch15.make_optimizer("LBFGS", m, 0.1)


@pytest.mark.ch15
def test_dropout_by_hand_equals_library_and_keeps_the_mean(ch15):
    x = np.random.default_rng(0).normal(size=(5, 7))
    y, keep = ch15.dropout_by_hand(x, 0.3, np.random.default_rng(4))
    # the same mask; x * m / (1 - p) and x * (m / (1 - p)) may differ in the last bit
    np.testing.assert_allclose(y, F.dropout(tl.Tensor(x), 0.3, True,
                                            np.random.default_rng(4)).numpy(), rtol=1e-15)
    np.testing.assert_allclose(y[keep], x[keep] / 0.7)
    assert np.all(y[~keep] == 0)
    mean = np.mean([ch15.dropout_by_hand(np.ones(1000), 0.3, np.random.default_rng(s))[0]
                    for s in range(50)])
    assert mean == pytest.approx(1.0, abs=0.02)


@pytest.mark.ch15
def test_clip_by_hand_equals_clip_grad_norm(ch15):
    rng = np.random.default_rng(1)
    params = [nn.Parameter(rng.normal(size=s)) for s in ((2, 3), (3,))]
    for p in params:
        p.grad = rng.normal(size=p.shape) * 4
    hand, total = ch15.clip_by_hand([p.grad.copy() for p in params], 0.5)
    assert optim.clip_grad_norm_(params, 0.5) == pytest.approx(total, rel=1e-14)
    for g, p in zip(hand, params):
        np.testing.assert_allclose(g, p.grad, rtol=1e-14)
    small, _ = ch15.clip_by_hand([np.array([0.1, 0.2])], 5.0)     # under the cap: untouched
    np.testing.assert_array_equal(small[0], [0.1, 0.2])


@pytest.mark.ch15
def test_clipping_caps_every_sgd_step(ch15):
    errors, moves = ch15.heavy_tailed_regression(1.0, seed=0, steps=120)
    assert moves.max() <= 0.02 * 1.0 * (1 + 1e-9)
    _, raw_moves = ch15.heavy_tailed_regression(None, seed=0, steps=120)
    assert raw_moves.max() > 0.1          # heavy tails: some unclipped steps are long
    assert errors.shape == moves.shape == (120,)


sequences = st.lists(st.integers(0, 50), min_size=0, max_size=40)


@pytest.mark.ch15
@settings(max_examples=60, deadline=None)
@given(ids=sequences, p=st.floats(0.0, 0.95), fraction=st.floats(0.05, 1.0),
       n_swaps=st.integers(0, 5), seed=st.integers(0, 10_000))
def test_augmentations_keep_their_promises(ch15, ids, p, fraction, n_swaps, seed):
    rng = np.random.default_rng(seed)
    deleted = ch15.random_deletion(ids, p, rng)
    it = iter(ids)
    assert all(t in it for t in deleted)                       # a subsequence, order kept
    assert (len(deleted) >= 1) == (len(ids) >= 1)              # never empties a text
    cropped = ch15.random_crop(ids, fraction, rng)
    assert len(cropped) == (max(1, math.ceil(fraction * len(ids))) if ids else 0)
    assert any(ids[i:i + len(cropped)] == cropped for i in range(len(ids) - len(cropped) + 1))
    swapped = ch15.random_swap(ids, n_swaps, rng)
    assert sorted(swapped) == sorted(ids)
    if ids:
        np.testing.assert_array_equal(ch15.bag_of_words([swapped], 51),
                                      ch15.bag_of_words([ids], 51))


@pytest.mark.ch15
def test_augment_is_seeded(ch15):
    seqs = [[1, 2, 3, 4, 5, 6], [7, 8, 9]]
    a = ch15.augment(seqs, np.random.default_rng(3), p_delete=0.3, crop=0.7, n_swaps=2)
    b = ch15.augment(seqs, np.random.default_rng(3), p_delete=0.3, crop=0.7, n_swaps=2)
    assert a == b and len(a) == 2


def _toy(n, seed):
    """Word 1 in the text -> class 1, word 2 -> class 2, else class 0; words 3..9 noise."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for _ in range(n):
        s = rng.integers(3, 10, rng.integers(2, 6)).tolist()
        label = int(rng.integers(0, 3))
        if label:
            s[rng.integers(len(s))] = label
        seqs.append(s)
        labels.append(label)
    return seqs, np.array(labels)


@pytest.mark.ch15
def test_train_model_learns_is_deterministic_and_records(ch15):
    seqs, y = _toy(96, 0)
    val_seqs, val_y = _toy(48, 1)
    X, Xv = ch15.bag_of_words(seqs, 10), ch15.bag_of_words(val_seqs, 10)

    def run():
        m = ch15.BowClassifier(10, num_classes=3, embed_dim=8, hidden=8, seed=0)
        opt = ch15.make_optimizer("Adam", m, 0.05)
        sched = optim.CosineAnnealingLR(opt, T_max=6 * 6)
        return ch15.train_model(m, opt, (X, y), (Xv, val_y), 6, batch_size=16, clip=1.0,
                                scheduler=sched, track_train=True)
    h = run()
    assert len(h["loss"]) == len(h["grad_norm"]) == len(h["lr"]) == 36
    assert len(h["val_loss"]) == len(h["val_acc"]) == len(h["train_eval_loss"]) == 6
    assert h["lr"][0] == 0.05 and h["lr"][-1] < 0.01
    assert h["val_acc"][-1] >= 0.9 and h["train_eval_loss"][-1] < 0.5 * h["train_eval_loss"][0]
    assert run() == h
    # train given as a function of the epoch (augmentation): called once per epoch
    calls = []
    m = ch15.BowClassifier(10, num_classes=3, seed=0)
    ch15.train_model(m, ch15.make_optimizer("SGD", m, 0.1),
                     lambda epoch: calls.append(epoch) or (X, y), (Xv, val_y), 3)
    assert calls == [0, 1, 2]


@pytest.mark.ch15
def test_ensemble_is_a_mean_of_distributions_and_obeys_jensen(ch15):
    seqs, y = _toy(40, 2)
    X = ch15.bag_of_words(seqs, 10)
    models = [ch15.BowClassifier(10, num_classes=3, seed=s) for s in range(3)]
    probs = ch15.ensemble_probabilities(models, X)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    singles = [F.softmax(m(tl.Tensor(X)), axis=-1).numpy() for m in models]
    np.testing.assert_allclose(probs, np.mean(singles, axis=0), atol=1e-15)
    nll = -np.log(probs[np.arange(40), y]).mean()
    assert nll <= np.mean([-np.log(p[np.arange(40), y]).mean() for p in singles]) + 1e-12


@pytest.mark.ch15
def test_smooth(ch15):
    np.testing.assert_allclose(ch15.smooth([1, 2, 3, 4], 2), [1.5, 2.5, 3.5])
    np.testing.assert_allclose(ch15.smooth([1, 2], 5), [1.5])
