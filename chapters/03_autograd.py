# %% [markdown]
# # Chapter 03: the autograd engine, and how we know its gradients are right
#
# Chapter 02 derived `dL/dw` of a small model by hand and let tinylm confirm it. Nobody
# derives the gradient of a Transformer by hand: a framework records the computation as a
# **graph** while it runs forward, then walks that graph backwards applying the chain rule
# (C8) at every node. This is reverse-mode automatic differentiation, and all of it lives in
# `tinylm/tensor.py`, short enough to read in one sitting.
#
# This chapter shows
#
# 1. how an operation records itself (`Function.apply`), drawn as a graph with each node's
#    value and gradient (as text, and as a Graphviz `.dot` file);
# 2. how `backward()` orders the nodes (a topological sort, without recursion) and adds up
#    the gradient of a tensor used twice;
# 3. that gradients **accumulate** across `backward()` calls, as in PyTorch, and
#    `zero_grad()` resets them;
# 4. that a chain of 10,000 operations works (a recursive sort would crash);
# 5. `no_grad()`;
# 6. gradient checking: central finite differences, why their error is O(eps^2), why in
#    float64, the random projection for non-scalar outputs; then `tinylm.gradcheck` over a
#    few ops, and a deliberately wrong backward that it catches;
# 7. a Hessian-vector product, by finite differences of gradients and by double backward.

# %%
import sys
import time
from pathlib import Path

import numpy as np

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinylm as tl
from tinylm import functional as F
from tinylm.chapter import Chapter, plt
from tinylm.gradcheck import CASES, format_table, gradcheck
from tinylm.tensor import _topological_order


# %% [markdown]
# ## The tools of this chapter
#
# Graph drawing (text and DOT), a recursive topological sort to compare with tinylm's
# iterative one, a deliberately wrong `Function`, and the gradient / Hessian-vector helpers.
# The tests (`tests/test_chapters.py`, marker `ch03`) use them.

