# %% [markdown]
# # Chapter 02: losses, the chain rule, and learning
#
# Chapter 01 computed an output from an input. To *learn*, a network needs three more things:
#
# 1. a **loss**: one number saying how wrong the outputs are: the mean squared error (C3) for
#    numbers, the cross-entropy (C4) for probabilities;
# 2. the **gradient** of the loss with respect to every weight, obtained by the **chain rule**
#    (C8): backpropagation;
# 3. an **update** that moves each weight a little against its gradient,
#    `w <- w - alpha dL/dw` (C8).
#
# Then the source document's worked example (C12): a one-layer classifier, `y^ = s(w.x + b)`
# on 10 features in [0, 1] with a binary target. We derive `dL/dw` by hand, check it three
# ways (the hand formula, tinylm's autograd, central finite differences), and train it,
# following the three training steps of A3: load the data, initialise the parameters,
# optimise by backpropagation.
#
# **An erratum.** The document writes the loss of C12 as `L = -y log y^`: only the term for
# y = 1. The binary cross-entropy is `L = -[y log y^ + (1 - y) log(1 - y^)]`. tinylm does not
# quietly fix the formula: we implement both and let the numbers show the difference. The
# one-sided loss has gradient `-y (1 - y^) x`, which is zero for every example with y = 0,
# so nothing ever pushes a prediction down: trained on it, the classifier ends up predicting 1
# for everything, while its loss goes to zero.

# %%
import sys
from pathlib import Path

import numpy as np

try:
    import tinylm  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinylm as tl
from tinylm import functional as F
from tinylm import optim
from tinylm.chapter import Chapter, plt


# %% [markdown]
# ## The tools of this chapter
#
# The formulas in plain NumPy (as a reader writes them), the two C12 losses in tinylm ops,
# the closed-form gradients we are about to derive, a finite-difference gradient, the data
# set and the training loop. The tests (`tests/test_chapters.py`, marker `ch02`) use them.

# %%
def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def mean_squared_error(y_true, y_pred):
    """C3: MSE = 1/n sum_i (y_i - y^_i)^2."""
    return np.sum((y_true - y_pred) ** 2) / len(y_true)


def cross_entropy(y_true, y_pred):
    """C4: CE = -sum_i y_i log y^_i, y a (one-hot or soft) distribution, y^ predicted."""
    return -np.sum(y_true * np.log(y_pred))


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def one_sided_bce(p, y):
    """C12 as the document writes it: L = -y log y^ (mean over examples). tinylm ops."""
    y = tl.Tensor(np.asarray(y, dtype=p.dtype))
    return -(y * F.log(p)).mean()


def standard_bce(p, y):
    """C12, standard: L = -[y log y^ + (1 - y) log(1 - y^)] (mean over examples)."""
    return F.binary_cross_entropy(p, np.asarray(y, dtype=p.dtype))


def bce_numpy(p, y):
    """The standard binary cross-entropy in plain NumPy (mean over examples)."""
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def grad_standard(X, y, w, b):
    """Closed form of the standard loss: dL/dw = mean_i (y^_i - y_i) x_i, dL/db = mean(y^ - y)."""
    r = sigmoid(X @ w + b) - y
    return X.T @ r / len(y), np.mean(r)


def grad_one_sided(X, y, w, b):
    """Closed form of the one-sided loss: dL/dw = mean_i -y_i (1 - y^_i) x_i, dL/db likewise."""
    r = -y * (1 - sigmoid(X @ w + b))
    return X.T @ r / len(y), np.mean(r)


def numerical_gradient(f, w, eps=1e-6):
    """Central differences: df/dw_j ~ (f(w + eps e_j) - f(w - eps e_j)) / (2 eps)."""
    g = np.zeros_like(w)
    for j in range(w.size):
        step = np.zeros_like(w)
        step[j] = eps
        g[j] = (f(w + step) - f(w - step)) / (2 * eps)
    return g


