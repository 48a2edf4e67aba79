"""Optimisers, clipping and lr schedules: their rules by hand, and PyTorch's trajectories.

The torch tests feed both frameworks the same gradient sequence: g = c * (p - target) +
noise[t], computed from each framework's own current parameters, so any difference in an
update rule changes every later gradient and shows up in the 20-step trajectory.
"""
import math

import numpy as np
import pytest

import tinylm as tl
import tinylm.optim as optim
from tinylm.errors import ShapeError, TinyLMError
from tinylm.nn import Parameter
from tinylm.optim import (SGD, Adam, AdamW, CosineAnnealingLR, LambdaLR, LinearLR, RMSprop,
                          StepLR, WarmupCosineLR, clip_grad_norm_, clip_grad_value_,
                          warmup_cosine_lr)

SHAPES = [(3, 4), (4,), (2, 3)]
STEPS = 20


# --------------------------------------------------------------------------------------
# A shared gradient source and the trajectories of both frameworks
# --------------------------------------------------------------------------------------

class GradientSource:
    """g_i(p, t) = c_i * (p - target_i) + noise_i[t]: a noisy quadratic, fixed by a seed."""

    def __init__(self, seed=0, shapes=SHAPES, steps=STEPS):
        rng = np.random.default_rng(seed)
        self.init = [rng.normal(size=s) for s in shapes]
        self.target = [rng.normal(size=s) for s in shapes]
        self.curv = [rng.uniform(0.5, 2.0, size=s) for s in shapes]
        self.noise = [[0.3 * rng.normal(size=s) for s in shapes] for _ in range(steps)]

    def grad(self, i, p, t):
        return self.curv[i] * (p - self.target[i]) + self.noise[t][i]


def skip_grad(i, t):
    """Leave parameter 2 without a gradient every third step (both frameworks skip it)."""
    return i == 2 and t % 3 == 1


def make_groups(params, groups):
    """``groups``: None (one plain list) or dicts naming parameter indices in "params"."""
    if groups is None:
        return list(params)
    return [dict(g, params=[params[i] for i in g["params"]]) for g in groups]


def run_tinylm(opt_cls, kwargs, groups=None, src=None, sched=None):
    src = src or GradientSource()
    params = [Parameter(a.copy()) for a in src.init]
    opt = opt_cls(make_groups(params, groups), **kwargs)
    scheduler = sched[0](opt, **sched[1]) if sched else None
    for t in range(STEPS):
        for i, p in enumerate(params):
            p.grad = None if skip_grad(i, t) else src.grad(i, p.data, t)
        opt.step()
        if scheduler:
            scheduler.step()
    return [p.data.copy() for p in params]


def run_torch(torch, opt_cls, kwargs, groups=None, src=None, sched=None):
    src = src or GradientSource()
    params = [torch.tensor(a.copy(), dtype=torch.float64, requires_grad=True) for a in src.init]
    opt = opt_cls(make_groups(params, groups), **kwargs)
    scheduler = sched[0](opt, **sched[1]) if sched else None
    for t in range(STEPS):
        for i, p in enumerate(params):
            g = src.grad(i, p.detach().numpy(), t)
            p.grad = None if skip_grad(i, t) else torch.from_numpy(g)
        opt.step()
        if scheduler:
            scheduler.step()
    return [p.detach().numpy().copy() for p in params]


def assert_same_trajectory(ours, theirs):
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


TWO_GROUPS = [{"params": [0, 1], "weight_decay": 0.1},
              {"params": [2], "weight_decay": 0.0, "lr": 0.02}]

