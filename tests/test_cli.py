"""``python -m tinylm train|generate|evaluate`` end to end, on tiny settings.

Most tests call ``tinylm.cli.main`` in-process (no interpreter start-up); two run the real
``python -m tinylm`` to check the wiring in ``__main__`` and the one-line errors."""
import json
import math
import re
import subprocess
import sys

import pytest

from tinylm import checkpoint
from tinylm.cli import load_model, main
from tinylm.datasets import DATA_DIR
from tinylm.io import load_json
from tinylm.metrics import perplexity

TINY = ["--quiet", "--eval-iters", "2", "--batch-size", "4", "--n-layer", "1", "--n-embd",
        "16", "--n-head", "2"]
TEXT = "".join(f"the cat sat on mat number {i % 7}.\nthe dog ran to log {i % 5}.\n"
               for i in range(60))


def run(capsys, *argv):
    """(exit status, stdout, stderr) of ``python -m tinylm *argv`` run in-process."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def train(capsys, tmp_path, model, *extra, out="out"):
    code, stdout, err = run(capsys, "train", model, *TINY, "--out", tmp_path / out, *extra)
    assert code == 0, err
    return load_json(tmp_path / out / "metrics.json"), stdout


def assert_one_line_error(code, out, err, pattern):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinylm: error: "), err
    assert "Traceback" not in err + out
    assert re.search(pattern, lines[0]), lines[0]


# --- help and errors --------------------------------------------------------------------------
@pytest.mark.parametrize("argv, expected", [
    (["train", "gpt"], "--block-size"), (["train", "rnnlm"], "--bptt"),
    (["train", "classifier"], "--data"), (["train", "translator"], "--src"),
    (["generate"], "--prompt"), (["evaluate"], "--checkpoint"), (["train"], "translator"),
])
def test_help_for_each_command(capsys, argv, expected):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--help"])
    assert exc.value.code == 0
    assert expected in capsys.readouterr().out


def test_python_m_tinylm_wiring_and_bad_argument_is_one_line(tmp_path):
    def python_m(*argv):
        return subprocess.run([sys.executable, "-m", "tinylm", *argv], capture_output=True,
                              text=True, cwd=tmp_path, timeout=60)
    top = python_m("--help")
    assert top.returncode == 0 and all(c in top.stdout for c in
                                       ("gradcheck", "train", "generate", "evaluate"))
    assert python_m("gradcheck", "--list").returncode == 0        # the old command still works
    bad = python_m("train", "gpt", "--block-size", "x")
    assert_one_line_error(bad.returncode, bad.stdout, bad.stderr,
                          r"train gpt: argument --block-size: expected a positive int, "
                          r"got 'x'")


@pytest.mark.parametrize("argv, pattern", [
    (["train", "gpt", "--corpus", "{tmp}/missing.txt"], r"missing\.txt does not exist"),
    (["train", "gpt", "--corpus", "{tmp}/empty.txt"], r"empty\.txt is empty"),
    (["train", "gpt", "--device", "tpu"], r"argument --device: invalid choice: 'tpu'"),
    (["train", "gpt", "--n-embd", "10", "--n-head", "4"], r"n_embd=10 must be divisible"),
    (["train", "gpt", "--dropout", "1.5"], r"--dropout: expected a number in \[0, 1\)"),
    (["train", "gpt", "--nonsense"], r"unrecognized arguments: --nonsense"),
    (["train", "llama"], r"invalid choice: 'llama'"),
    (["train", "classifier", "--data", "{tmp}/bad_labels.tsv"], r"line 2: expected text"),
    (["train", "translator", "--data", "dates", "--src", "en"], r"do not apply to --data dates"),
    (["train", "translator", "--data", "klingon"], r"--data must be one of"),
    (["generate", "--checkpoint", "{tmp}"], r"ckpt\.safetensors does not exist"),
    (["generate", "--checkpoint", "{tmp}/empty.txt"], r"must end in \.safetensors"),
    (["evaluate", "--checkpoint", "{tmp}/junk.safetensors"], r"not a valid safetensors"),
    (["generate"], r"the following arguments are required: --checkpoint"),
])
def test_bad_input_gives_one_line_error(capsys, tmp_path, argv, pattern):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bad_labels.tsv").write_text("good film\t1\nno label here\n")
    (tmp_path / "junk.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, out, err = run(capsys, *argv, *(["--out", tmp_path / "o"] if argv[0] == "train"
                                          else []))
    assert_one_line_error(code, out, err, pattern)


def test_classifier_label_out_of_range_in_dev(capsys, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.tsv").write_text("good film\t1\nbad film\t0\n")
    (tmp_path / "d" / "dev.tsv").write_text("odd film\t2\n")
    code, out, err = run(capsys, "train", "classifier", "--data", tmp_path / "d", "--out",
                         tmp_path / "o", "--min-count", "1")
    assert_one_line_error(code, out, err, r"the dev split has label 2, but the train split "
                                          r"has only 2 classes")


# --- gpt ---------------------------------------------------------------------------------------
def test_train_gpt_on_embedded_corpus_then_generate_and_evaluate(capsys, tmp_path):
    metrics, stdout = train(capsys, tmp_path, "gpt", "--max-iters", "12", "--eval-interval",
                            "6", "--block-size", "16", "--lr", "1e-2", "--score-batches", "2")
    for key in ("best_val_loss", "final_train_loss", "iters", "train_seconds",
                "tokens_per_second", "val_perplexity"):
        assert key in metrics
    assert metrics["iters"] == 12 and metrics["tokens_per_second"] > 0
    log = load_json(tmp_path / "out" / "log.json")
    assert log["eval"][-1]["val_loss"] < log["eval"][0]["val_loss"]          # it learns
    assert metrics["val_perplexity"] == pytest.approx(math.exp(metrics["val_loss_windows"]))
    for name in ("ckpt.safetensors", "config.json", "tokenizer.json", "log.csv", "loss.png"):
        assert (tmp_path / "out" / name).is_file()
    _, meta = checkpoint.load(tmp_path / "out" / "ckpt.safetensors")
    info = meta["model_metadata"]
    assert info["kind"] == "gpt" and info["model_config"]["block_size"] == 16
    assert info["tokenizer"]["format"] == "tinylm.CharTokenizer"

    sample = ["generate", "--checkpoint", tmp_path / "out", "--prompt", "The ",
              "--max-new-tokens", "20", "--seed", "3"]
    code, first, _ = run(capsys, *sample)
    assert code == 0 and first.startswith("The ") and len(first) >= 4 + 20
    assert run(capsys, *sample)[1] == first                        # same seed, same text

    code, out, _ = run(capsys, "evaluate", "--checkpoint", tmp_path / "out", "--max-batches",
                       "2", "--batch-size", "4")
    result = json.loads(out)
    assert code == 0 and result["split"] == "val" and result["tokens_scored"] == 2 * 4 * 16
    assert result["perplexity"] == pytest.approx(perplexity(result["loss"]))
    assert result["loss"] == pytest.approx(metrics["val_loss_windows"], rel=0.3)


def test_gpt_word_and_bpe_tokenizers_on_a_corpus_file(capsys, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    for kind, fmt in (("word", "WordTokenizer"), ("bpe", "BPETokenizer")):
        train(capsys, tmp_path, "gpt", "--corpus", corpus, "--tokenizer", kind, "--vocab-size",
              "280", "--max-iters", "4", "--eval-interval", "4", "--block-size", "8",
              out=kind)
        model, info = load_model(tmp_path / kind)
        assert type(info["tokenizer"]).__name__ == fmt
        code, out, _ = run(capsys, "generate", "--checkpoint", tmp_path / kind, "--prompt",
                           "the cat", "--max-new-tokens", "5", "--temperature", "0")
        assert code == 0 and out.startswith("the cat")
    code, out, _ = run(capsys, "evaluate", "--checkpoint", tmp_path / "bpe", "--corpus", corpus,
                       "--max-batches", "1")
    assert code == 0 and json.loads(out)["split"] == str(corpus)


def test_resume_continues_to_the_same_losses(capsys, tmp_path):
    common = ["--max-iters", "6", "--eval-interval", "3", "--lr-decay-iters", "6",
              "--warmup-iters", "2", "--block-size", "8", "--dropout", "0.1", "--corpus"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    train(capsys, tmp_path, "gpt", *common, corpus, out="straight")
    half = common.copy()
    half[1] = "3"
    train(capsys, tmp_path, "gpt", *half, corpus, out="resumed")
    train(capsys, tmp_path, "gpt", *common, corpus, "--resume", out="resumed")
    straight = load_json(tmp_path / "straight" / "log.json")
    resumed = load_json(tmp_path / "resumed" / "log.json")
    assert [r["loss"] for r in resumed["train"]] == [r["loss"] for r in straight["train"]]
    assert resumed["eval"] == straight["eval"]
    # resuming with other arguments is refused
    code, out, err = run(capsys, "train", "gpt", *TINY, *common, corpus, "--n-embd", "32",
                         "--resume", "--out", tmp_path / "resumed")
    assert_one_line_error(code, out, err, r"trained with another model config")


# --- rnnlm -------------------------------------------------------------------------------------
def test_train_rnnlm_on_a_train_valid_test_folder(capsys, tmp_path):
    folder = tmp_path / "lm"
    folder.mkdir()
    lines = TEXT.replace(".", " .").splitlines()
    (folder / "train.txt").write_text("\n".join(lines[:100]) + "\n")
    (folder / "valid.txt").write_text("\n".join(lines[100:110]) + "\n")
    (folder / "test.txt").write_text("\n".join(lines[110:]) + "\n")
    metrics, _ = train(capsys, tmp_path, "rnnlm", "--corpus", folder, "--cell", "gru",
                       "--bptt", "6", "--n-hidden", "16", "--max-iters", "30",
                       "--eval-interval", "10", "--lr", "1e-2")
    vocab = metrics["vocab_size"]
    assert metrics["val_perplexity"] < vocab and metrics["test_perplexity"] < vocab
    model, info = load_model(tmp_path / "out")
    assert info["model_config"]["cell"] == "gru" and info["block_size"] == 6
    code, out, _ = run(capsys, "generate", "--checkpoint", tmp_path / "out", "--prompt",
                       "the cat", "--max-new-tokens", "6", "--temperature", "0")
    assert code == 0 and out.startswith("the cat")
    code, out, _ = run(capsys, "evaluate", "--checkpoint", tmp_path / "out", "--split", "test")
    assert json.loads(out)["perplexity"] == pytest.approx(metrics["test_perplexity"])


# --- classifier --------------------------------------------------------------------------------
def test_train_classifier_on_stdlib_docstrings(capsys, tmp_path):
    metrics, _ = train(capsys, tmp_path, "classifier", "--max-iters", "60", "--eval-interval",
                       "30", "--batch-size", "16", "--max-len", "24", "--lr", "1e-2")
    assert metrics["dev_examples"] > 50 and 0 <= metrics["dev_accuracy"] <= 1
    assert metrics["dev_accuracy"] > 0.4          # 4 classes: chance is about 0.3
    code, out, _ = run(capsys, "evaluate", "--checkpoint", tmp_path / "out")
    assert json.loads(out)["accuracy"] == pytest.approx(metrics["dev_accuracy"])
    code, out, _ = run(capsys, "generate", "--checkpoint", tmp_path / "out", "--prompt",
                       "Run the event loop until the future is done.")
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert code == 0 and sorted(r[0] for r in rows) == ["asyncio", "email", "unittest", "xml"]
    assert sum(float(r[1]) for r in rows) == pytest.approx(1, abs=1e-3)


def test_train_transformer_classifier_on_a_tsv_file(capsys, tmp_path):
    rows = [f"{'great fine good' if i % 2 else 'awful bad poor'} film {i}\t{i % 2}"
            for i in range(60)]
    (tmp_path / "data.tsv").write_text("text\tlabel\n" + "\n".join(rows) + "\n")
    metrics, _ = train(capsys, tmp_path, "classifier", "--data", tmp_path / "data.tsv",
                       "--model", "transformer", "--min-count", "1", "--max-iters", "40",
                       "--eval-interval", "20", "--lr", "1e-2")
    assert metrics["dev_examples"] == 6 and metrics["dev_accuracy"] == 1.0


# --- translator --------------------------------------------------------------------------------
def test_train_translator_on_dates_reports_bleu(capsys, tmp_path):
    metrics, _ = train(capsys, tmp_path, "translator", "--num-pairs", "200", "--max-iters", "8",
                       "--eval-interval", "4", "--bleu-sentences", "6", "--max-len", "32")
    assert metrics["test_sentences"] == 6 and metrics["test_search"] == "greedy"
    assert 0 <= metrics["test_bleu"] <= 100
    model, info = load_model(tmp_path / "out")
    assert info["data"]["unit"] == "char" and type(model).__name__ == "Seq2SeqTransformer"
    code, out, _ = run(capsys, "evaluate", "--checkpoint", tmp_path / "out", "--max-sentences",
                       "6")
    assert json.loads(out)["bleu"] == pytest.approx(metrics["test_bleu"])
    code, out, _ = run(capsys, "generate", "--checkpoint", tmp_path / "out", "--prompt",
                       "September 27, 1994", "--beam", "2")
    assert code == 0 and len(out.splitlines()) == 1


def test_translation_bleu_counts_characters_for_dates():
    from tinylm.cli.scores import _tokens_for_bleu
    from tinylm.text import CharTokenizer
    tok = CharTokenizer.train(["1994-09-27"])
    assert _tokens_for_bleu(tok, "1994-09", "char") == list("1994-09")
    assert _tokens_for_bleu(tok, tok.encode("27"), "char") == ["2", "7"]


# --- the real corpora (skipped when ../shared/data is absent) ---------------------------------
@pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"real corpora not at {DATA_DIR}")
def test_real_data_tatoeba_and_rt_polarity(capsys, tmp_path):
    metrics, _ = train(capsys, tmp_path, "translator", "--data", "tatoeba", "--src", "fr",
                       "--tgt", "en", "--max-iters", "2", "--eval-interval", "2",
                       "--bleu-sentences", "3", "--max-len", "12", out="tatoeba")
    _, info = load_model(tmp_path / "tatoeba")
    assert info["data"]["src"] == "fr" and metrics["test_sentences"] == 3
    assert type(info["src_tokenizer"]).__name__ == "WordTokenizer"
    metrics, _ = train(capsys, tmp_path, "classifier", "--data", "rt-polarity", "--max-iters",
                       "2", "--eval-interval", "2", "--max-len", "8", out="rt")
    assert metrics["dev_examples"] == 1066