def make_dataset(n, rng, n_features=10, noise=0.2):
    """C12's setting: n examples of 10 features uniform in [0, 1], a binary target from a
    hidden linear rule (plus a little noise), the threshold at the median: balanced classes."""
    X = rng.random((n, n_features))
    w_true = rng.normal(0.0, 2.0, n_features)
    score = X @ w_true
    score = score - np.median(score) + noise * rng.normal(size=n)
    return X, (score > 0).astype(np.float64)


def train_logistic(X, y, loss_fn, steps, lr, X_test=None, y_test=None, seed=0):
    """A3: initialise w ~ N(0, 0.01^2) (seeded), b = 0, then full-batch gradient descent on
    ``loss_fn(p, y)``; each step: forward, backward, w <- w - lr dL/dw (C8), reset the
    gradients. Returns the final (w, b) and the history (loss, accuracy, share predicted 1)
    of the predictions each step started from."""
    w0 = np.random.default_rng(seed).normal(0.0, 0.01, X.shape[1])
    w = tl.Tensor(w0, requires_grad=True)
    b = tl.Tensor(np.zeros(()), requires_grad=True)
    history = {"loss": [], "accuracy": [], "predicted_one": [], "w_start": w0.copy()}
    for _ in range(steps):
        p = F.sigmoid(tl.Tensor(X) @ w + b)       # forward: y^ = s(Xw + b)
        loss = loss_fn(p, y)
        loss.backward()                            # backward: fills w.grad and b.grad
        for param in (w, b):                       # update, C8: w <- w - alpha dL/dw
            param.data -= lr * param.grad
            param.grad = None                      # gradients accumulate: reset them
        predicted = p.numpy() > 0.5
        history["loss"].append(loss.item())
        history["accuracy"].append(float(np.mean(predicted == y)))
        history["predicted_one"].append(float(np.mean(predicted)))
    if X_test is not None:
        predicted = sigmoid(X_test @ w.numpy() + b.item()) > 0.5
        history["test_accuracy"] = float(np.mean(predicted == y_test))
    return w.numpy(), b.item(), history


# %%
ch = Chapter(2, "Losses, the chain rule, and learning")

# %% [markdown]
# ## 1. C3: mean squared error
#
# For real-valued targets: the average of the squared differences. Its gradient with respect
# to each prediction is `2 (y^_i - y_i) / n`: a prediction too high gets a positive gradient
# (so the update lowers it), and the push grows with the error.

# %%
ch.section("1. C3  Mean squared error")
ch.formula("MSE = 1/n sum_i (y_i - y^_i)^2", "dMSE/dy^_i = 2 (y^_i - y_i) / n")
ch.code(mean_squared_error)
y_true = np.array([1.0, 2.0, 3.0, 4.0])
y_pred = np.array([1.5, 1.5, 3.0, 5.0])
ch.show("y", y_true)
ch.show("y^", y_pred)
ch.show("(y - y^)^2", (y_true - y_pred) ** 2)
mse_hand = mean_squared_error(y_true, y_pred)
pred = tl.Tensor(y_pred, requires_grad=True)
mse_tl = F.mse_loss(pred, y_true)
mse_tl.backward()
ch.show("MSE by hand  (0.25 + 0.25 + 0 + 1) / 4", mse_hand)
ch.show("F.mse_loss", mse_tl)
ch.show("dMSE/dy^ by autograd", pred.grad)
ch.check("MSE: hand formula == F.mse_loss", (mse_hand, mse_tl, 1e-15))
ch.check("MSE = 0.375 on paper", (mse_hand, 0.375, 1e-15))
ch.check("dMSE/dy^ == 2 (y^ - y) / n", (pred.grad, 2 * (y_pred - y_true) / 4, 1e-15))

# %% [markdown]
# ## 2. C4: cross-entropy
#
# For a predicted probability distribution `y^` over classes and a true distribution `y`
# (usually one-hot: 1 for the right class), `CE = -sum_i y_i log y^_i`. With a one-hot `y` it
# is just `-log` of the probability given to the right class: 0 when that probability is 1,
# large when it is near 0.
#
# tinylm's `F.cross_entropy` takes *logits* `z` (scores, any real numbers) and integer class
# labels, applies the softmax `y^ = e^z / sum e^z` itself and averages over the examples of a
# batch. Computing `log softmax` in one piece is more accurate than `log(softmax(z))`, and its
# gradient is simply `(softmax(z) - y) / batch`.

