# %% [markdown]
# # Chapter 01: a neuron, and the forward pass
#
# Every network in this book, up to the Transformer, is built from one small piece: the
# **neuron** (formula C1 of the catalogue). It takes a vector of inputs, weighs each one,
# adds a bias, and passes the total through a nonlinear **activation function**:
#
#     z = sum_i x_i w_i + b          a = f(z)
#
# Put many neurons side by side and you have a **layer**; put layers one after another and
# you have a network, which computes its output layer by layer: the **forward pass** (C2).
#
# This chapter does each step twice: by hand in plain NumPy, as the formula reads, and with
# tinylm (`tinylm.nn.Linear`, `tinylm.nn.Sequential`) given the very same weights. The two
# must agree to the last few bits. At the end we draw the common activation functions and
# their derivatives, the derivatives computed by tinylm's autograd (chapter 03 shows how).
#
# Run it as a script (`python chapters/01_neuron.py [--quick] [--figures DIR]`) or open it as
# a notebook (`jupytext --to notebook chapters/01_neuron.py`).

# %%
import math
import sys
from pathlib import Path

import numpy as np

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinylm as tl
from tinylm import functional as F
from tinylm import nn
from tinylm.chapter import Chapter, plt


# %% [markdown]
# ## The tools of this chapter, in plain NumPy
#
# These few functions are the formulas as a reader would write them. The tests
# (`tests/test_chapters.py`, marker `ch01`) import them and compare them with tinylm.

# %%
def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def relu(z):
    return np.maximum(z, 0.0)


def gelu(z):
    """GELU(z) = z * Phi(z), with Phi the standard normal CDF (written with erf)."""
    erf = np.vectorize(math.erf)
    return z * 0.5 * (1 + erf(z / math.sqrt(2)))


ACTIVATIONS = {"sigmoid": sigmoid, "tanh": np.tanh, "relu": relu, "gelu": gelu}


def neuron(x, w, b, f):
    """C1: one neuron. z = sum_i x_i w_i + b, a = f(z). Returns (z, a)."""
    z = np.sum(x * w) + b
    return z, f(z)


def layer(x, W, b, f):
    """A layer of neurons, one per row of W (shape (out, in), PyTorch's layout):
    z = x W^T + b, a = f(z). ``x`` may be one example (in,) or a batch (n, in)."""
    z = x @ W.T + b
    return z, f(z)


def forward_propagation(x, weights, biases, activations):
    """C2: a_0 = x, then for each layer l: z_l = a_{l-1} W_l^T + b_l, a_l = f_l(z_l).
    Returns the list of (z_l, a_l), one pair per layer."""
    outputs, a = [], x
    for W, b, f in zip(weights, biases, activations):
        z, a = layer(a, W, b, f)
        outputs.append((z, a))
    return outputs


def forward_propagation_as_written(x, weights, biases, f):
    """C2 exactly as the source document's pseudo-code reads: the loop takes the previous
    output (or the input) as z and applies f, and never reads ``weights`` or ``biases``."""
    outputs = []
    for layer_index in range(len(weights)):
        z = x if layer_index == 0 else outputs[-1]
        outputs.append(f(z))
    return outputs


# %%
ch = Chapter(1, "A neuron and the forward pass")

# %% [markdown]
# ## 1. C1: one neuron
#
# Three inputs, three weights, one bias. We write every intermediate number so that you can
# redo the sum on paper: the products `x_i w_i`, their sum, the bias, and the activation.
# The activation here is the sigmoid `s(z) = 1 / (1 + e^-z)`, which squashes any real number
# into (0, 1).

# %%
ch.section("1. C1  One neuron")
ch.formula("z = sum_i x_i w_i + b", "a = f(z),   here f = sigmoid(z) = 1 / (1 + e^-z)")
ch.code(neuron)