CASES = [
    ("SGD", dict(lr=0.05), None),
    ("SGD", dict(lr=0.05, momentum=0.9), None),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3), None),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), None),
    ("SGD", dict(lr=0.05, weight_decay=0.1), None),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.05, nesterov=True), None),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True), None),
    ("SGD", dict(lr=0.05, momentum=0.9), TWO_GROUPS),
    ("RMSprop", dict(lr=0.01), None),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6), None),
    ("RMSprop", dict(lr=0.01, momentum=0.9), None),
    ("RMSprop", dict(lr=0.01, centered=True), None),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1), None),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True), TWO_GROUPS),
    ("Adam", dict(lr=0.05), None),
    ("Adam", dict(lr=0.05, weight_decay=0.1), None),
    ("Adam", dict(lr=0.05, amsgrad=True), None),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.9), eps=1e-6), None),
    ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.05, maximize=True), None),
    ("Adam", dict(lr=0.05, betas=(0.9, 0.95)), TWO_GROUPS),
    ("AdamW", dict(lr=0.05), None),
    ("AdamW", dict(lr=0.05, weight_decay=0.1), None),
    ("AdamW", dict(lr=0.05, weight_decay=0.05, amsgrad=True), None),
    ("AdamW", dict(lr=0.05, betas=(0.9, 0.95), weight_decay=0.1), TWO_GROUPS),
]


def case_id(case):
    name, kwargs, groups = case
    opts = ",".join(f"{k}={v}" for k, v in kwargs.items() if k != "lr")
    return f"{name}[{opts}]" + ("-groups" if groups else "")


@pytest.mark.torch
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_trajectory_matches_torch(case):
    torch = pytest.importorskip("torch")
    name, kwargs, groups = case
    ours = run_tinylm(getattr(optim, name), kwargs, groups)
    theirs = run_torch(torch, getattr(torch.optim, name), kwargs, groups)
    assert_same_trajectory(ours, theirs)


@pytest.mark.torch
def test_trajectory_with_a_scheduler_matches_torch():
    torch = pytest.importorskip("torch")
    kwargs = dict(lr=0.05, betas=(0.9, 0.95), weight_decay=0.1)
    ours = run_tinylm(AdamW, kwargs, TWO_GROUPS, sched=(CosineAnnealingLR, dict(T_max=15)))
    theirs = run_torch(torch, torch.optim.AdamW, kwargs, TWO_GROUPS,
                       sched=(torch.optim.lr_scheduler.CosineAnnealingLR, dict(T_max=15)))
    assert_same_trajectory(ours, theirs)


# --------------------------------------------------------------------------------------
# Update rules by hand (no torch)
# --------------------------------------------------------------------------------------

def test_sgd_step_is_w_minus_lr_g_in_place():
    """C8: w <- w - alpha dL/dw, written into the same array (views stay valid)."""
    w0 = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = np.array([[0.1, 0.2], [-0.3, 4.0]])
    p = Parameter(w0.copy())
    data, view = p.data, p.data[0]
    p.grad = g.copy()
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, w0 - 0.1 * g, rtol=1e-15)
    assert p.data is data
    np.testing.assert_allclose(view, (w0 - 0.1 * g)[0])
    np.testing.assert_array_equal(p.grad, g)          # the gradient is not modified


def test_sgd_with_autograd_minimises_a_quadratic():
    target = tl.Tensor(np.array([1.0, -2.0, 3.0]))
    p = Parameter(np.zeros(3))
    opt = SGD([p], lr=0.1, momentum=0.5)
    for _ in range(200):
        opt.zero_grad()
        diff = p - target
        (diff * diff).sum().backward()
        opt.step()
    np.testing.assert_allclose(p.data, target.data, atol=1e-6)


def test_adam_first_step_moves_each_coordinate_by_lr():
    g = np.array([1e-3, -5.0, 200.0, -0.02])
    p = Parameter(np.zeros(4))
    p.grad = g
    Adam([p], lr=0.01).step()
    # m_hat / sqrt(v_hat) = g / |g|: every coordinate moves by lr against its gradient.
    np.testing.assert_allclose(p.data, -0.01 * np.sign(g), rtol=1e-4)


def test_adamw_decays_weights_without_touching_the_moments():
    p = Parameter(np.array([2.0, -4.0]))
    p.grad = np.zeros(2)
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    opt.step()
    np.testing.assert_allclose(p.data, np.array([2.0, -4.0]) * (1 - 0.1 * 0.5), rtol=1e-12)
    assert not opt.state[id(p)]["exp_avg"].any()