# %%
ch.section("2. C4  Cross-entropy")
ch.formula("CE = -sum_i y_i log y^_i,   y^ = softmax(z)",
           "dCE/dz = y^ - y   (per example; divided by the batch size for the mean)")
ch.code(cross_entropy)
z = np.array([[2.0, 1.0, 0.1],
              [0.5, 2.5, 0.0],
              [1.0, 1.0, 1.0]])
labels = np.array([0, 1, 2])
onehot = np.eye(3)[labels]
probs = softmax(z)
ch.show("logits z", z)
ch.show("y^ = softmax(z)", probs)
ch.show("one-hot y", onehot)
per_example = [cross_entropy(onehot[i], probs[i]) for i in range(3)]
ch.show("CE per example", np.array(per_example))
ch.show("-log y^[right class]", -np.log(probs[np.arange(3), labels]))
zt = tl.Tensor(z, requires_grad=True)
ce_tl = F.cross_entropy(zt, labels)
ce_tl.backward()
ch.show("mean CE by hand", np.mean(per_example))
ch.show("F.cross_entropy(z, labels)", ce_tl)
ch.check("CE: hand formula == F.cross_entropy", (np.mean(per_example), ce_tl, 1e-14))
ch.check("the uniform prediction costs log 3", (per_example[2], np.log(3), 1e-15))
ch.check("dCE/dz == (softmax(z) - y) / batch", (zt.grad, (probs - onehot) / 3, 1e-15))

# %% [markdown]
# The document's formula also covers *soft* targets, e.g. label smoothing (used to train
# Transformers): the target puts `1 - e` on the right class and spreads `e` evenly over all
# classes. And with two classes, the distributions `(y, 1 - y)` and `(y^, 1 - y^)` give the
# binary cross-entropy `-[y log y^ + (1 - y) log(1 - y^)]`: keep this in mind for section 4.

# %%
eps_ls = 0.1
soft = (1 - eps_ls) * onehot + eps_ls / 3
ce_soft_hand = np.mean([cross_entropy(soft[i], probs[i]) for i in range(3)])
ce_soft_tl = F.cross_entropy(z, labels, label_smoothing=eps_ls)
ch.show("soft targets (label smoothing 0.1)", soft)
ch.check("soft-target CE: hand == F.cross_entropy(label_smoothing=0.1)",
         (ce_soft_hand, ce_soft_tl, 1e-14))
p_bin, y_bin = 0.8, 0.0
two_class = cross_entropy(np.array([y_bin, 1 - y_bin]), np.array([p_bin, 1 - p_bin]))
ch.show("two-class CE with y = 0, y^ = 0.8", two_class)
ch.check("two-class CE == binary CE == -log(1 - 0.8)",
         (two_class, F.binary_cross_entropy(np.array([p_bin]), np.array([y_bin])), 1e-12))

# %% [markdown]
# ## 3. C8: the chain rule, and the update
#
# When a weight `w` influences the loss through several intermediate values `z_i`, its
# gradient is the sum over the paths:
#
#     dL/dw = sum_i dL/dz_i * dz_i/dw
#
# Example: one weight shared by three predictions `z_i = w x_i`, with loss
# `L = 1/3 sum_i (z_i - t_i)^2`. Then `dL/dz_i = 2 (z_i - t_i) / 3` and `dz_i/dw = x_i`.
# We print the three path terms and their sum, and compare with tinylm's autograd, which
# performs exactly this sum (chapter 03 shows where).
#
# Then the update `w <- w - alpha dL/dw`. On this loss (a parabola in w) a small `alpha`
# creeps to the minimum `w* = sum x t / sum x^2`; an `alpha` above `2 / L''` overshoots more
# each step and diverges (here `L'' = 2 sum x^2 / 3`).