x = np.array([0.5, -1.0, 2.0])
w = np.array([0.4, 0.3, -0.2])
b = 0.1
ch.show("x", x)
ch.show("w", w)
ch.show("b", b)
ch.show("x * w (elementwise)", x * w)
ch.show("sum(x * w)", np.sum(x * w))
z, a = neuron(x, w, b, sigmoid)
ch.show("z = sum(x * w) + b", z)
ch.show("a = sigmoid(z)", a)
ch.check("z by hand: 0.2 - 0.3 - 0.4 + 0.1 = -0.4", (z, -0.4, 1e-15))
ch.check("sum(x * w) is the dot product x . w", (np.sum(x * w), x @ w, 1e-15))

# %% [markdown]
# The same neuron in tinylm. `nn.Linear(3, 1)` holds a weight matrix of shape
# (out_features, in_features) = (1, 3) and a bias of shape (1,), PyTorch's layout; we load
# our numbers into it with `load_state_dict` and compare. float64 everywhere, so the two must
# agree to rounding error (about 1e-16).

# %%
linear = nn.Linear(3, 1, dtype=np.float64)
linear.load_state_dict({"weight": w[None, :], "bias": np.array([b])})
z_layer = linear(tl.Tensor(x))
a_layer = F.sigmoid(z_layer)
ch.show("nn.Linear(3, 1)(x)", z_layer)
ch.show("F.sigmoid of it", a_layer)
ch.check("hand neuron z == nn.Linear", (np.array([z]), z_layer, 1e-15))
ch.check("hand neuron a == F.sigmoid(nn.Linear)", (np.array([a]), a_layer, 1e-15))

# %% [markdown]
# The textbook formula has a trap: for a very negative z, `e^-z` overflows (`e^1000` is
# `inf` in float64). Here `1/(1 + inf)` still happens to give the right limit 0, but the same
# overflow inside a gradient or a log gives `nan`. tinylm's `Sigmoid` is written so that no
# exponential it evaluates can overflow; its value is the same function.
# %%
ch.code(F.Sigmoid)
big = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
with np.errstate(over="ignore"):
    naive = sigmoid(big)
ch.show("z", big)
with np.errstate(over="ignore"):
    ch.show("e^-z", np.exp(-big))
ch.show("1/(1+e^-z) in NumPy", naive)
ch.show("F.sigmoid(z)", F.sigmoid(tl.Tensor(big)))
ch.check("F.sigmoid equals 1/(1+e^-z) (same function, no overflow)",
         (F.sigmoid(tl.Tensor(big)).numpy(), naive, 1e-15))

# %% [markdown]
# ## 2. Many neurons: a layer
#
# A layer is several neurons reading the same input, each with its own weights: stack their
# weight vectors as the rows of a matrix `W` (shape (out, in)) and the layer is one matrix
# product, `z = x W^T + b`. With a batch of examples as the rows of `x` (shape (n, in)), the
# same line computes every neuron for every example at once: `z` has shape (n, out).

# %%
ch.section("2. A layer: many neurons side by side")
ch.formula("z_j = sum_i x_i W_ji + b_j   for each neuron j", "z = x W^T + b   (all j at once)")
ch.code(layer)
W = np.array([[0.4, 0.3, -0.2],
              [-0.5, 0.1, 0.25]])
b_vec = np.array([0.1, -0.2])
one_by_one = np.array([neuron(x, W[j], b_vec[j], sigmoid)[1] for j in range(2)])
z_mat, a_mat = layer(x, W, b_vec, sigmoid)
ch.show("W", W)
ch.show("b", b_vec)
ch.show("z = x W^T + b", z_mat)
ch.show("a, neuron by neuron", one_by_one)
ch.show("a, as one matrix product", a_mat)
ch.check("a layer is its neurons computed one by one", (one_by_one, a_mat, 1e-15))
ch.check("second neuron by hand: -0.25 - 0.1 + 0.5 - 0.2 = -0.05", (z_mat[1], -0.05, 1e-15))

ch.note("tinylm's Linear is the same line of code (functional.linear):")
ch.code(F.linear)
linear2 = nn.Linear(3, 2, dtype=np.float64)
linear2.load_state_dict({"weight": W, "bias": b_vec})
batch = np.array([[0.5, -1.0, 2.0],
                  [1.0, 0.0, 0.0],
                  [0.0, 0.0, 0.0]])