# %%
def graph_nodes(root):
    """Every tensor that leads to ``root`` (constants included), found without recursion."""
    seen, nodes, stack = set(), [], [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        if node.creator is not None:
            stack.extend(node.creator.inputs)
    return nodes


def _fmt(array):
    if array is None:
        return "-"
    a = np.asarray(array)
    return f"{a.item():.4f}" if a.size == 1 else np.array2string(a, precision=4)


def describe(node, names):
    """One line: name = op(inputs), its value and its gradient."""
    name = names.get(id(node), "?")
    if node.creator is None:
        what = "leaf" if node.requires_grad else "constant"
    else:
        inputs = ", ".join(names.get(id(t), "?") for t in node.creator.inputs)
        what = f"{type(node.creator).__name__}({inputs})"
    return f"{name} = {what}   value {_fmt(node.data)}   grad {_fmt(node.grad)}"


def draw_text(root, names):
    """The graph as an indented tree, output at the top, inputs below their op."""
    lines, stack = [], [(root, "", "")]
    while stack:
        node, first, rest = stack.pop()
        lines.append(first + describe(node, names))
        inputs = list(node.creator.inputs) if node.creator is not None else []
        for i, child in reversed(list(enumerate(inputs))):
            last = i == len(inputs) - 1
            stack.append((child, rest + ("`-- " if last else "|-- "),
                          rest + ("    " if last else "|   ")))
    return "\n".join(lines)


def to_dot(root, names):
    """The graph in Graphviz DOT: boxes for tensors (value, grad), ellipses for ops.
    Render with ``dot -Tpng graph.dot -o graph.png``."""
    nodes = graph_nodes(root)
    key = {id(t): f"t{i}" for i, t in enumerate(nodes)}
    out = ["digraph autograd {", "  rankdir=LR;", "  node [fontname=Helvetica];"]
    for i, node in enumerate(nodes):
        label = f"{names.get(id(node), '?')}\\nvalue {_fmt(node.data)}\\ngrad {_fmt(node.grad)}"
        out.append(f'  {key[id(node)]} [shape=box, label="{label}"];')
        if node.creator is not None:
            op = f"f{i}"
            out.append(f'  {op} [shape=ellipse, label="{type(node.creator).__name__}"];')
            out.append(f"  {op} -> {key[id(node)]};")
            out.extend(f"  {key[id(x)]} -> {op};" for x in node.creator.inputs)
    return "\n".join(out + ["}"]) + "\n"


def recursive_order(node, visited=None, order=None):
    """A topological sort written recursively (as in micrograd), for comparison only:
    its recursion depth is the depth of the graph."""
    if visited is None:
        visited, order = set(), []
    if id(node) not in visited:
        visited.add(id(node))
        if node.creator is not None:
            for x in node.creator.inputs:
                recursive_order(x, visited, order)
        order.append(node)
    return order


class BuggySigmoid(tl.Function):
    """The sigmoid with a deliberately WRONG backward: it forgets the factor (1 - s)."""

    def forward(self, x):
        self.y = 1 / (1 + np.exp(-x))
        return self.y

    def backward(self, g):
        return g * self.y            # BUG: the derivative is s (1 - s), not s


def gradient_of(loss_fn, w):
    """dL/dw at the NumPy point ``w``, by tinylm's autograd."""
    wt = tl.Tensor(np.array(w, dtype=np.float64), requires_grad=True)
    loss_fn(wt).backward()
    return wt.grad


def hvp_finite_difference(loss_fn, w, v, eps=1e-5):
    """Hessian-vector product H v ~ (g(w + eps v) - g(w - eps v)) / (2 eps), g = dL/dw."""
    return (gradient_of(loss_fn, w + eps * v) - gradient_of(loss_fn, w - eps * v)) / (2 * eps)


def hvp_double_backward(loss_fn, w, v):
    """Hessian-vector product H v = d/dw (dL/dw . v), exactly, by differentiating twice."""
    wt = tl.Tensor(np.array(w, dtype=np.float64), requires_grad=True)
    g = tl.grad(loss_fn(wt), wt, create_graph=True)    # g is a Tensor with its own graph
    return tl.grad((g * v).sum(), wt).numpy()


# %%
ch = Chapter(3, "The autograd engine, and gradient checking")

# %% [markdown]
# ## 1. Recording the graph: `Function.apply`
#
# Every operation is a `Function` subclass with `forward` (arrays in, array out) and
# `backward` (the gradient of the output in, the gradients of the inputs out). Calling
# `Op.apply(inputs)` runs `forward`, and, if some input needs a gradient, stores on the
# output tensor *which* Function made it (`out.creator`) and stores the inputs on that
# Function (`fn.inputs`). Those two links are the whole graph.

# %%
ch.section("1. Building the graph: Function.apply records creator and inputs")
ch.code(tl.Function.apply)
ch.code(tl.tensor.Mul)

x = tl.Tensor(np.array(2.0))                       # data: no gradient wanted
w = tl.Tensor(np.array(-0.5), requires_grad=True)  # parameters
b = tl.Tensor(np.array(0.3), requires_grad=True)
m = x * w
u = m + b
L = u.tanh()
names = {id(x): "x", id(w): "w", id(b): "b", id(m): "m", id(u): "u", id(L): "L"}
ch.formula("L = tanh(x * w + b),   x = 2, w = -0.5, b = 0.3",
           "m = x * w = -1,   u = m + b = -0.7,   L = tanh(-0.7)")
ch.show("L.creator", type(L.creator).__name__)
ch.show("L.creator.inputs[0] is u", L.creator.inputs[0] is u)
ch.show("u.creator, its inputs", f"{type(u.creator).__name__}, "
        f"({names[id(u.creator.inputs[0])]}, {names[id(u.creator.inputs[1])]})")
ch.show("x.creator (a leaf)", repr(x.creator))
ch.check("L's creator is Tanh reading u", type(L.creator).__name__ == "Tanh"
         and L.creator.inputs[0] is u)
ch.check("u = Add(m, b), m = Mul(x, w)", u.creator.inputs[0] is m and u.creator.inputs[1] is b
         and m.creator.inputs == (x, w))

# %% [markdown]
# Now `L.backward()`. By default only leaves keep their `.grad` (the intermediate gradients
# are passed along and dropped); `retain_grad()` asks an intermediate tensor to keep its own,
# for inspection. By the chain rule, with `dL/du = 1 - tanh(u)^2`:
#
#     dL/db = dL/du * 1,    dL/dm = dL/du * 1,    dL/dw = dL/dm * x
#
# `x` is a constant (it did not ask for a gradient), so the engine never computes `dL/dx`.

# %%
for t in (m, u, L):
    t.retain_grad()
L.backward()
print(draw_text(L, names))
dot_path = ch.figure("03_graph.dot")
dot_path.write_text(to_dot(L, names))
print(f"DOT file written: {dot_path}   (render: dot -Tpng {dot_path} -o graph.png)")
dL_du = 1 - np.tanh(-0.7) ** 2
ch.show("dL/du = 1 - tanh(-0.7)^2", dL_du)
ch.check("L = tanh(-0.7)", (L, np.tanh(-0.7), 1e-15))
ch.check("dL/du by hand == u.grad", (u.grad, dL_du, 1e-15))
ch.check("dL/db = dL/du", (b.grad, dL_du, 1e-15))
ch.check("dL/dw = dL/du * x", (w.grad, dL_du * 2.0, 1e-15))
ch.check("the constant x gets no gradient", x.grad is None)

# %% [markdown]
# ## 2. Walking it back: the topological order
#
# `backward()` must visit a node only after *every* node that uses it has passed its
# gradient down: otherwise a tensor used twice would send on half its gradient. A
# **topological order** (inputs before outputs) read backwards guarantees that. tinylm sorts
# with an explicit stack instead of recursion, then walks the order in reverse: each node
# hands its gradient to its creator's `backward`, and the results are **added** into its
# inputs' gradients: that addition is the sum over paths of the chain rule (C8).

# %%
ch.section("2. Walking the graph back: the topological order")
ch.code(_topological_order)
ch.code(tl.Tensor.backward)
order = _topological_order(L)
ch.show("order (inputs before outputs)", " -> ".join(names[id(t)] for t in order))
position = {id(t): i for i, t in enumerate(order)}
ch.check("every node comes after its inputs",
         all(position[id(i)] < position[id(t)] for t in order if t.creator is not None
             for i in t.creator.inputs if i.requires_grad))
ch.check("constants are left out of the walk", id(x) not in position)

ch.note("A tensor used twice: y = a * a + a. Its gradient is the sum of three paths, "
        "2a + 1 (two through the product, one direct).")
a = tl.Tensor(np.array(3.0), requires_grad=True)
y = a * a + a
y.backward()
ch.show("dy/da at a = 3", a.grad)
ch.check("gradients of a reused tensor add up: 2a + 1 = 7", (a.grad, 7.0, 0.0))

# %% [markdown]
# ## 3. Gradients accumulate, and `zero_grad()` resets them
#
# Every `backward()` *adds* into `.grad`; it never overwrites. This is deliberate (PyTorch
# does the same): it lets you sum gradients over several small batches before one update
# (gradient accumulation, chapter 15). It is also the most common beginner's bug: forget to
# reset, and each step uses the sum of all past gradients. Reset with `zero_grad()` on a
# tensor, a `Module` or an optimiser.
#
# (tinylm keeps the graph after `backward()`, so calling it twice on the same loss also adds
# twice; PyTorch frees the graph and asks for `retain_graph=True`. Both add.)

# %%
ch.section("3. Gradients accumulate across backward() calls")
ch.formula("L(w) = sum(w * w),   dL/dw = 2 w")
wv = tl.Tensor(np.array([1.0, -2.0]), requires_grad=True)
(wv * wv).sum().backward()
first = wv.grad.copy()
ch.show("after one backward()", first)
(wv * wv).sum().backward()
ch.show("after a second backward()", wv.grad)
ch.check("two backward() calls give twice the gradient", (wv.grad, 2 * first, 0.0))
wv.zero_grad()
ch.show("after zero_grad()", repr(wv.grad))
(wv * wv).sum().backward()
ch.check("after zero_grad(), one backward() gives the gradient again", (wv.grad, first, 0.0))

ch.note("Forgetting the reset in a training loop, minimising (w - 3)^2 from w = 0 with lr 0.1:")
trajectories = {}
for reset in (True, False):
    wt = tl.Tensor(np.array(0.0), requires_grad=True)
    path = []
    for _ in range(15):
        ((wt - 3.0) ** 2).backward()
        wt.data -= 0.1 * wt.grad
        if reset:
            wt.zero_grad()
        path.append(wt.item())
    trajectories[reset] = path
    print(f"  {'with zero_grad   ' if reset else 'without zero_grad'}: w = "
          + " ".join(f"{v:5.2f}" for v in path[:10]) + " ...")
ch.check("with zero_grad it converges toward 3; without, it overshoots and swings",
         abs(trajectories[True][-1] - 3) < 0.2 and max(trajectories[False]) > 4,
         f"w_15 = {trajectories[True][-1]:.3f}; max w without reset "
         f"{max(trajectories[False]):.2f}")

# %% [markdown]
# ## 4. A chain of 10,000 operations, without recursion
#
# An RNN unrolled over 1,000 time steps is a graph thousands of nodes deep. Python stops a
# recursion after about 1,000 nested calls, so a recursive topological sort (the natural
# first version, as in micrograd) fails on such graphs. tinylm's sort uses its own stack.
# Our chain alternates `y <- y * c` and `y <- y + 0.001`, 5,000 times each, so
# `dy/dx = c^5000` exactly.

# %%
ch.section("4. A 10,000-op chain works without recursion")
c = 0.9999
x0 = tl.Tensor(np.array(1.0), requires_grad=True)
yc = x0
for _ in range(5000):
    yc = yc * c
    yc = yc + 0.001
start = time.perf_counter()
yc.backward()
elapsed = time.perf_counter() - start
ch.show("Python's recursion limit", sys.getrecursionlimit())
ch.show("ops in the chain", 10000)
ch.show("backward() time (s)", round(elapsed, 4))
ch.show("dy/dx", x0.grad)
ch.show("c^5000", c ** 5000)
ch.check("10,000-op chain: dy/dx == c^5000", (x0.grad, c ** 5000, 1e-12))
try:
    recursive_order(yc)
    recursion_failed = False
except RecursionError:
    recursion_failed = True
ch.check("the recursive sort raises RecursionError on the same chain", recursion_failed)
small = [names[id(t)] for t in recursive_order(L)]
ch.check("(the recursive sort is fine on a small graph)", small[-1] == "L", " -> ".join(small))

# %% [markdown]
# ## 5. `no_grad()`
#
# When no gradient is needed (evaluating a model, generating text, updating weights),
# recording the graph only costs memory: every op keeps its inputs alive for `backward`.
# Inside `with tl.no_grad():` ops compute their values and record nothing.

# %%
ch.section("5. no_grad(): compute without recording")
with tl.no_grad():
    inside = tl.is_grad_enabled()
    y_eval = (w * 3.0 + b).tanh()
ch.show("is_grad_enabled() inside / after", f"{inside} / {tl.is_grad_enabled()}")
ch.show("y.requires_grad, y.creator", f"{y_eval.requires_grad}, {y_eval.creator}")
ch.check("no graph is recorded under no_grad()", not y_eval.requires_grad
         and y_eval.creator is None and not inside and tl.is_grad_enabled())
try:
    y_eval.backward()
    raised = ""
except tl.GradError as err:
    raised = str(err)
ch.check("backward() on it raises a clear GradError", bool(raised), raised[:60] + "...")
ch.check("the value is the same as with recording", (y_eval, (w * 3.0 + b).tanh(), 0.0))

# %% [markdown]
# ## 6. Gradient checking
#
# How do we know that every `backward` in tinylm is right? We compare it with a derivative
# computed from the forward pass alone, by **central finite differences**:
#
#     dL/dx_j  ~  (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)
#
# By Taylor's theorem `L(x +- eps) = L +- eps L' + eps^2/2 L'' +- eps^3/6 L''' + ...`; in the
# difference the even terms cancel, leaving `L' + eps^2/6 L''' + ...`: the error is
# **O(eps^2)**. The one-sided `(L(x + eps) - L(x)) / eps` keeps the `eps/2 L''` term: O(eps).
#
# But eps cannot shrink forever: `L` is computed with a relative rounding error of about the
# machine epsilon `u` (1.1e-16 in float64, 6e-8 in float32), and the division by `eps`
# magnifies it to about `u / eps`. The total error `eps^2 + u / eps` is smallest near
# `eps ~ u^(1/3)`: about 1e-5 in float64 (error ~1e-11), but 4e-3 in float32 (error ~1e-5,
# too coarse to tell a small bug from noise). That is why gradient checks run in float64.
# We measure both effects on `tanh'(0.5)`.

# %%
ch.section("6a. Finite differences: error O(eps^2), and why float64")
ch.formula("forward:  (f(x + eps) - f(x)) / eps              error ~ eps/2 |f''|",
           "central:  (f(x + eps) - f(x - eps)) / (2 eps)    error ~ eps^2/6 |f'''|",
           "rounding: about u |f| / eps   (u = 1.1e-16 float64, 6.0e-8 float32)")
exponents = np.arange(1, 12.5, 1.0) if ch.quick else np.arange(1, 12.25, 0.25)
eps_grid = 10.0 ** -exponents
exact = 1 - np.tanh(0.5) ** 2
errors = {}
for dtype in (np.float64, np.float32):
    x_d = dtype(0.5)
    forward, central = [], []
    for eps in eps_grid:
        h = dtype(eps)
        f_plus, f_0, f_minus = np.tanh(x_d + h), np.tanh(x_d), np.tanh(x_d - h)
        forward.append(abs(float((f_plus - f_0) / h) - exact))
        central.append(abs(float((f_plus - f_minus) / (2 * h)) - exact))
    errors[dtype.__name__] = (np.array(forward), np.array(central))
print(f"{'eps':>8} {'fwd f64':>10} {'central f64':>12} {'fwd f32':>10} {'central f32':>12}")
for k, eps in enumerate(eps_grid):
    if exponents[k] == int(exponents[k]):
        print(f"{eps:8.0e} " + " ".join(f"{errors[d][i][k]:{10 if i == 0 else 12}.2e}"
                                        for d in ("float64", "float32") for i in (0, 1)))
fit = (eps_grid >= 1e-3) & (eps_grid <= 1e-1)
slope_fwd = np.polyfit(np.log10(eps_grid[fit]), np.log10(errors["float64"][0][fit]), 1)[0]
slope_cen = np.polyfit(np.log10(eps_grid[fit]), np.log10(errors["float64"][1][fit]), 1)[0]
best64, best32 = errors["float64"][1].min(), errors["float32"][1].min()
ch.show("log-log slope, forward difference (eps 1e-3..1e-1)", slope_fwd)
ch.show("log-log slope, central difference (eps 1e-3..1e-1)", slope_cen)
ch.show("best central error, float64", best64)
ch.show("best central error, float32", best32)
ch.check("forward difference error is O(eps) (slope 1)", abs(slope_fwd - 1) < 0.1,
         f"slope {slope_fwd:.3f}")
ch.check("central difference error is O(eps^2) (slope 2)", abs(slope_cen - 2) < 0.1,
         f"slope {slope_cen:.3f}")
ch.check("float64 reaches 1e-10, float32 cannot go below 1e-6",
         best64 < 1e-10 and best32 > 1e-6, f"{best64:.1e} vs {best32:.1e}")
err_at_gradcheck_eps = errors["float32"][1][np.argmin(np.abs(eps_grid - 1e-6))]
ch.check("at gradcheck's eps = 1e-6, float32 is off by more than 1%",
         err_at_gradcheck_eps > 0.01 * exact, f"error {err_at_gradcheck_eps:.1e}")

fig, ax = plt.subplots(figsize=(7, 4.5))
for dname, style in (("float64", "-"), ("float32", "--")):
    ax.loglog(eps_grid, errors[dname][0], "C0" + style, label=f"forward, {dname}")
    ax.loglog(eps_grid, errors[dname][1], "C3" + style, label=f"central, {dname}")
ax.set_xlabel("eps")
ax.set_ylabel("|finite difference - exact derivative|")
ax.set_title("finite differences of tanh at 0.5: truncation vs rounding")
ax.invert_xaxis()
ax.legend()
ch.savefig(fig, "03_finite_differences.png")
ch.note("(In float32, an eps below about 6e-8 vanishes: 0.5 + eps rounds back to 0.5, the "
        "difference is exactly 0 and the 'derivative' 0: the flat right end of the dashed "
        "curves.)")

# %% [markdown]
# **Non-scalar outputs.** Finite differences need one number to perturb. For an op with
# output `y` (any shape) we check the scalar `L = sum(y * R)` with a fixed random `R`. Its
# gradient is `J^T R`, the vector-Jacobian product, which is exactly what `y.backward(R)`
# computes. A wrong entry anywhere in the Jacobian `J` changes `J^T R` unless `R` happens to
# be orthogonal to the error, which has probability zero for a random `R`: one scalar check
# covers the whole Jacobian. Here we also build `J` column by column from finite differences
# and compare `J^T R` explicitly.

# %%
ch.section("6b. Non-scalar outputs: the random projection sum(y * R)")
rng = np.random.default_rng(3)
xs = tl.Tensor(rng.standard_normal(4), requires_grad=True)
R = rng.standard_normal(4)
ys = F.softmax(xs)
ys.backward(R)                                   # computes J^T R
J = np.zeros((4, 4))
for j in range(4):
    step = np.zeros(4)
    step[j] = 1e-6
    J[:, j] = (F.softmax(xs.data + step).numpy() - F.softmax(xs.data - step).numpy()) / 2e-6
ch.show("softmax Jacobian by finite differences", J)
ch.show("J^T R", J.T @ R)
ch.show("y.backward(R) -> x.grad", xs.grad)
ch.check("backward(R) is the vector-Jacobian product J^T R", (xs.grad, J.T @ R, 1e-9))
s = F.softmax(xs.data).numpy()
ch.check("softmax Jacobian == diag(s) - s s^T", (J, np.diag(s) - np.outer(s, s), 1e-9))

# %% [markdown]
# **`tinylm.gradcheck`** does all of this: float64 leaves, `eps = 1e-6`, the random
# projection, and a pass/fail with `max |analytic - numeric| <= atol + rtol * max |numeric|`.
# `tinylm.gradcheck.CASES` holds a check for every op and layer
# (`python -m tinylm gradcheck` prints the full table); here are a few of them, and one more
# row: `BuggySigmoid`, whose backward forgets the factor `(1 - s)`. It must FAIL.

# %%
ch.section("6c. tinylm.gradcheck: a few ops, and a deliberately wrong backward")
ch.code(BuggySigmoid)
wanted = ["matmul", "tanh", "sigmoid", "softmax[last axis]", "cross_entropy",
          "binary_cross_entropy", "layer_norm", "nn.Linear", "nn.Sequential MLP"]
if ch.quick:
    wanted = wanted[:5]
results = [case.run(seed=0) for case in CASES if case.name in wanted]
xb = tl.Tensor(np.linspace(-2, 2, 7), requires_grad=True)
buggy = gradcheck(lambda: BuggySigmoid.apply(xb), [xb], name="BuggySigmoid (deliberate bug)")
print(format_table(results + [buggy]))
ch.check(f"all {len(results)} real ops pass", all(r.passed for r in results),
         f"worst rel err {max(r.max_rel_err for r in results):.1e}")
ch.check("the wrong backward FAILS the gradient check", not buggy.passed,
         f"rel err {buggy.max_rel_err:.2f}")
fixed = gradcheck(lambda: F.sigmoid(xb), [xb], name="sigmoid")
ch.check("the same input with tinylm's sigmoid passes", fixed.passed,
         f"rel err {fixed.max_rel_err:.1e}")

# %% [markdown]
# ## 7. A Hessian-vector product from gradients
#
# Second derivatives matter too (curvature sets the largest stable learning rate, chapter 02
# section 3; second-order optimisers use them). The Hessian `H` of a loss with n parameters
# has n^2 entries, too many to form for a real model, but a product `H v` costs only two
# gradients:
#
#     H v  ~  (g(w + eps v) - g(w - eps v)) / (2 eps),     g = dL/dw  (by autograd)
#
# (the central difference of the gradient along `v`; error O(eps^2) again). We check it on a
# quadratic `L = 1/2 w^T A w + c^T w`, whose Hessian is exactly `A` (its gradient `A w + c` is
# linear, so the difference is exact up to rounding), and on the logistic loss of chapter 02,
# whose Hessian is `X^T diag(y^ (1 - y^)) X / n`.
#
# The exact way is a **double backward**: `tinylm.grad(L, w, create_graph=True)` returns the
# gradient `g` as a Tensor built from recorded ops (each op's derivative written again with
# Tensor operations, in `tinylm/higher_order.py`), so it can be differentiated once more:
#
#     H v = d/dw (g(w) . v)          (Pearlmutter's trick: one more backward pass, no eps)
#
# We compute both and check them against each other and against the exact Hessian.

# %%
ch.section("7. Hessian-vector products: finite differences and double backward")
rng = np.random.default_rng(7)
n = 5
M = rng.standard_normal((n, n))
A = M @ M.T + np.eye(n)                 # symmetric positive definite
cvec = rng.standard_normal(n)


def quadratic(wt):
    return 0.5 * (wt @ (A @ wt)) + cvec @ wt


w_at = rng.standard_normal(n)
v = rng.standard_normal(n)
ch.formula("L(w) = 1/2 w^T A w + c^T w,   g(w) = A w + c,   H = A")
ch.check("autograd gradient of the quadratic == A w + c",
         (gradient_of(quadratic, w_at), A @ w_at + cvec, 1e-12))
hv = hvp_finite_difference(quadratic, w_at, v)
ch.show("H v by finite differences", hv)
ch.show("A v (exact)", A @ v)
ch.check("quadratic: finite-difference H v == A v", (hv, A @ v, 1e-8))
H_cols = np.column_stack([hvp_finite_difference(quadratic, w_at, e) for e in np.eye(n)])
ch.check("the whole Hessian, one H e_j at a time, == A", (H_cols, A, 1e-8))
ch.code(hvp_double_backward)
ch.check("quadratic: double-backward H v == A v", (hvp_double_backward(quadratic, w_at, v),
                                                  A @ v, 1e-12))

Xl = rng.random((40, n))
yl = (rng.random(40) < 0.5).astype(float)


def logistic(wt):
    return F.binary_cross_entropy(F.sigmoid(tl.Tensor(Xl) @ wt), yl)


p_at = 1 / (1 + np.exp(-(Xl @ w_at)))
H_exact = Xl.T @ (Xl * (p_at * (1 - p_at))[:, None]) / len(yl)
hv_log = hvp_finite_difference(logistic, w_at, v)
rel = np.max(np.abs(hv_log - H_exact @ v)) / np.max(np.abs(H_exact @ v))
ch.show("logistic loss: H v by finite differences", hv_log)
ch.show("X^T diag(y^(1-y^)) X v / n (exact)", H_exact @ v)
ch.check("logistic loss: finite-difference H v == exact H v (rel err < 1e-7)", rel < 1e-7,
         f"rel err {rel:.1e}")
hv_exact_route = hvp_double_backward(logistic, w_at, v)
ch.show("logistic loss: H v by double backward", hv_exact_route)
ch.check("logistic loss: double-backward H v == exact H v", (hv_exact_route, H_exact @ v, 1e-12))

# %% [markdown]
# From here on, every new op or layer in tinylm arrives with its row in the gradient-check
# table (`tests/test_gradcheck.py`), and every chapter trusts `backward()` because of it.

# %%
ch.finish()