# %%
ch.section("3. C8  The chain rule and the gradient step")
ch.formula("dL/dw = sum_i dL/dz_i * dz_i/dw", "w <- w - alpha * dL/dw")
xs = np.array([1.0, 2.0, 3.0])
ts = np.array([2.5, 3.5, 6.5])
w0 = 0.5
zs = w0 * xs
paths = (2 * (zs - ts) / 3) * xs
ch.show("z_i = w x_i", zs)
ch.show("dL/dz_i = 2 (z_i - t_i) / 3", 2 * (zs - ts) / 3)
ch.show("dz_i/dw = x_i", xs)
ch.show("path terms dL/dz_i * dz_i/dw", paths)
ch.show("dL/dw = their sum", paths.sum())
w_t = tl.Tensor(np.array(w0), requires_grad=True)
loss = F.mse_loss(w_t * xs, ts)
loss.backward()
ch.show("dL/dw by tinylm autograd", w_t.grad)
ch.check("chain rule by hand == autograd", (paths.sum(), w_t.grad, 1e-14))


def loss_c8(w):
    return np.mean((w * xs - ts) ** 2)


def grad_c8(w):
    return np.sum(2 * (w * xs - ts) / 3 * xs)


w_star = np.sum(xs * ts) / np.sum(xs ** 2)
curvature = 2 * np.sum(xs ** 2) / 3
ch.show("w* = sum x t / sum x^2", w_star)
ch.show("2 / L'' (largest stable alpha)", 2 / curvature)
print(f"{'alpha':>8} {'L(w_0)':>10} {'L(w_1)':>10} {'L(w_20)':>12} {'w_20':>10}")
final = {}
for alpha in (0.02, 0.1, 0.2, 0.25):
    w = w0
    trace = [loss_c8(w)]
    for _ in range(20):
        w = w - alpha * grad_c8(w)          # the update, C8
        trace.append(loss_c8(w))
    final[alpha] = w
    print(f"{alpha:8.2f} {trace[0]:10.4f} {trace[1]:10.4f} {trace[20]:12.4g} {w:10.4f}")
ch.check("one small step lowers the loss", loss_c8(w0 - 0.02 * grad_c8(w0)) < loss_c8(w0))
ch.check("alpha = 0.1 reaches w* in 20 steps", (final[0.1], w_star, 1e-6))
ch.check("alpha = 0.25 > 2/L'' diverges", abs(final[0.25] - w_star) > abs(w0 - w_star))

# %% [markdown]
# ## 4. C12: the worked example, derived by hand
#
# One layer, 10 input features in [0, 1], a binary target y in {0, 1}:
#
#     z = w . x + b,      y^ = s(z) = 1 / (1 + e^-z)
#
# The chain rule splits `dL/dw` into three factors, `dL/dy^ * dy^/dz * dz/dw`:
#
# | factor | value |
# |---|---|
# | `dz/dw` | `x` (and `dz/db = 1`) |
# | `dy^/dz` | `s(z)(1 - s(z)) = y^ (1 - y^)` |
# | `dL/dy^`, one-sided `L = -y log y^` | `-y / y^` |
# | `dL/dy^`, standard `L = -[y log y^ + (1-y) log(1-y^)]` | `(y^ - y) / (y^ (1 - y^))` |
#
# (the standard one: `-y/y^ + (1-y)/(1-y^)` over the common denominator `y^ (1 - y^)`.)
# Multiplying, the `y^ (1 - y^)` cancels in the standard loss and leaves the famous closed form
#
#     standard:   dL/dw = (y^ - y) x,        dL/db = y^ - y
#     one-sided:  dL/dw = -y (1 - y^) x,     dL/db = -y (1 - y^)
#
# The standard gradient is "prediction minus target, times input": it pushes y^ up when
# y = 1 and down when y = 0. The one-sided gradient vanishes whenever y = 0.

# %%
ch.section("4. C12  One layer, 10 features: dL/dw by the chain rule")
ch.formula("z = w . x + b,   y^ = s(z)",
           "dL/dw = dL/dy^ * dy^/dz * dz/dw",
           "standard  L = -[y log y^ + (1-y) log(1-y^)]:  dL/dw = (y^ - y) x",
           "one-sided L = -y log y^ (as written):         dL/dw = -y (1 - y^) x")