z_batch, _ = layer(batch, W, b_vec, sigmoid)
ch.show("a batch of 3 examples", batch)
ch.show("z = x W^T + b", z_batch)
ch.check("hand layer == nn.Linear(3, 2) on a batch", (z_batch, linear2(batch), 1e-15))
ch.check("the all-zero example gives exactly the bias", (z_batch[2], b_vec, 0.0))

# %% [markdown]
# ## 3. C2: forward propagation, layer by layer
#
# A network feeds each layer's output `a_{l-1}` into the next layer:
#
#     a_0 = x,     z_l = a_{l-1} W_l^T + b_l,     a_l = f_l(z_l),     output = a_L
#
# **What the source document's pseudo-code does.** Its `forward_propagation(inputs, weights,
# biases, activation_function)` loop sets `z` to the input (first layer) or to the previous
# output, and appends `activation_function(z)`: it takes `weights` and `biases` as arguments
# but never uses them, so as written it computes `f(f(...f(x)))`, the same output whatever the
# weights. We run it as written (`forward_propagation_as_written`) beside the intended
# computation above, and show that its output does not move when the weights change. The
# intent, clear from section 3.1.1 of the same document, is the layer-by-layer product.
#
# Our network: 3 inputs -> 4 hidden units (tanh) -> 2 outputs (sigmoid), on a batch of 4
# examples, with seeded random weights.

# %%
ch.section("3. C2  Forward propagation through two layers")
ch.formula("a_0 = x", "z_l = a_{l-1} W_l^T + b_l,   a_l = f_l(z_l)   for l = 1, 2")
ch.code(forward_propagation)

rng = np.random.default_rng(0)
X = rng.uniform(-1, 1, size=(4, 3))
weights = [rng.normal(0, 0.8, size=(4, 3)), rng.normal(0, 0.8, size=(2, 4))]
biases = [rng.normal(0, 0.1, size=4), rng.normal(0, 0.1, size=2)]
acts = [np.tanh, sigmoid]
outputs = forward_propagation(X, weights, biases, acts)
ch.show("x (4 examples, 3 features)", X)
for l, ((z_l, a_l), W_l) in enumerate(zip(outputs, weights), start=1):
    ch.note(f"layer {l}: W_{l} has shape {W_l.shape}; z_{l} and a_{l} have shape {z_l.shape}")
    ch.show(f"  z_{l} of example 0", z_l[0])
    ch.show(f"  a_{l} of example 0", a_l[0])

model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.Tanh(),
                      nn.Linear(4, 2, dtype=np.float64), nn.Sigmoid())
model.load_state_dict({"0.weight": weights[0], "0.bias": biases[0],
                       "2.weight": weights[1], "2.bias": biases[1]})
print(model)
y_model = model(X)
ch.show("output of nn.Sequential", y_model)
ch.check("hand forward pass == nn.Sequential (same weights)", (outputs[-1][1], y_model, 1e-15))
hidden = F.tanh(model[0](X))
ch.check("hidden layer by hand == tanh(model[0](x))", (outputs[0][1], hidden, 1e-15))

# %% [markdown]
# The pseudo-code as written, next to it. Doubling every weight changes the real network's
# output, and leaves the as-written loop's output exactly where it was.

# %%
as_written = forward_propagation_as_written(X, weights, biases, sigmoid)
doubled = [2 * W_l for W_l in weights]
as_written_doubled = forward_propagation_as_written(X, doubled, biases, sigmoid)
real_doubled = forward_propagation(X, doubled, biases, acts)[-1][1]
ch.show("as written, example 0", as_written[-1][0])
ch.show("as written, weights doubled", as_written_doubled[-1][0])
ch.check("as written it is sigmoid(sigmoid(x)) (no weights anywhere)",
         (as_written[-1], sigmoid(sigmoid(X)), 1e-15))
ch.check("as written, doubling the weights changes nothing",
         (as_written[-1], as_written_doubled[-1], 0.0))
change = float(np.max(np.abs(real_doubled - outputs[-1][1])))
ch.check("the real forward pass does depend on the weights", change > 1e-3,
         f"max change {change:.3f}")

