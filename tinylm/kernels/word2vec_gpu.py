"""word2vec with negative sampling (B2, C9) on the GPU: batches of examples, one CUDA block
each, updating the shared vectors with atomic adds.

The update of one example is ``word2vec_cpu.negative_sampling_update``'s, unchanged: with
``h`` the input vector (skip-gram: the context word's; CBOW: the mean of the window's),
``u_t`` the output vector of target ``t`` (the centre word, label 1, then ``k`` negatives,
label 0) and ``alpha`` the learning rate, in order over the targets

    f = sigma(u_t . h),   g = alpha (label_t - f),   work += g u_t,   u_t += g h

and then every context row of ``syn0`` += ``work``: one SGD step on
``L = -log sigma(u_o . h) - sum_k log sigma(-u_k . h)``.

What changes on the GPU is where the examples come from and how many run at once:

* the host (NumPy, vectorised) turns a chunk of sentences into examples exactly as the CPU
  epoch does (gensim's subsampling keep-probability, a reduced window ``window - b`` per
  centre word, negatives from Walker's alias table, a negative equal to the true word
  skipped), each with its own linearly decaying learning rate;
* the device runs one block per example, thousands at a time. Blocks that touch the same row
  (frequent words) add into it with ``atomicAdd``: lock-free like word2vec.c's threads
  ("Hogwild"), but without losing updates to races. Results therefore depend on scheduling
  (float sums in a different order), as with ``workers > 1`` on the CPU.

``update_reference`` runs the same batch one example after another through the Numba step on
NumPy arrays: the kernel's meaning, what the GPU test compares it against, and what lets the
host half be tested on a machine without a GPU.
"""
import numpy as np

from .word2vec_cpu import negative_sampling_update

try:    # only update_gpu needs CuPy; the host half (examples, reference update) runs anywhere
    import cupy
except Exception:
    cupy = None

BLOCK = 128                         # threads per example; each owns every BLOCK-th dimension
CHUNK_WORDS = 1 << 20               # corpus words turned into examples per host round

SGNS_SOURCE = r"""
#define BLOCK 128

template <typename T> __device__ T block_sum(T v, T* buf) {
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int s = BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
        __syncthreads();
    }
    T total = buf[0];
    __syncthreads();
    return total;
}

// sigma(x) = 1 / (1 + e^-x), in the form that cannot overflow (as word2vec_cpu._sigmoid)
template <typename T> __device__ T sigmoid(T x) {
    if (x >= T(0)) return T(1) / (T(1) + exp(-x));
    const T e = exp(x);
    return e / (T(1) + e);
}

// One block per example e. Its context rows are ctx_ids[ctx_offsets[e] .. ctx_offsets[e+1]]
// (one for skip-gram), its targets targets[e * n_targets ..] (the true word first, then the
// negatives; -1 marks a negative that was skipped). Each thread owns dimensions j, j + BLOCK,
// ... of h, work and every row it touches, so only the dot products need the whole block.
template <typename T>
__global__ void sgns_update(T* syn0, T* syn1neg, const long long* ctx_offsets,
                            const int* ctx_ids, const int* targets, const T* alphas,
                            double* loss, int n_targets, long long dim, int want_loss) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* h = reinterpret_cast<T*>(smem_raw);     // dim: the input vector
    T* work = h + dim;                          // dim: -alpha dL/dh, added to the contexts
    __shared__ T buf[BLOCK];
    const long long e = blockIdx.x;
    const long long c0 = ctx_offsets[e], c1 = ctx_offsets[e + 1];
    for (long long j = threadIdx.x; j < dim; j += BLOCK) {
        T s = T(0);
        for (long long c = c0; c < c1; ++c) s += syn0[ctx_ids[c] * dim + j];
        h[j] = s / T(c1 - c0);
        work[j] = T(0);
    }
    const T alpha = alphas[e];
    double total = 0.0;
    for (int n = 0; n < n_targets; ++n) {
        const long long t = targets[e * n_targets + n];
        if (t < 0) continue;                    // the same for every thread of the block
        T* u = syn1neg + t * dim;
        T part = T(0);
        for (long long j = threadIdx.x; j < dim; j += BLOCK) part += h[j] * u[j];
        const T f = sigmoid(block_sum(part, buf));
        const T g = ((n == 0 ? T(1) : T(0)) - f) * alpha;
        for (long long j = threadIdx.x; j < dim; j += BLOCK) {
            work[j] += g * u[j];                // u_t as it was before this step's update
            atomicAdd(u + j, g * h[j]);
        }
        if (want_loss && threadIdx.x == 0) {
            const double p = n == 0 ? (double)f : 1.0 - (double)f;
            total -= log(p > 1e-30 ? p : 1e-30);
        }
    }
    for (long long j = threadIdx.x; j < dim; j += BLOCK)
        for (long long c = c0; c < c1; ++c) atomicAdd(syn0 + ctx_ids[c] * dim + j, work[j]);
    if (want_loss && threadIdx.x == 0) loss[e] = total;
}
"""