def test_float32_parameters_stay_float32():
    p = Parameter(np.ones(5, dtype=np.float32))
    p.grad = np.full(5, 0.5, dtype=np.float32)
    opt = Adam([p], lr=0.1, amsgrad=True)
    opt.step()
    assert p.data.dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state[id(p)].values() if hasattr(v, "dtype"))


def test_parameter_without_grad_is_skipped():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    a.grad = np.ones(2)
    opt = Adam([a, b], lr=0.1)
    opt.step()
    np.testing.assert_array_equal(b.data, np.ones(2))
    assert id(b) not in opt.state and opt.state[id(a)]["step"] == 1


def test_zero_grad():
    p = Parameter(np.ones(3))
    p.grad = np.ones(3)
    opt = SGD([p], lr=0.1)
    g = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is g and not g.any()
    opt.zero_grad()
    assert p.grad is None


def test_param_groups_fill_defaults_and_override():
    a, b, c = (Parameter(np.ones(2)) for _ in range(3))
    opt = AdamW([{"params": [a, b], "weight_decay": 0.1},
                 {"params": [c], "weight_decay": 0.0, "lr": 1e-4}], lr=6e-4, betas=(0.9, 0.95))
    g0, g1 = opt.param_groups
    assert (g0["lr"], g0["weight_decay"], g0["betas"]) == (6e-4, 0.1, (0.9, 0.95))
    assert (g1["lr"], g1["weight_decay"], g1["eps"]) == (1e-4, 0.0, 1e-8)
    d = Parameter(np.ones(2))
    opt.add_param_group({"params": d, "lr": 1.0})
    assert opt.param_groups[2]["params"] == [d] and opt.param_groups[2]["amsgrad"] is False
    for p in (a, b, c, d):
        p.grad = np.ones(2)
    opt.step()
    # First Adam step moves by ~lr; c has no decay, a decays by lr*wd first.
    np.testing.assert_allclose(c.data, 1 - 1e-4, rtol=1e-9)
    np.testing.assert_allclose(a.data, (1 - 6e-4 * 0.1) - 6e-4, rtol=1e-9)
    np.testing.assert_allclose(d.data, 1 - 1.0 - 1.0 * 0.01, rtol=1e-6)


# --------------------------------------------------------------------------------------
# Saving and resuming
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("opt_cls,kwargs", [
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    (Adam, dict(lr=0.05, amsgrad=True)),
    (AdamW, dict(lr=0.05, weight_decay=0.1)),
])
def test_state_dict_round_trip_resumes_the_same_trajectory(opt_cls, kwargs):
    src = GradientSource(seed=3)

    def train(params, opt, steps):
        for t in steps:
            for i, p in enumerate(params):
                p.grad = None if skip_grad(i, t) else src.grad(i, p.data, t)
            opt.step()

    params = [Parameter(a.copy()) for a in src.init]
    opt = opt_cls(make_groups(params, TWO_GROUPS), **kwargs)
    train(params, opt, range(10))
    saved = opt.state_dict()
    saved_params = [p.data.copy() for p in params]
    train(params, opt, range(10, 20))
    expected = [p.data.copy() for p in params]

    # The snapshot holds plain NumPy arrays and numbers, untouched by the later steps.
    for s in saved["state"].values():
        assert isinstance(s["step"], int) and s["step"] >= 1
        for k, v in s.items():
            assert k == "step" or (isinstance(v, np.ndarray) and v.dtype == np.float64)
    assert sorted(saved["state"]) == [0, 1, 2]
    assert [g["params"] for g in saved["param_groups"]] == [[0, 1], [2]]

    fresh = [Parameter(a) for a in saved_params]
    opt2 = opt_cls(make_groups(fresh, TWO_GROUPS), lr=123.0)   # lr comes back from the save
    opt2.load_state_dict(saved)
    assert opt2.param_groups[1]["lr"] == opt.param_groups[1]["lr"]
    train(fresh, opt2, range(10, 20))
    for a, b in zip(fresh, expected):
        np.testing.assert_allclose(a.data, b, rtol=1e-14)