rng = np.random.default_rng(12)
x1 = rng.random(10)                      # one example: 10 features in [0, 1]
w1 = rng.normal(0, 0.5, 10)
b1 = 0.1
z1 = x1 @ w1 + b1
p1 = sigmoid(z1)
ch.show("x", x1)
ch.show("w", w1)
ch.show("z = w . x + b", z1)
ch.show("y^ = s(z)", p1)
ch.show("dy^/dz = y^ (1 - y^)", p1 * (1 - p1))

zt = tl.Tensor(np.array(z1), requires_grad=True)
F.sigmoid(zt).backward()
ch.check("dy^/dz by autograd == y^ (1 - y^)", (zt.grad, p1 * (1 - p1), 1e-15))

for y1 in (1.0, 0.0):
    ch.note(f"--- target y = {y1:g} ---")
    table = {}
    for name, loss_fn, closed in (("standard", standard_bce, grad_standard),
                                  ("one-sided", one_sided_bce, grad_one_sided)):
        dL_dp = (p1 - y1) / (p1 * (1 - p1)) if name == "standard" else -y1 / p1
        hand_w, hand_b = closed(x1[None, :], np.array([y1]), w1, b1)
        wt = tl.Tensor(w1.copy(), requires_grad=True)
        bt = tl.Tensor(np.array(b1), requires_grad=True)
        loss_fn(F.sigmoid(tl.Tensor(x1) @ wt + bt).reshape(1), [y1]).backward()

        def loss_of_w(w, name=name, y1=y1):   # the loss in plain NumPy, for finite differences
            p = sigmoid(x1 @ w + b1)
            return -y1 * np.log(p) - (1 - y1) * np.log(1 - p) * (name == "standard")

        numeric = numerical_gradient(loss_of_w, w1)
        table[name] = (hand_w, wt.grad, numeric)
        print(f"{name:>9}: dL/dy^ = {dL_dp + 0.0:9.6f},  dL/dz = dL/dy^ * dy^/dz = "
              f"{dL_dp * p1 * (1 - p1) + 0.0:9.6f}")
        ch.check(f"y={y1:g}, {name}: hand closed form == autograd (dL/dw)",
                 (hand_w, wt.grad, 1e-14))
        ch.check(f"y={y1:g}, {name}: hand closed form == autograd (dL/db)",
                 (hand_b, bt.grad, 1e-14))
        ch.check(f"y={y1:g}, {name}: hand closed form == central differences",
                 (hand_w, numeric, 1e-8))
        if name == "one-sided" and y1 == 0:
            ch.check("one-sided loss, y = 0: the gradient is exactly zero",
                     bool(np.all(wt.grad == 0) and bt.grad == 0))
    print(f"dL/dw_j, y = {y1:g}:    {'standard loss':^29}  | {'one-sided loss':^29}")
    head = f"{'hand':>9} {'autograd':>9} {'fin.diff':>9}"
    print(f"{'j':>2} {'x_j':>7}  {head}  | {head}")
    for j in range(10):
        cells = "  | ".join(" ".join(f"{v[j] + 0.0:9.5f}" for v in table[k]) for k in table)
        print(f"{j:2d} {x1[j]:7.4f}  {cells}")

# %% [markdown]
# **The same gradient, three ways in tinylm.** The standard loss can be composed from tinylm
# ops exactly as written, or called as `F.binary_cross_entropy` (a fused op with the
# derivative written by hand), or computed from the logit `z` with
# `F.binary_cross_entropy_with_logits`, which never forms `log(y^)` and so stays finite
# even when `y^` rounds to 0 or 1. This last one is what real models use.

