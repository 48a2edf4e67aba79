"""Determinism: the same seed gives bit-identical losses, run after run, for every model (with
dropout on, so the dropout generators count), for word2vec with one worker and GloVe with
one worker, in this process and in fresh processes with other hash seeds and thread counts.
A different seed gives different numbers (so the seed is really used).

Not deterministic, by design (README "When things go wrong"): word2vec and GloVe with several
workers (Hogwild threads race on shared rows) and word2vec on a GPU (atomic adds in any
order).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinylm import functional as F
from tinylm import optim
from tinylm.embeddings import GloVe, Word2Vec
from tinylm.models import (GPT, RNNLM, GPTConfig, LSTMClassifier, Seq2SeqTransformer,
                           TransformerClassifier)
from tinylm.text import random_windows
from tinylm.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6
V, B, T = 11, 3, 6


def batches(seed):
    """Token ids 1..V-1 (0 is padding for the classifiers and the translator)."""
    rng = np.random.default_rng([seed, 99])
    for _ in range(STEPS):
        yield rng.integers(1, V, (B, T)), rng.integers(1, V, (B, T)), rng.integers(0, 3, B)


def gpt(seed):
    return GPT(GPTConfig(block_size=T, vocab_size=V, n_layer=2, n_head=2, n_embd=8,
                         dropout=0.2), seed=seed), lambda m, x, y, c: m(x, y)[1]


def rnnlm(cell):
    def make(seed):
        return (RNNLM(V, 8, 8, num_layers=2, cell=cell, dropout=0.2, seed=seed),
                lambda m, x, y, c: m(x, y)[1])
    return make


def lstm_classifier(seed):
    return (LSTMClassifier(V, 8, 8, num_outputs=3, dropout=0.2, pooling="mean", seed=seed),
            lambda m, x, y, c: F.cross_entropy(m(x), c))


def transformer_classifier(seed):
    return (TransformerClassifier(V, 8, 2, 1, 16, num_outputs=3, max_len=T, dropout=0.2,
                                  seed=seed), lambda m, x, y, c: F.cross_entropy(m(x), c))


def translator(seed):
    return (Seq2SeqTransformer(V, V, 8, 2, 1, 1, 16, dropout=0.2, max_len=T, seed=seed),
            lambda m, x, y, c: m(x, y[:, :-1], y[:, 1:])[1])


MODELS = {"gpt": gpt, "rnnlm-lstm": rnnlm("lstm"), "rnnlm-gru": rnnlm("gru"),
          "rnnlm-rnn": rnnlm("rnn_tanh"), "lstm-classifier": lstm_classifier,
          "transformer-classifier": transformer_classifier, "seq2seq": translator}


def train_losses(make, seed):
    model, loss_fn = make(seed)
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    losses = []
    for x, y, c in batches(seed):
        loss = loss_fn(model, x, y, c)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_repeats_its_losses_bit_for_bit(name):
    first, second = train_losses(MODELS[name], 5), train_losses(MODELS[name], 5)
    assert first == second                               # exact float equality
    assert train_losses(MODELS[name], 6) != first        # and the seed matters


def test_the_trainer_repeats_its_losses_bit_for_bit():
    def run(seed):
        model, _ = gpt(0)
        data = np.random.default_rng(0).integers(0, V, 400)

        get_batch = random_windows({"train": data, "val": data}, T, B)
        cfg = TrainConfig(max_iters=8, eval_interval=4, eval_iters=2, warmup_iters=2,
                          seed=seed, progress=False)
        return Trainer(model, model.configure_optimizers(0.1, 1e-2, (0.9, 0.99)), get_batch,
                       cfg).fit()
    first = run(1)
    assert first == run(1)
    assert first["train"] != run(2)["train"]


SENTENCES = [s.split() for s in (
    "the cat sat on the mat", "the dog sat on the log", "a cat and a dog met",
    "the mat was red and the log was brown", "cats and dogs sat together on a mat") * 8]


@pytest.mark.parametrize("sg, negative", [(1, 5), (0, 5), (1, 0)])
def test_word2vec_with_one_worker_repeats_bit_for_bit(sg, negative):
    def run(seed):
        model = Word2Vec(SENTENCES, vector_size=12, window=2, min_count=1, sg=sg,
                         negative=negative, workers=1, epochs=3, seed=seed, compute_loss=True)
        return model.wv.vectors.copy(), list(model.loss_history)
    (v1, l1), (v2, l2), (v3, _) = run(3), run(3), run(4)
    np.testing.assert_array_equal(v1, v2)
    assert l1 == l2
    assert not np.array_equal(v1, v3)


def test_glove_with_one_worker_repeats_bit_for_bit():
    def run(seed):
        model = GloVe(SENTENCES, vector_size=8, window=3, min_count=1, epochs=4, workers=1,
                      seed=seed)
        return model.wv.vectors.copy(), list(model.loss_history)
    (v1, l1), (v2, l2), (v3, _) = run(1), run(1), run(2)
    np.testing.assert_array_equal(v1, v2)
    assert l1 == l2
    assert not np.array_equal(v1, v3)


# --- in fresh processes: other hash seeds, other thread counts --------------------------------
CHILD = r'''
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_determinism import MODELS, SENTENCES, train_losses
from tinylm.embeddings import GloVe, Word2Vec
w2v = Word2Vec(SENTENCES, vector_size=12, window=2, min_count=1, sg=1, workers=1, epochs=3,
               seed=3, compute_loss=True)
glove = GloVe(SENTENCES, vector_size=8, window=3, min_count=1, epochs=4, workers=1, seed=1)
print(json.dumps({"gpt": train_losses(MODELS["gpt"], 5),
                  "lstm": train_losses(MODELS["rnnlm-lstm"], 5),
                  "w2v": w2v.wv.vectors.astype(float).tolist(), "w2v_keys": w2v.wv.index_to_key,
                  "glove": glove.wv.vectors.astype(float).tolist()}))
'''


def _fresh_process(hash_seed, threads):
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), NUMBA_NUM_THREADS=str(threads),
               OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "tests")], env=env,
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fresh_processes_with_other_hash_seeds_and_threads_agree():
    a, b = _fresh_process(hash_seed=1, threads=1), _fresh_process(hash_seed=12345, threads=2)
    assert a == b                                      # every float, every word's order
    assert a["gpt"] == train_losses(MODELS["gpt"], 5)  # and this process agrees too