def test_load_state_dict_rejects_a_different_layout():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(3))
    saved = Adam([a, b]).state_dict()
    with pytest.raises(TinyLMError, match="saved state has 1 parameter groups, this optimiser has 2"):
        Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(saved)
    with pytest.raises(TinyLMError, match="group 0 has 2 parameters"):
        Adam([a]).load_state_dict(saved)


def test_scheduler_state_dict_round_trip():
    p = Parameter(np.ones(1))
    opt = SGD([p], lr=1.0)
    sched = WarmupCosineLR(opt, warmup_steps=3, decay_steps=10, min_lr=0.1)
    for _ in range(5):
        opt.step()
        sched.step()
    saved, opt_saved = sched.state_dict(), opt.state_dict()
    later = []
    for _ in range(5):
        sched.step()
        later.append(sched.get_last_lr()[0])

    opt2 = SGD([Parameter(np.ones(1))], lr=1.0)
    opt2.load_state_dict(opt_saved)
    sched2 = WarmupCosineLR(opt2, warmup_steps=3, decay_steps=10, min_lr=0.1)
    sched2.load_state_dict(saved)
    assert sched2.last_epoch == 5
    resumed = []
    for _ in range(5):
        sched2.step()
        resumed.append(opt2.param_groups[0]["lr"])
    assert resumed == later


# --------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------

def test_warmup_cosine_lr_key_points():
    kw = dict(max_lr=6e-4, min_lr=6e-5, warmup_steps=10, decay_steps=110)
    assert warmup_cosine_lr(0, **kw) == pytest.approx(6e-5)          # max_lr * 1/10
    assert warmup_cosine_lr(4, **kw) == pytest.approx(3e-4)
    assert warmup_cosine_lr(9, **kw) == pytest.approx(6e-4)          # warmup ends at max_lr
    assert warmup_cosine_lr(10, **kw) == pytest.approx(6e-4)         # cosine starts there
    assert warmup_cosine_lr(60, **kw) == pytest.approx((6e-4 + 6e-5) / 2)   # halfway
    assert warmup_cosine_lr(110, **kw) == pytest.approx(6e-5)
    assert warmup_cosine_lr(10_000, **kw) == 6e-5                    # flat afterwards
    decay = [warmup_cosine_lr(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_warmup_cosine_scheduler_uses_each_groups_lr_as_max():
    a, b = Parameter(np.ones(1)), Parameter(np.ones(1))
    opt = AdamW([{"params": [a]}, {"params": [b], "lr": 1e-2}], lr=1e-3)
    sched = WarmupCosineLR(opt, warmup_steps=4, decay_steps=20, min_lr=[1e-4, 1e-3])
    seen = [sched.get_last_lr()]
    for _ in range(30):
        opt.step()
        sched.step()
        seen.append(sched.get_last_lr())
    for step, (lr_a, lr_b) in enumerate(seen):
        kw = dict(warmup_steps=4, decay_steps=20)
        assert lr_a == pytest.approx(warmup_cosine_lr(step, max_lr=1e-3, min_lr=1e-4, **kw))
        assert lr_b == pytest.approx(warmup_cosine_lr(step, max_lr=1e-2, min_lr=1e-3, **kw))
    assert sched.base_lrs == [1e-3, 1e-2]
    assert [g["lr"] for g in opt.param_groups] == seen[-1]


def _lr_sequence(opt, sched, steps=25):
    lrs = [sched.get_last_lr()]
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == lrs[-1]
    return np.array(lrs)


SCHEDULES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("StepLR", dict(step_size=1)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.001)),
    ("CosineAnnealingLR", dict(T_max=7)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.5, total_iters=12)),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.95 ** e)),
    ("LambdaLR", dict(lr_lambda=[lambda e: 1.0 / (e + 1), lambda e: min(1.0, (e + 1) / 5)])),
]