# --- examples, on the host ---------------------------------------------------------------
def chunk_bounds(offsets, chunk_words=CHUNK_WORDS):
    """Sentence indices cutting the corpus into runs of about ``chunk_words`` words (windows
    never cross a sentence, so a chunk is complete on its own)."""
    n_sent = len(offsets) - 1
    targets = np.arange(0, offsets[-1], max(1, chunk_words))[1:]
    cuts = np.searchsorted(offsets, targets)
    return np.unique(np.concatenate([[0], cuts, [n_sent]])).astype(np.int64)


def make_examples(corpus, offsets, s0, s1, sample_ints, window, sg, rng):
    """The examples of sentences ``s0 .. s1 - 1`` (``corpus[offsets[s]:offsets[s+1]]``).

    Words are kept with gensim's rule (``sample_ints[w] >= a uniform 32-bit number``; none
    dropped when ``sample_ints`` is empty); each kept word at position i is a centre with
    radius ``window - b``, ``b`` uniform in [0, window), seeing the kept words j != i of its
    sentence with |i - j| <= radius. Returns ``(centres, positions, ctx_offsets, ctx_ids,
    kept)``: skip-gram has one example per (centre, context) pair, CBOW one per centre with
    at least one context; ``positions`` are the centres' places in the corpus (for the
    learning rate); ``kept`` counts the words that survived subsampling.
    """
    lo, hi = offsets[s0], offsets[s1]
    words = corpus[lo:hi].astype(np.int64)
    position = np.arange(lo, hi)
    sentence = np.repeat(np.arange(s0, s1), np.diff(offsets[s0:s1 + 1]))
    if len(sample_ints):
        keep = sample_ints[words] >= rng.integers(0, 2 ** 32, len(words), dtype=np.int64)
        words, position, sentence = words[keep], position[keep], sentence[keep]
    n = len(words)
    radius = window - rng.integers(0, window, n)
    centre_idx, context_idx = [], []
    for d in range(1, window + 1):
        i = np.nonzero((radius[:n - d] >= d) & (sentence[:n - d] == sentence[d:]))[0]
        centre_idx += [i]
        context_idx += [i + d]                   # the word d places after the centre
        i = np.nonzero((radius[d:] >= d) & (sentence[d:] == sentence[:n - d]))[0] + d
        centre_idx += [i]
        context_idx += [i - d]                   # the word d places before it
    centre_idx = np.concatenate(centre_idx) if centre_idx else np.zeros(0, np.int64)
    context_idx = np.concatenate(context_idx) if context_idx else np.zeros(0, np.int64)
    order = np.argsort(centre_idx, kind="stable")        # corpus order, as the CPU walks it
    centre_idx, context_idx = centre_idx[order], context_idx[order]
    ctx_ids = words[context_idx].astype(np.int32)
    if sg:
        ctx_offsets = np.arange(len(ctx_ids) + 1, dtype=np.int64)
        return words[centre_idx], position[centre_idx], ctx_offsets, ctx_ids, n
    centres, counts = np.unique(centre_idx, return_counts=True)
    ctx_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return words[centres], position[centres], ctx_offsets, ctx_ids, n


def draw_targets(centres, negative, alias_threshold, alias_index, rng):
    """(n, 1 + negative) int32: each centre word, then ``negative`` draws from the unigram^0.75
    distribution by Walker's alias method (column k uniform, kept with probability
    threshold[k] / 2^32, else its alias), -1 where a draw hit the centre (skipped, as
    word2vec.c skips it)."""
    n = len(centres)
    column = rng.integers(0, len(alias_index), (n, negative))
    u = rng.integers(0, 2 ** 32, (n, negative), dtype=np.uint64)
    drawn = np.where(u < alias_threshold[column], column, alias_index[column])
    drawn[drawn == centres[:, None]] = -1
    return np.concatenate([centres[:, None], drawn], axis=1).astype(np.int32)


