"""Every op and layer of the engine against central finite differences in float64.

The cases are the table of ``python -m tinylm gradcheck``; here each one is a test, and the
checker itself is tested: a wrong backward must fail.
"""
import subprocess
import sys

import numpy as np
import pytest

import tinylm as tl
from tinylm.gradcheck import CASES, format_table, gradcheck, select

pytestmark = pytest.mark.gradcheck


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_finite_differences(case, seed):
    result = case.run(seed=seed)
    assert result.passed, f"{case.name}: max abs err {result.max_abs_err:.2e}, " \
                          f"rel {result.max_rel_err:.2e}"


class _WrongSquare(tl.Function):
    """x^2 with a deliberately wrong derivative (x instead of 2x)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return g * self.x


def test_gradcheck_catches_a_wrong_backward():
    x = tl.Tensor(np.linspace(0.5, 2.0, 6), requires_grad=True)
    result = gradcheck(lambda: _WrongSquare.apply(x), [x])
    assert not result.passed
    assert result.max_rel_err == pytest.approx(0.5, rel=1e-6)   # x vs 2x: half of the scale


def test_gradcheck_catches_a_wrong_broadcast_reduction():
    class BadAdd(tl.Function):
        def forward(self, a, b):
            return a + b

        def backward(self, g):      # forgets to sum b's gradient over the broadcast rows
            return g, g[0]

    a = tl.Tensor(np.ones((3, 4)), requires_grad=True)
    b = tl.Tensor(np.zeros(4), requires_grad=True)
    assert not gradcheck(lambda: BadAdd.apply(a, b), [a, b]).passed


def test_gradcheck_refuses_float32():
    x = tl.Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(tl.DTypeError, match="float64"):
        gradcheck(lambda: x * x, [x])


def test_select_and_table():
    chosen = select(["layer_norm"])
    assert chosen and all("layer_norm" in c.name for c in chosen)
    assert select() == CASES
    table = format_table([c.run() for c in chosen])
    assert table.splitlines()[0].split()[:3] == ["op", "or", "layer"]
    assert table.count("pass") == len(chosen)


def test_cli_prints_table_and_exit_status():
    run = subprocess.run([sys.executable, "-m", "tinylm", "gradcheck", "softmax", "matmul"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "softmax[last axis]" in run.stdout and "matmul[batched]" in run.stdout
    assert "0 failed" in run.stdout
    missing = subprocess.run([sys.executable, "-m", "tinylm", "gradcheck", "no-such-op"],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no gradient check matches" in missing.stderr


def test_cli_exit_status_is_nonzero_when_a_check_fails(monkeypatch, capsys):
    import tinylm.gradcheck as gc
    from tinylm.__main__ import main

    def wrong_square(rng):
        x = tl.Tensor(rng.standard_normal(4), requires_grad=True)
        return (lambda: _WrongSquare.apply(x)), [x]

    monkeypatch.setattr(gc, "CASES", gc.CASES[:2] + [gc.GradCase("wrong square", wrong_square)])
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "wrong square" in out and "FAIL" in out and "2 passed, 1 failed" in out


def test_cli_second_order():
    run = subprocess.run([sys.executable, "-m", "tinylm", "gradcheck", "--second-order",
                          "softmax", "layer_norm"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "layer_norm[2 axes]" in run.stdout and "0 failed" in run.stdout


def test_gradcheck_works_on_non_contiguous_leaves():
    x = tl.Tensor(np.random.default_rng(0).random((4, 3)).T, requires_grad=True)
    assert gradcheck(lambda: x * x, [x]).passed