@pytest.mark.torch
@pytest.mark.parametrize("name,kwargs", SCHEDULES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(SCHEDULES)])
def test_schedule_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    groups = lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.3}]   # noqa: E731
    ours_p = [Parameter(np.ones(1)), Parameter(np.ones(1))]
    ours_opt = SGD(groups(ours_p), lr=0.1)
    ours = _lr_sequence(ours_opt, getattr(optim, name)(ours_opt, **kwargs))
    torch_p = [torch.ones(1, requires_grad=True) for _ in range(2)]
    torch_opt = torch.optim.SGD(groups(torch_p), lr=0.1)
    sched = getattr(torch.optim.lr_scheduler, name)(torch_opt, **kwargs)
    theirs = _lr_sequence(torch_opt, sched)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------
# Gradient clipping
# --------------------------------------------------------------------------------------

def _clip_params(seed, scale):
    rng = np.random.default_rng(seed)
    params = [Parameter(rng.normal(size=s)) for s in SHAPES]
    for p in params:
        p.grad = scale * rng.normal(size=p.data.shape)
    return params


@pytest.mark.torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    params = _clip_params(0, 2.0)
    tparams = [torch.tensor(p.data, requires_grad=True) for p in params]
    for p, tp in zip(params, tparams):
        tp.grad = torch.tensor(p.grad)
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(ttotal.item(), rel=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12)


@pytest.mark.torch
def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    params = _clip_params(1, 2.0)
    tparams = [torch.tensor(p.data, requires_grad=True) for p in params]
    for p, tp in zip(params, tparams):
        tp.grad = torch.tensor(p.grad)
    clip_grad_value_(params, 0.7)
    torch.nn.utils.clip_grad_value_(tparams, 0.7)
    for p, tp in zip(params, tparams):
        np.testing.assert_array_equal(p.grad, tp.grad.numpy())


def test_clip_grad_norm_by_hand():
    params = _clip_params(2, 1.0)
    before = [p.grad for p in params]
    grads = [p.grad.copy() for p in params]
    norm = math.sqrt(sum((g ** 2).sum() for g in grads))
    total = clip_grad_norm_(params, norm / 4)
    assert total == pytest.approx(norm, rel=1e-12)
    assert all(p.grad is b for p, b in zip(params, before))      # scaled in place
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad, g * (norm / 4) / (norm + 1e-6), rtol=1e-12)
    new_norm = math.sqrt(sum((p.grad ** 2).sum() for p in params))
    assert new_norm == pytest.approx(norm / 4, rel=1e-6)
    # Below the threshold nothing changes; a parameter without gradient is ignored.
    params[0].grad = None
    kept = [p.grad.copy() for p in params[1:]]
    clip_grad_norm_(params, 1e6)
    for p, g in zip(params[1:], kept):
        np.testing.assert_array_equal(p.grad, g)


def test_clip_grad_norm_with_a_known_total_only_scales():
    """total_norm= (a pipeline's norm over all stages): the same scaling as computing it."""
    ours, theirs = _clip_params(3, 1.0), _clip_params(3, 1.0)
    norm = math.sqrt(sum((p.grad ** 2).sum() for p in theirs))
    assert clip_grad_norm_(ours, 0.5, total_norm=norm) == clip_grad_norm_(theirs, 0.5)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.grad, b.grad)
    half = [p.grad.copy() for p in ours]
    clip_grad_norm_(ours, 0.5, total_norm=2 * norm)        # a bigger total: scaled more
    for p, g in zip(ours, half):
        assert np.abs(p.grad).sum() < np.abs(g).sum()