# %% [markdown]
# ## 4. Activation functions and their derivatives
#
# Without a nonlinear `f`, two layers collapse into one (`(x W_1^T) W_2^T = x (W_2 W_1)^T`):
# the activation is what lets depth add expressive power. Four common choices:
#
# | name | f(z) | f'(z) |
# |---|---|---|
# | sigmoid | 1 / (1 + e^-z) | s(z)(1 - s(z)) |
# | tanh | (e^z - e^-z) / (e^z + e^-z) | 1 - tanh(z)^2 |
# | relu | max(z, 0) | 1 if z > 0 else 0 |
# | gelu | z Phi(z) | Phi(z) + z phi(z) |
#
# (Phi and phi are the standard normal CDF and density; GPT-2 and BERT use GELU.)
#
# We let tinylm compute the derivatives: for `y = f(x)` applied elementwise, the gradient of
# `sum(y)` with respect to `x_k` is `f'(x_k)` (each `y_k` depends on `x_k` alone), so one
# `backward()` gives the whole derivative curve. We check it against the closed forms of the
# table. (At z = 0 relu has a kink; tinylm, like PyTorch, uses 0 there.)

# %%
ch.section("4. Activations and their derivatives (by autograd)")
n_points = 81 if ch.quick else 801
grid = np.linspace(-4, 4, n_points)
phi = np.exp(-grid ** 2 / 2) / math.sqrt(2 * math.pi)
Phi = 0.5 * (1 + np.vectorize(math.erf)(grid / math.sqrt(2)))
closed_form = {
    "sigmoid": sigmoid(grid) * (1 - sigmoid(grid)),
    "tanh": 1 - np.tanh(grid) ** 2,
    "relu": (grid > 0).astype(float),
    "gelu": Phi + grid * phi,
}
tinylm_fn = {"sigmoid": F.sigmoid, "tanh": F.tanh, "relu": F.relu, "gelu": F.gelu}

values, derivatives = {}, {}
for name, fn in tinylm_fn.items():
    xt = tl.Tensor(grid, requires_grad=True)   # float64: the grid is a float64 array
    yt = fn(xt)
    yt.sum().backward()                         # d sum(f(x)) / dx_k = f'(x_k)
    values[name], derivatives[name] = yt.numpy(), xt.grad

probe = [int(np.argmin(np.abs(grid - v))) for v in (-2, -1, 0, 1, 2)]
print(f"{'z':>8}" + "".join(f"{n:>10}{'d' + n[:4]:>9}" for n in tinylm_fn))
for k in probe:   # (+ 0.0 turns relu's -0.0 into 0.0 for printing)
    row = "".join(f"{values[n][k] + 0.0:10.4f}{derivatives[n][k] + 0.0:9.4f}" for n in tinylm_fn)
    print(f"{grid[k] + 0.0:8.2f}" + row)
for name in tinylm_fn:
    ch.check(f"{name}: tinylm value == NumPy formula",
             (values[name], ACTIVATIONS[name](grid), 1e-12))
    ch.check(f"{name}: autograd derivative == closed form",
             (derivatives[name], closed_form[name], 1e-12))

fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(11, 4))
for name in tinylm_fn:
    ax_f.plot(grid, values[name], label=name)
    ax_d.plot(grid, derivatives[name], label=name)
ax_f.set_title("activation f(z)")
ax_d.set_title("derivative f'(z), computed by tinylm autograd")
for ax in (ax_f, ax_d):
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.set_xlabel("z")
    ax.legend()
ch.savefig(fig, "01_activations.png")

# %% [markdown]
# Things to notice in the figure: sigmoid's derivative is at most 1/4 (at z = 0) and tanh's at
# most 1, and both vanish for large |z|: a signal passed back through many saturated sigmoid
# layers shrinks at every layer (the vanishing gradient that motivates the LSTM, chapter 09).
# relu's derivative is exactly 1 for every positive input, and GELU is a smooth relu that
# lets a little negative signal through.
#
# Next, chapter 02: how wrong is the output (a loss), and how the chain rule turns that into a
# change of every weight.

# %%
ch.finish()
