"""tinylm.datasets: file formats, bad input, seeded splits, the two file-free tasks.

Everything runs on small files written here; the tests on the real corpora in
../shared/data skip when it is absent (``DATA_DIR``)."""
import datetime
import re

import numpy as np
import pytest

from tinylm.datasets import (DATA_DIR, WhitespaceTokenizer, date_pairs, format_date,
                             load_labelled_tsv, load_multi30k, load_rt_polarity, load_sst2,
                             load_tatoeba, load_word_lm, nanogpt_split, stdlib_docstrings,
                             word_tokens)
from tinylm.datasets.synthetic import DATE_FORMATS, STDLIB_PACKAGES
from tinylm.errors import IndexRangeError, TinyLMError

HAVE_DATA = DATA_DIR.is_dir()
needs_data = pytest.mark.skipif(not HAVE_DATA, reason=f"real corpora not at {DATA_DIR}")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- sentiment --------------------------------------------------------------------------------
SST = "sentence\tlabel\nit 's a charming journey . \t1\nthe plot is dull \t0\n"


def test_sst2_reads_glue_tsv_from_file_folder_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLM_CACHE", str(tmp_path / "cache"))
    write(tmp_path / "sst" / "dev.tsv", SST)
    expected = (["it 's a charming journey .", "the plot is dull"], [1, 0])
    assert load_sst2(tmp_path / "sst", split="dev") == expected
    assert load_sst2(tmp_path / "sst" / "dev.tsv") == expected
    url = (tmp_path / "sst").as_uri()                 # a folder URL: {url}/dev.tsv, cached
    assert load_sst2(url, split="dev") == expected
    assert list((tmp_path / "cache" / "downloads").glob("*dev.tsv"))


@pytest.mark.parametrize("text, message", [
    ("the plot is dull\t0\n", "must start with the header"),
    ("sentence\tlabel\nno tab here\n", "line 2: expected text<TAB>integer label"),
    ("sentence\tlabel\nfine\t1\nbad label\tx\n", "line 3"),
    ("sentence\tlabel\n", "no examples"),
])
def test_sst2_bad_lines_name_file_and_line(tmp_path, text, message):
    path = write(tmp_path / "train.tsv", text)
    with pytest.raises(TinyLMError, match=message):
        load_sst2(path)


def test_sst2_label_out_of_range_empty_and_missing_files(tmp_path):
    with pytest.raises(IndexRangeError, match=r"line 3: label must be in 0\.\.1, got 2"):
        load_sst2(write(tmp_path / "a.tsv", "sentence\tlabel\ngood\t1\nodd\t2\n"))
    with pytest.raises(TinyLMError, match="empty"):
        load_sst2(write(tmp_path / "b.tsv", ""))
    with pytest.raises(TinyLMError, match="does not exist"):
        load_sst2(tmp_path / "missing.tsv")
    with pytest.raises(TinyLMError, match="split must be one of"):
        load_sst2(tmp_path, split="test")


def test_labelled_tsv_header_detection_and_class_range(tmp_path):
    with_header = write(tmp_path / "h.tsv", "text\tlabel\na b\t2\nc\t0\n")
    assert load_labelled_tsv(with_header) == (["a b", "c"], [2, 0])
    no_header = write(tmp_path / "n.tsv", "a b\t2\nc\t0\n\n")       # trailing blank line
    assert load_labelled_tsv(no_header) == (["a b", "c"], [2, 0])
    with pytest.raises(IndexRangeError, match=r"line 2: label must be in 0\.\.1, got 2"):
        load_labelled_tsv(with_header, num_classes=2)
    with pytest.raises(IndexRangeError, match="got -1"):
        load_labelled_tsv(write(tmp_path / "neg.tsv", "x\t-1\n"))
    with pytest.raises(TinyLMError, match="expected a file or URL"):
        load_labelled_tsv(None)


def make_rt(folder, n=20):
    write(folder / "rt-polarity.pos", "".join(f"good film {i}\n" for i in range(n)))
    write(folder / "rt-polarity.neg", "".join(f"bad film {i}\n" for i in range(n)))
    return folder