def test_clip_grad_norm_nonfinite():
    p = Parameter(np.ones(3))
    p.grad = np.array([1.0, np.nan, 2.0])
    with pytest.raises(TinyLMError, match="not finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert math.isnan(clip_grad_norm_([p], 1.0))


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------

def _p(shape=(2,)):
    return Parameter(np.ones(shape))


@pytest.mark.parametrize("make,match", [
    (lambda: SGD([_p()], lr=-0.1), r"SGD: lr must be a number >= 0, got -0\.1"),
    (lambda: Adam([_p()], lr=-1e-3), r"lr must be a number >= 0, got -0\.001"),
    (lambda: Adam([_p()], betas=(0.9, 1.0)), r"betas\[1\] must be in \[0, 1\), got 1\.0"),
    (lambda: AdamW([_p()], betas=(-0.1, 0.9)), r"AdamW: betas\[0\] must be in \[0, 1\)"),
    (lambda: Adam([_p()], betas=0.9), r"betas must be a pair"),
    (lambda: Adam([_p()], eps=-1.0), r"eps must be a number >= 0"),
    (lambda: RMSprop([_p()], alpha=-0.5), r"RMSprop: alpha must be a number >= 0"),
    (lambda: SGD([_p()], momentum=-0.9), r"momentum must be a number >= 0"),
    (lambda: SGD([_p()], lr=0.1, weight_decay=-1), r"weight_decay must be a number >= 0"),
    (lambda: SGD([_p()], lr=0.1, nesterov=True), r"nesterov=True needs momentum > 0"),
    (lambda: SGD([_p()], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     r"dampening == 0, got momentum=0\.9, dampening=0\.1"),
    (lambda: Adam([]), r"empty parameter list"),
    (lambda: Adam(iter([])), r"empty parameter list"),
    (lambda: Adam(_p()), r"got a single Parameter"),
    (lambda: Adam({_p()}), r"got a set"),
    (lambda: Adam([np.ones(2)]), r"can only optimise parameters.*got ndarray"),
    (lambda: Adam([{"params": [_p()]}, _p()]), r"a mix of 1 dicts and 1 other"),
    (lambda: Adam([{"lr": 0.1}]), r"expected a dict with a 'params' entry"),
    (lambda: Adam([{"params": [_p()], "lr": -2.0}]), r"lr must be a number >= 0, got -2\.0"),
])
def test_bad_optimizer_arguments(make, match):
    with pytest.raises(TinyLMError, match=match):
        make()


def test_parameter_in_two_groups_or_twice():
    p, q = _p(), _p()
    with pytest.raises(TinyLMError, match="appears in two parameter groups"):
        AdamW([{"params": [p, q]}, {"params": [p], "weight_decay": 0.0}])
    with pytest.raises(TinyLMError, match="appears more than once in group 0"):
        SGD([p, p], lr=0.1)
    opt = SGD([p], lr=0.1)
    with pytest.raises(TinyLMError, match="appears in two parameter groups"):
        opt.add_param_group({"params": [q, p]})
    assert len(opt.param_groups) == 1


def test_gradient_of_the_wrong_shape():
    p = _p((2, 3))
    p.grad = np.ones((3, 2))
    with pytest.raises(ShapeError, match=r"shape \(2, 3\) has a gradient of shape \(3, 2\)"):
        Adam([p]).step()


@pytest.mark.parametrize("make,match", [
    (lambda o: StepLR(o, step_size=0), r"StepLR: step_size must be a positive integer, got 0"),
    (lambda o: CosineAnnealingLR(o, T_max=2.5), r"T_max must be a positive integer, got 2\.5"),
    (lambda o: LinearLR(o, start_factor=0.0), r"start_factor must be in \(0, 1\], got 0\.0"),
    (lambda o: LinearLR(o, end_factor=1.5), r"end_factor must be in \[0, 1\], got 1\.5"),
    (lambda o: LambdaLR(o, lr_lambda=[abs, abs]), r"a list of 1 functions"),
    (lambda o: WarmupCosineLR(o, warmup_steps=10, decay_steps=5),
     r"0 <= warmup_steps <= decay_steps, got warmup_steps=10, decay_steps=5"),
    (lambda o: StepLR(o, step_size=2, last_epoch=4), r"needs 'initial_lr' in every param group"),
    (lambda o: StepLR(object(), step_size=2), r"expected an Optimizer, got object"),
])
def test_bad_scheduler_arguments(make, match):
    with pytest.raises(TinyLMError, match=match):
        make(SGD([_p()], lr=0.1))


def test_bad_clip_and_schedule_function_arguments():
    with pytest.raises(TinyLMError, match=r"norm_type must be > 0 or inf, got -1\.0"):
        clip_grad_norm_([_p()], 1.0, norm_type=-1)
    with pytest.raises(TinyLMError, match=r"max_norm must be >= 0, got -1"):
        clip_grad_norm_([_p()], -1)
    with pytest.raises(TinyLMError, match=r"clip_value must be >= 0, got -0\.5"):
        clip_grad_value_([_p()], -0.5)
    with pytest.raises(TinyLMError, match=r"step must be >= 0, got -1"):
        warmup_cosine_lr(-1, max_lr=1.0, min_lr=0.0, warmup_steps=2, decay_steps=5)


# --------------------------------------------------------------------------------------
# Adagrad (C16; the per-coordinate step that RMSprop makes forgetful)
# --------------------------------------------------------------------------------------

ADAGRAD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, lr_decay=0.05),
    dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-6),
    dict(lr=0.1, weight_decay=0.1, maximize=True),
]


