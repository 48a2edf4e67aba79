"""Chapter 13 (text classification): it runs end to end with ``--quick``, and its tools (A4's
metrics by hand, A14's per-token BCE, C14's losses and its erratum's calibration numbers,
the training loop, the word2vec embedding, the sentiment loaders) are tested directly
(tools loaded with ``chapter_tools.load_definitions``)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinylm as tl
from tinylm.errors import TinyLMError
from tinylm.metrics import accuracy, confusion_matrix, precision_recall_f1
from tinylm.models import LSTMClassifier
from tinylm.text import WordTokenizer

from chapter_tools import ROOT, assert_chapter_passes, load_definitions


@pytest.fixture(scope="module")
def ch13():
    return load_definitions("13_text_classification.py")


@pytest.mark.ch13
def test_chapter_13_runs(tmp_path):
    out = assert_chapter_passes("13_text_classification.py", tmp_path,
                                ["13_classification.png"])
    assert "TP = 3, FP = 2, FN = 1, TN = 4" in out
    assert "always 'negative': accuracy 0.95, precision 0.00, recall 0.00, F1 0.00" in out
    assert "A14's output shape (B, T)" in out
    assert "BCE one-hot: row sums" in out


@pytest.mark.ch13
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a4_metrics_by_hand_equal_tinylm(ch13, seed):
    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    hand = ch13.metrics_by_hand(y_true.tolist(), y_pred.tolist())
    p, r, f1 = precision_recall_f1(y_true, y_pred)
    assert hand["accuracy"] == pytest.approx(accuracy(y_true, y_pred), abs=1e-12)
    assert (hand["precision"], hand["recall"], hand["f1"]) == pytest.approx((p, r, f1),
                                                                            abs=1e-12)
    assert hand["tp"] + hand["fp"] + hand["fn"] + hand["tn"] == 50
    y3_true, y3_pred = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    np.testing.assert_array_equal(ch13.confusion_by_hand(y3_true, y3_pred, 3),
                                  confusion_matrix(y3_true, y3_pred, num_classes=3))
    per_class = precision_recall_f1(y3_true, y3_pred, average=None)
    for c in range(3):
        hand = ch13.metrics_by_hand(y3_true, y3_pred, positive=c)
        assert (hand["precision"], hand["recall"], hand["f1"]) == pytest.approx(
            tuple(m[c] for m in per_class), abs=1e-12)


@pytest.mark.ch13
def test_a4_metrics_by_hand_zero_division(ch13):
    hand = ch13.metrics_by_hand([1, 0, 0], [0, 0, 0])
    assert (hand["accuracy"], hand["precision"], hand["recall"], hand["f1"]) == \
        pytest.approx((2 / 3, 0.0, 0.0, 0.0))


@pytest.mark.ch13
def test_a14_per_token_bce_equals_torch_with_mask(ch13):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 5))
    labels, lengths = np.array([1, 0, 1]), np.array([5, 2, 3])
    mine = ch13.per_token_bce(tl.Tensor(z, requires_grad=True), labels, lengths)
    mask = torch.arange(5)[None, :] < torch.tensor(lengths)[:, None]
    target = torch.tensor(labels, dtype=torch.float64)[:, None].expand(3, 5)
    each = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(z), target, reduction="none")
    assert mine.item() == pytest.approx(each[mask].mean().item(), abs=1e-12)


@pytest.mark.ch13
def test_c14_losses_equal_torch(ch13):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(6, 4)), rng.integers(0, 4, 6)
    bce = ch13.classification_loss(tl.Tensor(z), y, "bce_onehot").item()
    ce = ch13.classification_loss(tl.Tensor(z), y, "ce").item()
    onehot = torch.nn.functional.one_hot(torch.tensor(y), 4).double()
    assert bce == pytest.approx(torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(z), onehot).item(), abs=1e-12)
    assert ce == pytest.approx(torch.nn.functional.cross_entropy(
        torch.tensor(z), torch.tensor(y)).item(), abs=1e-12)
    z1, y1 = rng.normal(size=6), rng.integers(0, 2, 6)
    assert ch13.classification_loss(tl.Tensor(z1), y1, "bce").item() == pytest.approx(
        torch.nn.functional.binary_cross_entropy_with_logits(
            torch.tensor(z1), torch.tensor(y1, dtype=torch.float64)).item(), abs=1e-12)
    with pytest.raises(TinyLMError, match="kind must be one of"):
        ch13.classification_loss(tl.Tensor(z), y, "hinge")


@pytest.mark.ch13
def test_probabilities_of_each_kind(ch13):
    rng = np.random.default_rng(2)
    z = rng.normal(size=(5, 3))
    np.testing.assert_allclose(ch13.probabilities(z, "ce").sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(ch13.probabilities(z, "bce_onehot"), 1 / (1 + np.exp(-z)))
    p = ch13.probabilities(z[:, 0], "bce")
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-z[:, 0])))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # per-token: the mean over the real tokens only (junk in the padding is ignored)
    tokens = np.array([[0.0, 100.0, 100.0], [2.0, -2.0, 100.0]])
    p = ch13.probabilities(tokens, "bce_tokens", np.array([1, 2]))
    np.testing.assert_allclose(p[:, 1], [0.5, 0.5], atol=1e-12)


@pytest.mark.ch13
def test_calibration_numbers(ch13):
    labels = np.array([0, 1, 1, 0])
    perfect = np.eye(2)[labels] * 0.98 + 0.01
    c = ch13.calibration(perfect, labels)
    assert c["accuracy"] == 1.0 and c["mean_abs_sum_minus_1"] == pytest.approx(0.0)
    assert c["ece"] == pytest.approx(0.01) and c["nll"] == pytest.approx(-np.log(0.99))
    # confident but half wrong, rows summing to 1.2: ECE 0.4, |sum - 1| 0.2
    probs = np.array([[0.9, 0.3], [0.9, 0.3], [0.3, 0.9], [0.3, 0.9]])
    c = ch13.calibration(probs, np.array([0, 1, 1, 0]))
    assert c["accuracy"] == 0.5 and c["ece"] == pytest.approx(0.4)
    assert c["mean_abs_sum_minus_1"] == pytest.approx(0.2)
    assert c["nll"] == pytest.approx(-np.mean(np.log([0.75, 0.25, 0.75, 0.25])))


def _toy_task(n, seed):
    """Token 5 present -> label 1; ids 2..9, lengths 2..6."""
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(6, 10, rng.integers(2, 7)).tolist() for _ in range(n)]
    labels = rng.integers(0, 2, n)
    for s, y in zip(seqs, labels):
        if y:
            s[rng.integers(len(s))] = 5
    return seqs, labels


@pytest.mark.ch13
def test_a15_training_loop_learns_and_is_deterministic(ch13):
    train, val = _toy_task(128, 0), _toy_task(64, 1)

    def run():
        model = LSTMClassifier(10, 8, 8, num_outputs=1, pooling="max", seed=0)
        hist = ch13.train_classifier(model, train, val, "bce", 6, batch_size=16, lr=2e-2,
                                     seed=0)
        return model, hist
    model, hist = run()
    assert len(hist["loss"]) == len(hist["val_accuracy"]) == 6
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]
    assert hist["val_accuracy"][-1] >= 0.95
    assert accuracy(val[1], ch13.predict(model, val[0], "bce")) == hist["val_accuracy"][-1]
    assert run()[1] == hist


@pytest.mark.ch13
def test_a14_per_token_model_trains(ch13):
    train, val = _toy_task(96, 2), _toy_task(32, 3)
    model = LSTMClassifier(10, 8, 8, num_outputs=1, dense_size=8, pooling="none", seed=0)
    hist = ch13.train_classifier(model, train, val, "bce_tokens", 3, batch_size=16, lr=2e-2)
    assert hist["loss"][-1] < hist["loss"][0]
    logits, lengths = ch13.predict_logits(model, val[0])
    assert logits.shape == (32, max(len(s) for s in val[0]))
    np.testing.assert_array_equal(lengths, [len(s) for s in val[0]])


@pytest.mark.ch13
def test_c14_pretrained_vectors(ch13):
    texts = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"] * 5
    tok = WordTokenizer.train(texts, lower=True)
    token_lists = [tok.split(t, lower=True) for t in texts]
    matrix, coverage = ch13.pretrained_vectors(tok, token_lists, dim=8, epochs=2, seed=3)
    assert matrix.shape == (tok.vocab_size, 8) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[tok.vocab.stoi["<pad>"]], 0.0)
    words = {w for s in token_lists for w in s}
    assert coverage == pytest.approx(len(words) / tok.vocab_size)
    again, _ = ch13.pretrained_vectors(tok, token_lists, dim=8, epochs=2, seed=3)
    np.testing.assert_array_equal(matrix, again)
    assert not np.allclose(matrix[tok.vocab.stoi["cat"]], matrix[tok.vocab.stoi["dog"]])


@pytest.mark.ch13
def test_encode_and_binary_subset(ch13):
    tok = WordTokenizer.train(["alpha beta"], lower=True)
    ids = ch13.encode_texts(tok, ["alpha beta alpha", "", "gamma"], 2)
    unk = tok.vocab.stoi["<unk>"]
    assert ids == [[tok.vocab.stoi["alpha"], tok.vocab.stoi["beta"]], [unk], [unk]]
    texts, labels = ch13.binary_subset(["a", "b", "c", "d"], [2, 0, 1, 2], keep=(2, 1))
    assert texts == ["a", "c", "d"] and labels == [0, 1, 0]


@pytest.mark.ch13
def test_sentiment_data_formats(ch13, tmp_path):
    sst = tmp_path / "sst2"
    sst.mkdir()
    (sst / "train.tsv").write_text("sentence\tlabel\ngood film\t1\nbad film\t0\n")
    (sst / "dev.tsv").write_text("sentence\tlabel\nfine\t1\n")
    parts = ch13.sentiment_data(sst)
    assert parts["train"] == (["good film", "bad film"], [1, 0])
    assert parts["dev"] == (["fine"], [1])
    rt = tmp_path / "rt"
    rt.mkdir()
    (rt / "rt-polarity.pos").write_text("".join(f"good {i}\n" for i in range(10)))
    (rt / "rt-polarity.neg").write_text("".join(f"bad {i}\n" for i in range(10)))
    parts = ch13.sentiment_data(rt, seed=0)
    assert len(parts["train"][0]) == 18 and sorted(parts["dev"][1]) == [0, 1]
    tsv = tmp_path / "data.tsv"
    tsv.write_text("".join(f"text {i}\t{i % 2}\n" for i in range(20)))
    parts = ch13.sentiment_data(tsv, seed=0)
    assert len(parts["train"][0]) == 18 and len(parts["dev"][0]) == 2
    assert ch13.sentiment_data(tsv, seed=0) == parts
    with pytest.raises(TinyLMError, match="neither"):
        ch13.sentiment_data(tmp_path)


@pytest.mark.ch13
def test_benchmark_skips_cleanly_without_data(tmp_path):
    env = dict(os.environ, TINYLM_DATA=str(tmp_path))
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_classification.py")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no data for ['sst2', 'rt-polarity']" in json.loads(result.stdout)["skipped"]