def test_rt_polarity_seeded_stratified_split(tmp_path):
    folder = make_rt(tmp_path / "rt")
    texts, labels = load_rt_polarity(folder, split="all")
    assert len(texts) == 40 and labels == [1] * 20 + [0] * 20
    train = load_rt_polarity(folder, "train", seed=3)
    dev = load_rt_polarity(folder, "dev", seed=3)
    assert len(train[0]) == 36 and len(dev[0]) == 4
    assert sorted(train[0] + dev[0]) == sorted(texts)           # disjoint and complete
    assert sum(dev[1]) == 2                                      # 50/50 kept in dev
    assert load_rt_polarity(folder, "dev", seed=3) == dev        # same seed, same split
    assert load_rt_polarity(folder, "dev", seed=4) != dev
    for text, label in zip(*dev):                                # labels follow the texts
        assert text.startswith("good") == (label == 1)


def test_rt_polarity_errors(tmp_path):
    write(tmp_path / "rt" / "rt-polarity.pos", "good\n")
    with pytest.raises(TinyLMError, match="rt-polarity.neg does not exist"):
        load_rt_polarity(tmp_path / "rt", "all")
    with pytest.raises(TinyLMError, match="must be a folder"):
        load_rt_polarity(tmp_path / "rt" / "rt-polarity.pos")
    with pytest.raises(TinyLMError, match="dev_fraction"):
        load_rt_polarity(tmp_path / "rt", dev_fraction=1.5)


