"""Differential privacy for training (C17): DP-SGD and its accountant, and federated averaging.

Document 002 (9.5) names the tools: differential privacy "by adding noise and sampling", a
"privacy budget", and federated learning. Here they are as formulas that run:

* **DP-SGD** (Abadi et al. 2016). Each step draws a Poisson sample of the data (every example
  independently with probability q), computes one gradient *per example*, clips each to norm
  at most C, adds Gaussian noise of standard deviation sigma*C to their sum, and divides by
  the expected batch size q*N::

      g_i <- g_i * min(1, C / ||g_i||)                       (per example; ||.|| over all
      g~  = (sum_i g_i + N(0, sigma^2 C^2 I)) / (q N)         parameters together)

  Adding or removing one example changes the clipped sum by at most C (its sensitivity), and
  the noise hides a change of that size. ``sigma`` is the *noise multiplier*.

* **The accountant**: Renyi differential privacy (RDP, Mironov 2017) of the sampled Gaussian
  mechanism (Mironov, Talwar & Zhang 2019, section 3.3). For an integer order alpha >= 2::

      A_alpha = sum_{k=0..alpha} C(alpha, k) (1-q)^(alpha-k) q^k exp((k^2 - k) / (2 sigma^2))
      rdp(alpha) = log(A_alpha) / (alpha - 1)                   (one step)

  which is exactly the Renyi divergence D_alpha((1-q) N(0, sigma^2) + q N(1, sigma^2) ||
  N(0, sigma^2)); Mironov, Talwar & Zhang show that this direction is the larger of the
  two, so it bounds both adding and removing an example. (Dividing by C and rotating turn
  a sum of gradients clipped to C, with noise sigma C, into this one-dimensional case.)
  With q = 1 (no sampling) it is the Gaussian mechanism's ``alpha / (2 sigma^2)``.
  T steps compose by adding: ``T * rdp(alpha)``. The guarantee
  becomes (epsilon, delta)-DP by minimising over the orders, either with the classic
  conversion (Mironov 2017, Proposition 3)::

      epsilon = min_alpha  T rdp(alpha) + log(1/delta) / (alpha - 1)

  or the tighter one of Canonne, Kamath & Steinke (2020, Proposition 12; the one Opacus and
  TF Privacy use today)::

      epsilon = min_alpha  T rdp(alpha) + log((alpha-1)/alpha) - (log delta + log alpha)/(alpha-1)

  Assumptions, all of them needed: neighbouring datasets differ by adding or removing one
  example; batches are Poisson samples (not a shuffled pass over the data: that is a
  different mechanism, which this bound does not cover); every per-example gradient is
  clipped to C; the noise is fresh each step; only integer orders are used (the bound holds
  at each order, so fewer orders can only make epsilon larger, never wrong).

* **Federated averaging** (McMahan et al. 2017): each client trains on its own data and sends
  only its weights; the server averages them, weighted by the clients' example counts::

      w <- sum_k (n_k / n) w_k

Every function takes and returns NumPy arrays; randomness comes from an explicit
``numpy.random.Generator``.
"""
import math
import numbers

import numpy as np

from .errors import ShapeError, TinyLMError

__all__ = ["DEFAULT_ORDERS", "poisson_sample", "per_example_linear_grads",
           "clip_per_example", "dp_noisy_gradient", "rdp_gaussian", "rdp_sampled_gaussian",
           "rdp_to_epsilon", "dp_sgd_epsilon", "noise_multiplier_for_epsilon",
           "max_steps_for_epsilon", "federated_average"]

# integer Renyi orders searched by the accountant (small ones matter for large epsilon,
# large ones for small epsilon)
DEFAULT_ORDERS = tuple(range(2, 65)) + (80, 96, 128, 192, 256)


# ======================================================================================
# Argument checks
# ======================================================================================