@pytest.mark.torch
@pytest.mark.parametrize("kwargs", ADAGRAD_CASES, ids=lambda k: ",".join(map(str, k.items())))
def test_adagrad_trajectory_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    ours = run_tinylm(optim.Adagrad, kwargs)
    theirs = run_torch(torch, torch.optim.Adagrad, kwargs)
    assert_same_trajectory(ours, theirs)
    groups = run_tinylm(optim.Adagrad, kwargs, TWO_GROUPS)
    assert_same_trajectory(groups, run_torch(torch, torch.optim.Adagrad, kwargs, TWO_GROUPS))


def test_adagrad_two_steps_by_hand():
    """s <- s + g^2; p <- p - lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)."""
    p = Parameter(np.array([1.0, -2.0, 0.5]))
    opt = optim.Adagrad([p], lr=0.1, lr_decay=0.5, initial_accumulator_value=0.25, eps=0.0)
    g1, g2 = np.array([0.3, -4.0, 0.0]), np.array([-0.3, 1.0, 2.0])
    s = np.full(3, 0.25)
    w = p.data.copy()
    for t, g in enumerate((g1, g2), start=1):
        p.grad = g.copy()
        opt.step()
        s = s + g * g
        w = w - 0.1 / (1 + (t - 1) * 0.5) * g / np.sqrt(s)
        np.testing.assert_allclose(p.data, w, rtol=1e-15)
    np.testing.assert_allclose(opt.state[id(p)]["sum"], s)
    # a coordinate with no gradient so far does not move at all
    q = Parameter(np.array([3.0]))
    opt = optim.Adagrad([q], lr=1.0)
    q.grad = np.zeros(1)
    opt.step()
    assert q.data[0] == 3.0


def test_adagrad_steps_shrink_like_one_over_sqrt_t():
    """A constant gradient g: after t steps s = t g^2, so step t moves lr / sqrt(t)."""
    p = Parameter(np.zeros(2))
    opt = optim.Adagrad([p], lr=0.5, eps=0.0)
    moves = []
    for _ in range(16):
        before = p.data.copy()
        p.grad = np.array([2.0, -0.01])
        opt.step()
        moves.append(before - p.data)
    t = np.arange(1, 17)
    np.testing.assert_allclose(np.array(moves)[:, 0], 0.5 / np.sqrt(t), rtol=1e-12)
    np.testing.assert_allclose(np.array(moves)[:, 1], -0.5 / np.sqrt(t), rtol=1e-12)


def test_adagrad_state_dict_round_trip():
    test_state_dict_round_trip_resumes_the_same_trajectory(
        optim.Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1))


@pytest.mark.parametrize("key", ["lr", "lr_decay", "weight_decay", "initial_accumulator_value",
                                 "eps"])
def test_adagrad_bad_arguments(key):
    with pytest.raises(TinyLMError, match=rf"Adagrad: {key} must be a number >= 0, got -1"):
        optim.Adagrad([_p()], **{key: -1})