# %%
Xb = rng.random((6, 10))
yb = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
grads = {}
for route in ("composed ops", "F.binary_cross_entropy", "F.binary_cross_entropy_with_logits"):
    wt = tl.Tensor(w1.copy(), requires_grad=True)
    logits = tl.Tensor(Xb) @ wt + b1
    p = F.sigmoid(logits)
    if route == "composed ops":
        loss = -(yb * F.log(p) + (1 - yb) * F.log(1 - p)).mean()
    elif route == "F.binary_cross_entropy":
        loss = F.binary_cross_entropy(p, yb)
    else:
        loss = F.binary_cross_entropy_with_logits(logits, yb)
    loss.backward()
    grads[route] = wt.grad
    print(f"{route:>36}: loss {loss.item():.10f}, "
          f"dL/dw[:3] {np.array2string(wt.grad[:3], precision=6)}")
hand_w, _ = grad_standard(Xb, yb, w1, b1)
for route, g in grads.items():
    ch.check(f"batch of 6: X^T (y^ - y) / n == {route}", (hand_w, g, 1e-14))

# %% [markdown]
# **How the two losses differ, in numbers.** For y = 1 both are `-log y^`. For y = 0 the
# standard loss is `-log(1 - y^)`, large when the model wrongly says 1; the one-sided loss is
# 0 whatever the model says.

# %%
print(f"{'y':>4} {'y^':>6} {'standard':>10} {'one-sided':>10}")
for yv in (1.0, 0.0):
    for pv in (0.1, 0.5, 0.9, 0.99):
        std = standard_bce(tl.Tensor(np.array([pv])), [yv]).item()
        one = one_sided_bce(tl.Tensor(np.array([pv])), [yv]).item()
        print(f"{yv:4.0f} {pv:6.2f} {std:10.4f} {one + 0.0:10.4f}")
ch.check("y = 0, y^ = 0.99: the one-sided loss is 0, the standard one -log(0.01)",
         one == 0 and abs(std + np.log(0.01)) < 1e-12, f"{one + 0.0:.4f} vs {std:.4f}")

# %% [markdown]
# ## 5. A3: training, with each loss
#
# The three steps of A3:
#
# 1. **load the data**: a seeded synthetic set in C12's shape (10 features in [0, 1], a binary
#    target from a hidden linear rule; half the examples are positive); a held-out part to
#    measure accuracy on examples the model never trained on (splits are chapter 04's topic);
# 2. **initialise the parameters**: small seeded random weights, `b = 0` (with a single layer
#    zeros would work too; deeper nets need random weights to break the symmetry between
#    the units of a layer);
# 3. **optimise by backpropagation**: full-batch gradient descent,
#    `w <- w - alpha dL/dw`, written out by hand in `train_logistic` above.
#
# We train twice from the same start, once per loss, and draw the curves side by side.

# %%
ch.section("5. A3  Training a logistic classifier with each loss")
n_train, n_test = (300, 100) if ch.quick else (1000, 300)
steps = 500 if ch.quick else 2000
lr = 1.0
X_all, y_all = make_dataset(n_train + n_test, np.random.default_rng(0))
X_tr, y_tr, X_te, y_te = X_all[:n_train], y_all[:n_train], X_all[n_train:], y_all[n_train:]
ch.show("training examples", X_tr.shape[0])
ch.show("fraction of positives", y_tr.mean())
ch.show("learning rate, steps", f"{lr}, {steps}")

runs = {}
for name, loss_fn in (("standard BCE", standard_bce), ("one-sided -y log y^", one_sided_bce)):
    w_fit, b_fit, hist = train_logistic(X_tr, y_tr, loss_fn, steps, lr, X_te, y_te)
    runs[name] = (w_fit, b_fit, hist)
    print(f"{name:>22}: final loss {hist['loss'][-1]:.4f}, train accuracy "
          f"{hist['accuracy'][-1]:.3f}, test accuracy {hist['test_accuracy']:.3f}, "
          f"predicts 1 for {hist['predicted_one'][-1]:.1%} of the examples")
std_hist, one_hist = runs["standard BCE"][2], runs["one-sided -y log y^"][2]
w_one = runs["one-sided -y log y^"][0]
ch.show("one-sided: learned w (every entry grew)", w_one)
ch.check("standard loss: high accuracy (train >= 0.9)", std_hist["accuracy"][-1] >= 0.9,
         f"{std_hist['accuracy'][-1]:.3f}")