def _number(who, key, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a float, checked to be a real number in the given range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise TinyLMError(f"{who}: {key} must be a number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise TinyLMError(f"{who}: {key} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise TinyLMError(f"{who}: {key} must be {'<' if high_open else '<='} {high}, "
                          f"got {value}")
    return value


def _count(who, key, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise TinyLMError(f"{who}: {key} must be an integer >= 0, got {value!r}")
    return int(value)


def _orders(who, orders):
    orders = np.asarray(orders)
    if orders.ndim != 1 or orders.size == 0 or not np.issubdtype(orders.dtype, np.integer) \
            or orders.min() < 2:
        raise TinyLMError(f"{who}: orders must be a non-empty list of integers >= 2 (this "
                          f"accountant uses integer Renyi orders only), got {orders.tolist()!r}")
    return orders.astype(np.int64)


def _as_list(who, grads):
    """One array or a list of arrays, all with the same leading (example) dimension."""
    single = isinstance(grads, np.ndarray)
    grads = [grads] if single else list(grads)
    if not grads or not all(isinstance(g, np.ndarray) and g.ndim >= 1 for g in grads):
        raise TinyLMError(f"{who}: expected an array (B, ...) or a list of them (one per "
                          f"parameter, B examples first), got {[type(g).__name__ for g in grads]}")
    sizes = {g.shape[0] for g in grads}
    if len(sizes) != 1:
        raise ShapeError(f"{who}: every per-example gradient must have the same number of "
                         f"examples B first, got leading sizes {[g.shape[0] for g in grads]}")
    return grads, single


# ======================================================================================
# DP-SGD: sampling, per-example gradients, clipping, noise
# ======================================================================================

def poisson_sample(n, rate, rng):
    """The indices of a Poisson sample: each of ``n`` examples kept independently with
    probability ``rate`` (so the batch size varies, with mean ``rate * n``). This is the
    sampling the accountant assumes."""
    n = _count("poisson_sample", "n", n)
    rate = _number("poisson_sample", "rate", rate, 0.0, 1.0)
    if not isinstance(rng, np.random.Generator):
        raise TinyLMError(f"poisson_sample: rng must be a numpy.random.Generator, got "
                          f"{type(rng).__name__}")
    return np.flatnonzero(rng.random(n) < rate)


def per_example_linear_grads(x, delta):
    """Per-example gradients of ``y = x W^T + b`` without a loop (the batch trick).

    The batch gradient is ``dW = sum_i delta_i x_i^T``: a sum of one outer product per
    example. Keeping the terms apart gives each example's own gradient::

        dW_i = delta_i x_i^T   (B, out, in),        db_i = delta_i   (B, out)

    ``x`` (B, in) are the layer's inputs, ``delta`` (B, out) = dL_i/dy_i the gradients of
    each example's loss with respect to the layer's outputs.
    """
    x, delta = np.asarray(x), np.asarray(delta)
    if x.ndim != 2 or delta.ndim != 2 or x.shape[0] != delta.shape[0]:
        raise ShapeError(f"per_example_linear_grads: expected x (B, in) and delta (B, out) "
                         f"with the same B, got {x.shape} and {delta.shape}")
    return np.einsum("bo,bi->boi", delta, x), delta.copy()


def clip_per_example(grads, max_norm):
    """Clip each example's gradient to norm at most ``max_norm`` (DP-SGD's first step).

    ``grads``: an array (B, ...) or a list of them, one per parameter, example i in row i.
    The norm of example i is taken over all parameters together,
    ``||g_i|| = sqrt(sum_p ||g_{p,i}||^2)``, and every part is scaled by the same
    ``min(1, max_norm / ||g_i||)``, so the direction of g_i is kept.

    Returns ``(clipped, norms)``: the clipped gradients (same structure as ``grads``, new
    arrays) and the norms before clipping, (B,).
    """
    max_norm = _number("clip_per_example", "max_norm", max_norm, 0.0, low_open=True)
    grads, single = _as_list("clip_per_example", grads)
    B = grads[0].shape[0]
    sq = sum(np.sum(g.astype(np.float64) ** 2, axis=tuple(range(1, g.ndim))) for g in grads)
    norms = np.sqrt(sq)
    with np.errstate(divide="ignore"):
        factor = np.minimum(1.0, max_norm / norms)   # a zero gradient: max_norm/0 = inf -> 1
    clipped = [g * factor.reshape((B,) + (1,) * (g.ndim - 1)).astype(g.dtype) for g in grads]
    return (clipped[0] if single else clipped), norms


def dp_noisy_gradient(grads, max_norm, noise_multiplier, expected_batch_size, rng):
    """One DP-SGD gradient: clip each example, sum, add Gaussian noise, divide.

        g~ = (sum_i clip(g_i, C) + N(0, (noise_multiplier * C)^2 I)) / expected_batch_size

    ``expected_batch_size`` is q N for a Poisson sample of rate q from N examples; dividing
    by the *actual* batch size would let the batch size itself reveal who is in it. An empty
    batch (B = 0) gives pure noise, as it must. Returns arrays shaped like one example's
    gradient (the leading B dropped), in the same structure as ``grads``.
    """
    who = "dp_noisy_gradient"
    noise_multiplier = _number(who, "noise_multiplier", noise_multiplier, 0.0)
    expected_batch_size = _number(who, "expected_batch_size", expected_batch_size, 0.0,
                                  low_open=True)
    if not isinstance(rng, np.random.Generator):
        raise TinyLMError(f"{who}: rng must be a numpy.random.Generator, got "
                          f"{type(rng).__name__}")
    clipped, _ = clip_per_example(grads, max_norm)
    single = isinstance(clipped, np.ndarray)
    out = []
    for g in ([clipped] if single else clipped):
        noise = rng.normal(0.0, noise_multiplier * max_norm, size=g.shape[1:])
        out.append(((g.sum(axis=0) + noise) / expected_batch_size).astype(g.dtype))
    return out[0] if single else out


# ======================================================================================
# The accountant: RDP of the (sampled) Gaussian mechanism
# ======================================================================================

def rdp_gaussian(noise_multiplier, orders=DEFAULT_ORDERS):
    """RDP of the Gaussian mechanism with sensitivity 1 and noise N(0, sigma^2), at each
    order: ``D_alpha(N(1, s^2) || N(0, s^2)) = alpha / (2 sigma^2)`` (the closed form)."""
    sigma = _number("rdp_gaussian", "noise_multiplier", noise_multiplier, 0.0)
    orders = _orders("rdp_gaussian", orders)
    if sigma == 0:
        return np.full(orders.shape, np.inf)
    return orders / (2.0 * sigma ** 2)


def _log_a(q, sigma, alpha):
    """log A_alpha = log sum_k C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2-k)/(2 sigma^2)),
    summed in log space (the terms span hundreds of orders of magnitude)."""
    k = np.arange(alpha + 1, dtype=np.float64)
    log_binom = (math.lgamma(alpha + 1) - np.array([math.lgamma(i + 1) for i in k])
                 - np.array([math.lgamma(alpha - i + 1) for i in k]))
    terms = log_binom + k * math.log(q) + (alpha - k) * math.log1p(-q) \
        + (k * k - k) / (2.0 * sigma ** 2)
    return float(np.logaddexp.reduce(terms))


def rdp_sampled_gaussian(sample_rate, noise_multiplier, orders=DEFAULT_ORDERS):
    """RDP of ONE step of the sampled Gaussian mechanism (Poisson rate q, noise multiplier
    sigma, sensitivity 1) at each integer order: ``log(A_alpha) / (alpha - 1)`` (see the
    module docstring). q = 0 gives 0 (nothing is read), q = 1 the Gaussian mechanism."""
    who = "rdp_sampled_gaussian"
    q = _number(who, "sample_rate", sample_rate, 0.0, 1.0)
    sigma = _number(who, "noise_multiplier", noise_multiplier, 0.0)
    orders = _orders(who, orders)
    if q == 0:
        return np.zeros(orders.shape)
    if sigma == 0:
        return np.full(orders.shape, np.inf)
    if q == 1:
        return rdp_gaussian(sigma, orders)
    return np.array([_log_a(q, sigma, int(a)) / (a - 1) for a in orders])


def rdp_to_epsilon(orders, rdp, delta, method="classic"):
    """The (epsilon, delta)-DP guarantee implied by RDP values ``rdp`` at ``orders``:
    ``(epsilon, best order)``, the minimum over the orders of

        classic:   rdp + log(1/delta) / (alpha - 1)                         (Mironov 2017)
        improved:  rdp + log((alpha-1)/alpha) - (log delta + log alpha) / (alpha - 1)
                                                          (Canonne, Kamath & Steinke 2020)

    The improved conversion is never larger than the classic one at the same order."""
    who = "rdp_to_epsilon"
    orders = _orders(who, orders)
    rdp = np.asarray(rdp, dtype=np.float64)
    if rdp.shape != orders.shape:
        got = rdp.shape[0] if rdp.ndim else rdp.shape
        raise ShapeError(f"{who}: expected one RDP value per order, got {got} values for "
                         f"{orders.size} orders")
    if np.any(np.isnan(rdp)) or np.any(rdp < 0):
        raise TinyLMError(f"{who}: RDP values must be >= 0, got min {np.nanmin(rdp)}"
                          + (" and NaN" if np.any(np.isnan(rdp)) else ""))
    delta = _number(who, "delta", delta, 0.0, 1.0, low_open=True, high_open=True)
    a = orders.astype(np.float64)
    if method == "classic":
        eps = rdp + math.log(1.0 / delta) / (a - 1)
    elif method == "improved":
        eps = rdp + np.log((a - 1) / a) - (math.log(delta) + np.log(a)) / (a - 1)
    else:
        raise TinyLMError(f"{who}: method must be 'classic' or 'improved', got {method!r}")
    best = int(np.argmin(eps))
    return max(float(eps[best]), 0.0), int(orders[best])


def dp_sgd_epsilon(sample_rate, noise_multiplier, steps, delta, orders=DEFAULT_ORDERS,
                   method="classic"):
    """epsilon of DP-SGD after ``steps`` steps (Poisson rate q, noise multiplier sigma) at
    ``delta``: RDP composes by adding, ``steps * rdp(alpha)``, then ``rdp_to_epsilon``.
    Returns ``(epsilon, best order)``."""
    steps = _count("dp_sgd_epsilon", "steps", steps)
    rdp = rdp_sampled_gaussian(sample_rate, noise_multiplier, orders)
    return rdp_to_epsilon(orders, steps * rdp, delta, method)


def max_steps_for_epsilon(sample_rate, noise_multiplier, epsilon, delta,
                          orders=DEFAULT_ORDERS, method="classic"):
    """The privacy budget as a number of steps: the largest T with
    ``dp_sgd_epsilon(q, sigma, T, delta) <= epsilon``. Since the RDP of T steps is
    T * rdp(alpha), at each order T <= (epsilon - conversion term) / rdp(alpha); the answer
    is the best order's bound (0 when even one step is over budget)."""
    who = "max_steps_for_epsilon"
    epsilon = _number(who, "epsilon", epsilon, 0.0, low_open=True)
    orders = _orders(who, orders)
    rdp = rdp_sampled_gaussian(sample_rate, noise_multiplier, orders)
    zero_cost = rdp_to_epsilon(orders, np.zeros(orders.shape), delta, method)[0]
    if np.all(rdp == 0):
        raise TinyLMError(f"{who}: sample_rate 0 reads no data, so every number of steps is "
                          f"free; expected sample_rate > 0")
    a = orders.astype(np.float64)
    # the conversion term of each order (what epsilon costs with zero RDP)
    if method == "classic":
        term = -math.log(delta) / (a - 1)
    else:
        term = np.log((a - 1) / a) - (math.log(delta) + np.log(a)) / (a - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(rdp > 0, (epsilon - term) / rdp, np.inf)
    steps = int(np.floor(np.max(bound) * (1 + 1e-12))) if zero_cost <= epsilon else 0
    # guard the floor against rounding: step back while the exact epsilon is over budget
    while steps > 0 and dp_sgd_epsilon(sample_rate, noise_multiplier, steps, delta, orders,
                                       method)[0] > epsilon:
        steps -= 1
    return max(steps, 0)


def noise_multiplier_for_epsilon(epsilon, sample_rate, steps, delta, orders=DEFAULT_ORDERS,
                                 method="classic", tol=1e-4):
    """The smallest noise multiplier sigma (to ``tol``) for which ``steps`` DP-SGD steps at
    rate q stay within ``(epsilon, delta)``; found by bisection (epsilon falls as sigma
    grows)."""
    who = "noise_multiplier_for_epsilon"
    epsilon = _number(who, "epsilon", epsilon, 0.0, low_open=True)
    tol = _number(who, "tol", tol, 0.0, low_open=True)

    def eps(sigma):
        return dp_sgd_epsilon(sample_rate, sigma, steps, delta, orders, method)[0]
    low, high = 0.0, 1.0
    while eps(high) > epsilon:
        low, high = high, 2 * high
        if high > 1e6:
            raise TinyLMError(f"{who}: no noise multiplier up to 1e6 reaches epsilon "
                              f"{epsilon} (delta {delta}); is delta too small for these "
                              f"orders?")
    while high - low > tol:
        mid = (low + high) / 2
        low, high = (low, mid) if eps(mid) <= epsilon else (mid, high)
    return high


# ======================================================================================
# Federated averaging
# ======================================================================================

def federated_average(client_weights, num_examples):
    """FedAvg's server step: ``w = sum_k (n_k / n) w_k``.

    ``client_weights``: one entry per client, each a list of arrays (that client's parameters,
    in the same order and shapes for every client); ``num_examples``: n_k for each client.
    Returns the list of averaged arrays."""
    who = "federated_average"
    clients = [list(w) for w in client_weights]
    counts = np.asarray(num_examples, dtype=np.float64)
    if not clients or counts.shape != (len(clients),):
        raise TinyLMError(f"{who}: expected one example count per client, got "
                          f"{counts.shape[0] if counts.ndim else counts.shape} counts for "
                          f"{len(clients)} clients")
    if np.any(counts < 0) or counts.sum() <= 0:
        raise TinyLMError(f"{who}: example counts must be >= 0 with a positive total, got "
                          f"{counts.tolist()}")
    shapes = [tuple(np.shape(a) for a in w) for w in clients]
    if any(s != shapes[0] for s in shapes):
        raise ShapeError(f"{who}: every client must send the same parameter shapes, got "
                         f"{shapes[0]} and {next(s for s in shapes if s != shapes[0])}")
    share = counts / counts.sum()
    return [sum(s * np.asarray(w[i]) for s, w in zip(share, clients))
            for i in range(len(clients[0]))]