# --- translation ------------------------------------------------------------------------------
def test_tatoeba_pairs_reverse_and_split(tmp_path):
    lines = [f"Go {i}.\tVa {i} !" for i in range(50)] + ["Hi.\tSalut.\tCC-BY 2.0 (France)"]
    path = write(tmp_path / "eng-fra.txt", "\n".join(lines) + "\n")
    pairs = load_tatoeba(path, split="all")
    assert pairs[0] == ("Go 0.", "Va 0 !") and pairs[-1] == ("Hi.", "Salut.")
    assert load_tatoeba(tmp_path, split="all", reverse=True)[0] == ("Va 0 !", "Go 0.")
    parts = [load_tatoeba(path, split=s, seed=1) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [41, 5, 5]
    assert sorted(sum(parts, [])) == sorted(pairs)
    assert load_tatoeba(path, split="test", seed=2) != parts[2]


def test_tatoeba_bad_line_and_empty_file(tmp_path):
    with pytest.raises(TinyLMError, match=r"line 2: expected English<TAB>French"):
        load_tatoeba(write(tmp_path / "a.txt", "Go.\tVa !\nno tab\n"))
    with pytest.raises(TinyLMError, match="line 1"):
        load_tatoeba(write(tmp_path / "b.txt", "Go.\t \n"))
    with pytest.raises(TinyLMError, match="empty"):
        load_tatoeba(write(tmp_path / "c.txt", "\n\n"))


def test_multi30k_aligned_files_and_errors(tmp_path):
    m = tmp_path / "m30k"
    write(m / "test_2016_flickr.en", "A dog runs.\nTwo men talk.\n")
    write(m / "test_2016_flickr.de", "Ein Hund rennt.\nZwei Männer reden.\n")
    assert load_multi30k(m, "test", "en", "de") == [("A dog runs.", "Ein Hund rennt."),
                                                    ("Two men talk.", "Zwei Männer reden.")]
    assert load_multi30k(m, "test", "de", "en")[1] == ("Zwei Männer reden.", "Two men talk.")
    write(m / "val.en", "one\ntwo\n")
    write(m / "val.de", "eins\n")
    with pytest.raises(TinyLMError, match="has 2 lines but .* has 1"):
        load_multi30k(m, "val")
    write(m / "train.en", "one\n\n")
    write(m / "train.de", "eins\nzwei\n")
    with pytest.raises(TinyLMError, match="line 2 of .*train.en is empty"):
        load_multi30k(m, "train")
    with pytest.raises(TinyLMError, match="src must be one of"):
        load_multi30k(m, "test", src="es")
    with pytest.raises(TinyLMError, match="split must be one of"):
        load_multi30k(m, "dev")


# --- language modelling -----------------------------------------------------------------------
def test_nanogpt_split_is_first_90_percent():
    text = "abcdefghij" * 10
    train, val = nanogpt_split(text)
    assert train == text[:90] and val == text[90:]
    with pytest.raises(TinyLMError, match="too few"):
        nanogpt_split("a")
    with pytest.raises(TinyLMError, match="val_fraction"):
        nanogpt_split(text, 0)


def test_word_lm_folder_and_single_file(tmp_path):
    assert word_tokens(["a b", "", " c "]) == ["a", "b", "<eos>", "c", "<eos>"]
    folder = tmp_path / "ptb"
    write(folder / "ptb.train.txt", " the cat <unk> \n the dog \n")
    write(folder / "ptb.valid.txt", " a cat \n")
    write(folder / "ptb.test.txt", " the end \n")
    d = load_word_lm(folder)
    assert d == {"train": ["the", "cat", "<unk>", "<eos>", "the", "dog", "<eos>"],
                 "val": ["a", "cat", "<eos>"], "test": ["the", "end", "<eos>"]}
    single = load_word_lm(write(tmp_path / "one.txt", "w " * 18 + "\n"))   # 19 tokens
    assert len(single["train"]) == 17 and len(single["val"]) == 2 and single["test"] is None
    write(tmp_path / "novalid" / "train.txt", "a b\n")
    with pytest.raises(TinyLMError, match="has no val file"):
        load_word_lm(tmp_path / "novalid")
    with pytest.raises(TinyLMError, match="does not exist"):
        load_word_lm(tmp_path / "nothing")


def test_whitespace_tokenizer_maps_unk_and_eos():
    tok = WhitespaceTokenizer.train(["the cat <unk>", "the dog"])
    assert tok.vocab.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    ids = tok.encode("the cat\nthe bird")
    assert tok.vocab.itos[ids[2]] == "<eos>" and ids[-1] == tok.vocab["<unk>"]
    assert tok.encode("x <unk>") == [1, 1]                      # PTB's <unk> IS the unk id
    assert tok.decode(ids) == "the cat\nthe <unk>"
    again = WhitespaceTokenizer.from_dict(tok.to_dict())
    assert again.encode("the dog") == tok.encode("the dog")


# --- synthetic --------------------------------------------------------------------------------
def test_format_date_examples():
    d = datetime.date(1994, 9, 27)
    got = [format_date(d, f) for f in DATE_FORMATS]
    assert got == ["September 27, 1994", "september 27, 1994", "Sep 27, 1994",
                   "27 September 1994", "Tuesday, September 27, 1994",
                   "TUESDAY, SEPTEMBER 27, 1994", "9/27/94", "27.09.1994"]


def test_date_pairs_deterministic_and_consistent():
    pairs = date_pairs(300, seed=5)
    assert pairs == date_pairs(300, seed=5) and pairs != date_pairs(300, seed=6)
    for written, iso in pairs:
        date = datetime.date.fromisoformat(iso)
        assert 1950 <= date.year <= 2049
        assert written in {format_date(date, f) for f in DATE_FORMATS}
        if re.fullmatch(r"\d+/\d+/\d\d", written):       # two-digit years: one reading only
            yy = int(written[-2:])
            assert date.year == (1900 + yy if yy >= 50 else 2000 + yy)
    assert len({format_date(datetime.date.fromisoformat(i), "{m}") for _, i in pairs}) == 12
    with pytest.raises(TinyLMError, match="positive integer"):
        date_pairs(0)


def test_stdlib_docstrings_task():
    texts, labels = stdlib_docstrings(split="all")
    assert len(texts) > 400 and set(labels) == set(range(len(STDLIB_PACKAGES)))
    assert len(set(texts)) == len(texts)                       # ambiguous ones dropped
    assert all(len(t.split()) >= 4 for t in texts)
    parts = [stdlib_docstrings(split=s, seed=1) for s in ("train", "val", "test")]
    assert sorted(sum((p[0] for p in parts), [])) == sorted(texts)
    counts = np.bincount(parts[1][1])                          # stratified: every class in val
    assert len(counts) == len(STDLIB_PACKAGES) and counts.min() > 0
    assert stdlib_docstrings(split="val", seed=1) == parts[1]
    with pytest.raises(TinyLMError, match="no docstrings found"):
        stdlib_docstrings(("json", "no_such_package_here"))
    with pytest.raises(TinyLMError, match="two distinct"):
        stdlib_docstrings(("json",))


# --- the real corpora (counts from shared/data/README.md) -------------------------------------
@needs_data
def test_real_sentiment_counts():
    texts, labels = load_sst2(split="dev")
    assert (len(texts), sum(labels)) == (872, 444)
    train, dev = (load_rt_polarity(split=s) for s in ("train", "dev"))
    assert len(train[0]) + len(dev[0]) == 10662 and sum(dev[1]) * 2 == len(dev[1])


@needs_data
def test_real_translation_and_lm_counts():
    assert len(load_tatoeba(split="all")) == 18065
    assert len(load_multi30k(split="test", src="en", tgt="fr")) == 1000
    ptb = load_word_lm(DATA_DIR / "lm" / "ptb")
    assert (len(ptb["val"]), len(ptb["test"])) == (73760, 82430)