ch.check("standard loss: high accuracy on held-out data (>= 0.85)",
         std_hist["test_accuracy"] >= 0.85, f"{std_hist['test_accuracy']:.3f}")
ch.check("one-sided loss: predicts 1 for (nearly) every example (>= 99%)",
         one_hist["predicted_one"][-1] >= 0.99, f"{one_hist['predicted_one'][-1]:.1%}")
ch.check("one-sided loss: accuracy is just the share of positives",
         abs(one_hist["accuracy"][-1] - y_tr.mean()) < 0.02,
         f"{one_hist['accuracy'][-1]:.3f} vs {y_tr.mean():.3f}")
ch.check("yet the one-sided loss looks better (smaller) than the standard one",
         one_hist["loss"][-1] < std_hist["loss"][-1],
         f"{one_hist['loss'][-1]:.4f} < {std_hist['loss'][-1]:.4f}")
ch.check("one-sided: x >= 0 and -y (1-y^) x <= 0, so every weight only grows",
         bool(np.all(w_one > one_hist["w_start"])))

w_fit, b_fit, _ = runs["standard BCE"]
g_hand, _ = grad_standard(X_tr, y_tr, w_fit, b_fit)
wt = tl.Tensor(w_fit.copy(), requires_grad=True)
standard_bce(F.sigmoid(tl.Tensor(X_tr) @ wt + b_fit), y_tr).backward()
ch.check("at the trained w: X^T (y^ - y) / n == autograd", (g_hand, wt.grad, 1e-14))

fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
for (name, (_, _, hist)), color in zip(runs.items(), ("C0", "C3")):
    step_numbers = np.arange(1, len(hist["loss"]) + 1)
    ax_loss.plot(step_numbers, hist["loss"], color=color, label=name)
    ax_acc.plot(step_numbers, hist["accuracy"], color=color, label=f"{name}: accuracy")
    ax_acc.plot(step_numbers, hist["predicted_one"], color=color, ls="--",
                label=f"{name}: share predicted 1")
ax_loss.set_yscale("log")
ax_loss.set_title("training loss")
ax_acc.set_title("training accuracy, and share of examples predicted 1")
ax_acc.set_ylim(0, 1.05)
for ax in (ax_loss, ax_acc):
    ax.set_xscale("log")
    ax.set_xlabel("gradient step (log scale)")
    ax.legend(fontsize=8)
ch.savefig(fig, "02_training_curves.png")

# %% [markdown]
# The left panel is the trap: the one-sided loss falls faster and lower than the real one.
# A loss that ignores the negative examples can be driven to zero by predicting "1" for
# everything, and that is exactly what gradient descent finds. Always check a loss against
# the behaviour you want (here: accuracy), not only against itself.
#
# ## 6. From now on: `tinylm.optim`
#
# The hand-written update `w <- w - lr * grad` is what `tinylm.optim.SGD` does (with
# PyTorch's interface: `zero_grad()`, `step()`). Later chapters use it and its cousins
# (Adam, ...). One step of each, from the same point, must land on the same weights.

# %%
ch.section("6. The same step with tinylm.optim.SGD")
ch.code("opt = optim.SGD([w], lr=lr);  opt.zero_grad();  loss.backward();  opt.step()")
w_hand = tl.Tensor(np.zeros(10), requires_grad=True)
w_sgd = tl.Tensor(np.zeros(10), requires_grad=True)
standard_bce(F.sigmoid(tl.Tensor(X_tr) @ w_hand), y_tr).backward()
w_hand.data -= lr * w_hand.grad
opt = optim.SGD([w_sgd], lr=lr)
opt.zero_grad()
standard_bce(F.sigmoid(tl.Tensor(X_tr) @ w_sgd), y_tr).backward()
opt.step()
ch.show("after one step", w_sgd)
ch.check("optim.SGD step == w - lr * dL/dw", (w_hand, w_sgd, 0.0))

# %% [markdown]
# Chapter 03 opens the box: how tinylm records the computation and runs the chain rule
# backwards through it, and how we *know* that every gradient it gives is right.

# %%
ch.finish()