def learning_rates(positions, epoch, epochs, total_words, start_alpha, end_alpha, dtype):
    """alpha falls linearly from ``start_alpha`` to ``end_alpha`` over all epochs' words."""
    progress = (epoch + positions / max(total_words, 1)) / epochs
    return np.maximum(start_alpha - (start_alpha - end_alpha) * progress, end_alpha).astype(dtype)


# --- the update ---------------------------------------------------------------------------
def update_reference(syn0, syn1neg, ctx_offsets, ctx_ids, targets, alphas, want_loss=True):
    """The batch one example after another with the CPU's step (NumPy arrays, in place);
    returns the loss of each example."""
    loss = np.zeros(len(alphas))
    work = np.empty(syn0.shape[1], dtype=syn0.dtype)
    for e in range(len(alphas)):
        ctx = ctx_ids[ctx_offsets[e]:ctx_offsets[e + 1]]
        h = syn0[ctx].sum(axis=0) / syn0.dtype.type(len(ctx))
        work[:] = 0
        row = targets[e]
        loss[e] = negative_sampling_update(h, syn1neg, row[row >= 0].astype(np.int64),
                                           float(alphas[e]), work, want_loss)
        for c in ctx:
            syn0[c] += work
    return loss


def update_gpu(syn0, syn1neg, ctx_offsets, ctx_ids, targets, alphas, want_loss=True):
    """The same batch on the GPU (CuPy arrays, in place), one block per example, thousands of
    examples at once; returns the loss of each example (a CuPy array)."""
    n, dim = len(alphas), syn0.shape[1]
    loss = cupy.zeros(n, dtype=cupy.float64)
    if n:
        _kernel(syn0.dtype)((n,), (BLOCK,), (
            syn0, syn1neg, ctx_offsets, ctx_ids, targets, alphas, loss,
            np.int32(targets.shape[1]), np.int64(dim), np.int32(bool(want_loss))),
            shared_mem=2 * dim * syn0.dtype.itemsize)
    return loss


_compiled = {}


def _kernel(dtype):
    name = {np.dtype(np.float32): "sgns_update<float>",
            np.dtype(np.float64): "sgns_update<double>"}[np.dtype(dtype)]
    if name not in _compiled:
        module = cupy.RawModule(code=SGNS_SOURCE, options=("--std=c++14",),
                                name_expressions=("sgns_update<float>", "sgns_update<double>"))
        for key in ("sgns_update<float>", "sgns_update<double>"):
            _compiled[key] = module.get_function(key)
    return _compiled[name]


# --- an epoch ------------------------------------------------------------------------------
def train_epoch(syn0, syn1neg, corpus, offsets, alias_threshold, alias_index, sample_ints, sg,
                window, negative, epoch, epochs, start_alpha, end_alpha, rng, want_loss,
                xp=np, update=update_reference, chunk_words=CHUNK_WORDS):
    """One epoch: examples made on the host chunk by chunk, each chunk's batch copied to the
    arrays' device (``xp``) and handed to ``update`` (``update_gpu`` there,
    ``update_reference`` on NumPy). Returns ``(loss, effective words)``, the effective words
    being those that survived subsampling."""
    total_loss, effective = 0.0, 0
    bounds = chunk_bounds(offsets, chunk_words)
    for s0, s1 in zip(bounds[:-1], bounds[1:]):
        centres, positions, ctx_offsets, ctx_ids, kept = make_examples(
            corpus, offsets, s0, s1, sample_ints, window, sg, rng)
        effective += kept
        if len(centres) == 0:
            continue
        targets = draw_targets(centres, negative, alias_threshold, alias_index, rng)
        alphas = learning_rates(positions, epoch, epochs, offsets[-1], start_alpha, end_alpha,
                                syn0.dtype)
        loss = update(syn0, syn1neg, xp.asarray(ctx_offsets), xp.asarray(ctx_ids),
                      xp.asarray(targets), xp.asarray(alphas), want_loss)
        if want_loss:
            total_loss += float(loss.sum())
    return total_loss, effective
