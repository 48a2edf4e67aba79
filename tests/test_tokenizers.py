"""Tokenizers (A2 step 2): one interface; round trips (hypothesis), training, saving, bad input."""
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinylm.errors import DTypeError, IndexRangeError, TinyLMError
from tinylm.text import BPETokenizer, CharTokenizer, WordTokenizer, load_tokenizer
from tinylm.text.tokenizers import PRETOKENIZE_RE, UNK_CHAR

SEEDS = Path("/work/shared/seeds")
CORPUS = ["The cat sat on the mat. The dog sat on the log!",
          "Don't stop: well-known cats (and dogs) sat 42 times, the end.",
          "低资源语言的分词 works too; naïve café ☕."]


@pytest.fixture(scope="module")
def char_tok():
    return CharTokenizer.train(CORPUS)


@pytest.fixture(scope="module")
def word_tok():
    return WordTokenizer.train(CORPUS)


@pytest.fixture(scope="module")
def bpe_tok():
    return BPETokenizer.train(CORPUS * 3, vocab_size=330, specials=("<eos>",))


# --- CharTokenizer ------------------------------------------------------------------------
@given(st.text(max_size=80))
@settings(max_examples=150, deadline=None)
def test_char_round_trip_with_unknowns_as_documented(char_tok, text):
    expected = "".join(c if c in char_tok else UNK_CHAR for c in text)
    ids = char_tok.encode(text)
    assert len(ids) == len(text)
    assert char_tok.decode(ids) == expected


@given(st.text(alphabet="".join(sorted(set("".join(CORPUS)))), max_size=80))
@settings(max_examples=60, deadline=None)
def test_char_round_trip_is_exact_for_seen_characters(char_tok, text):
    assert char_tok.decode(char_tok.encode(text)) == text


def test_char_table_specials_and_order(char_tok):
    assert char_tok.vocab.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert char_tok.vocab_size == 4 + len(set("".join(CORPUS)))
    assert char_tok.vocab.itos[4] == " "                          # the most frequent character
    assert char_tok.decode([0, 2, char_tok.vocab["a"], 3, 1]) == "a" + UNK_CHAR
    assert char_tok.encode("a\x00") == [char_tok.vocab["a"], 1]


def test_char_min_count_and_max_size():
    tok = CharTokenizer.train(["aaab", "bc"], min_count=2)
    assert tok.vocab.itos[4:] == ["a", "b"] and tok.decode(tok.encode("abc")) == "ab" + UNK_CHAR
    assert CharTokenizer.train("aaabbc", max_size=6).vocab.itos[4:] == ["a", "b"]


# --- WordTokenizer ------------------------------------------------------------------------
def test_word_splits_keep_punctuation(word_tok):
    assert word_tok.tokenize("Don't stop: well-known (cats).") == \
        ["Don't", "stop", ":", "well-known", "(", "cats", ")", "."]


def test_word_decode_encode_exact_on_canonical_text(word_tok):
    for text in ["The cat sat on the mat.",
                 "Don't stop: well-known cats (and dogs) sat, the end!"]:
        assert word_tok.decode(word_tok.encode(text)) == text


def test_word_unknowns_and_specials(word_tok):
    ids = word_tok.encode("The zebra sat.")
    assert ids[1] == word_tok.vocab.unk_id
    assert word_tok.decode(ids) == "The <unk> sat."
    assert word_tok.decode([word_tok.vocab.bos_id] + ids + [word_tok.vocab.eos_id, 0]) == \
        "The <unk> sat."


@given(st.data())
@settings(max_examples=100, deadline=None)
def test_word_reencoding_a_decoded_id_list_is_stable(word_tok, data):
    ids = data.draw(st.lists(st.integers(4, word_tok.vocab_size - 1), max_size=30))
    assert word_tok.encode(word_tok.decode(ids)) == ids


def test_word_min_count_max_size_lower():
    texts = ["a a a b b c", "A B"]
    assert WordTokenizer.train(texts, min_count=2).vocab.itos[4:] == ["a", "b"]
    assert WordTokenizer.train(texts, max_size=5).vocab.itos[4:] == ["a"]
    low = WordTokenizer.train(texts, lower=True)
    assert low.vocab.counts[low.vocab["a"]] == 4 and low.encode("A") == low.encode("a")
    with pytest.raises(TinyLMError, match="min_count=9"):
        WordTokenizer.train(texts, min_count=9)


# --- BPETokenizer -------------------------------------------------------------------------
@given(st.text(max_size=120))
@settings(max_examples=200, deadline=None)
def test_bpe_round_trip_is_exact_on_any_text(bpe_tok, text):
    ids = bpe_tok.encode(text)
    assert all(0 <= i < bpe_tok.vocab_size - 1 for i in ids)       # never the special
    assert bpe_tok.decode(ids) == text


def test_bpe_round_trip_edge_cases(bpe_tok):
    for text in ["", " ", "\n\n\t ", "a_b__c", "x\x00y", "\ud800 lone surrogate", "🧠🤖 emoji",
                 "e\u0301 combining", "\r\n", "'s 've 'LL", "日本語テキスト"]:
        assert bpe_tok.decode(bpe_tok.encode(text)) == text, repr(text)


def test_bpe_chinese_seed_documents_round_trip():
    files = sorted(SEEDS.glob("*.txt")) if SEEDS.is_dir() else []
    if not files:
        pytest.skip(f"{SEEDS} is absent")
    texts = [f.read_text(encoding="utf-8") for f in files]
    tok = BPETokenizer.train(texts[:2], vocab_size=600)
    for text in texts:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert len(ids) < len(text.encode("utf-8"))                # merges compress


def naive_bpe(texts, n_merges):
    """BPE by the book, recounting every pair after every merge (the reference)."""
    words = Counter(p for t in texts for p in PRETOKENIZE_RE.findall(t))
    seqs = {w: list(w.encode()) for w in words}
    merges = []
    for k in range(n_merges):
        pairs = Counter()
        for w, ids in seqs.items():
            for p in zip(ids, ids[1:]):
                pairs[p] += words[w]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        for w, ids in seqs.items():
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == best:
                    out.append(256 + k)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            seqs[w] = out
    return merges


def test_bpe_incremental_training_equals_naive_recounting():
    texts = CORPUS * 2 + ["aaaa aaa aa a banana bandana", "ababab abab"]
    tok = BPETokenizer.train(texts, vocab_size=256 + 60)
    assert [tuple(m) for m in tok.merges] == naive_bpe(texts, 60)


def test_bpe_first_merge_by_hand_and_no_merge_crosses_a_word():
    tok = BPETokenizer.train("aaab aaab xy", vocab_size=258)
    # "aa" occurs 4 times; then "aa"+"a" and "a"+"b" tie (2 each): the smaller pair wins
    assert tok.merges == [(97, 97), (97, 98)]
    assert tok.encode("aaab") == [256, 257]
    big = BPETokenizer.train(CORPUS * 5, vocab_size=400)
    for piece in big.pieces[256:]:
        text = piece.decode("utf-8", errors="ignore")
        assert len(PRETOKENIZE_RE.findall(text)) <= 1, text          # within one piece


def test_bpe_stops_early_and_is_deterministic():
    tok = BPETokenizer.train("ab ab", vocab_size=1000)
    assert tok.vocab_size < 1000 and tok.merges[0] == (97, 98)
    again = BPETokenizer.train(CORPUS * 3, vocab_size=330, specials=("<eos>",))
    assert again.merges == BPETokenizer.train(CORPUS * 3, vocab_size=330,
                                              specials=("<eos>",)).merges


def test_bpe_more_merges_compress_more():
    text = " ".join(CORPUS * 4)
    lengths = [len(BPETokenizer.train(text, vocab_size=v).encode(text)) for v in (256, 280, 320)]
    assert lengths[0] == len(text.encode()) and lengths[0] > lengths[1] > lengths[2]


def test_bpe_specials(bpe_tok):
    eos = bpe_tok.special_id("<eos>")
    assert eos == bpe_tok.vocab_size - 1
    assert eos not in bpe_tok.encode("<eos>")
    assert bpe_tok.decode(bpe_tok.encode("hi") + [eos]) == "hi<eos>"
    with pytest.raises(TinyLMError, match="no special token '<bos>'"):
        bpe_tok.special_id("<bos>")


def test_bpe_decode_of_a_cut_character_is_replaced(bpe_tok):
    ids = bpe_tok.encode("好")
    assert bpe_tok.decode(list(b"\xe5")) == "\ufffd" and bpe_tok.decode(ids) == "好"


# --- the shared interface ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["char_tok", "word_tok", "bpe_tok"])
def test_save_load_round_trip(request, tmp_path, name):
    tok = request.getfixturevalue(name)
    path = tmp_path / f"{name}.json"
    tok.save(path)
    for loaded in (type(tok).load(path), load_tokenizer(path)):
        assert type(loaded) is type(tok) and loaded.vocab_size == tok.vocab_size
        text = "The cat sat, naïve 好 zebra."
        assert loaded.encode(text) == tok.encode(text)
    assert "pickle" not in path.read_text()


@pytest.mark.parametrize("name", ["char_tok", "word_tok", "bpe_tok"])
def test_bad_input_is_a_clear_error(request, name):
    tok = request.getfixturevalue(name)
    with pytest.raises(DTypeError, match="expected a str, got bytes"):
        tok.encode(b"abc")
    with pytest.raises(IndexRangeError, match=f"id {tok.vocab_size} is outside"):
        tok.decode([0, tok.vocab_size])
    with pytest.raises(DTypeError, match="ids must be integers, got 1.5"):
        tok.decode([1.5])
    with pytest.raises(DTypeError, match="integer ids"):
        tok.decode(np.array([1.0]))
    assert tok.decode(np.array([], dtype=np.int64)) == ""
    assert tok.decode(np.array(tok.encode("cat"))) == tok.decode(tok.encode("cat"))


@pytest.mark.parametrize("cls", [CharTokenizer, WordTokenizer])
def test_training_on_nothing_is_a_clear_error(cls):
    with pytest.raises(TinyLMError, match="corpus is empty"):
        cls.train([])
    with pytest.raises(DTypeError, match="text 1 is a int"):
        cls.train(["ok", 3])


def test_bpe_bad_training_input():
    with pytest.raises(TinyLMError, match="corpus is empty"):
        BPETokenizer.train([""], vocab_size=300)
    with pytest.raises(TinyLMError, match="vocab_size must be an integer >= 256"):
        BPETokenizer.train(["abc"], vocab_size=100)
    with pytest.raises(TinyLMError, match="merge 0 must be a pair of ids below 256"):
        BPETokenizer([(300, 1)])


def test_loading_a_corrupt_or_foreign_file(tmp_path, bpe_tok, char_tok):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "tinylm.BPETokenizer", "merges": [[1, 2]')
    with pytest.raises(TinyLMError, match="not valid UTF-8 JSON"):
        BPETokenizer.load(bad)
    char_tok.save(bad)
    with pytest.raises(TinyLMError, match="expected format 'tinylm.BPETokenizer'"):
        BPETokenizer.load(bad)
    bad.write_text('{"format": "tinylm.BPETokenizer", "version": 1}')
    with pytest.raises(TinyLMError, match="is corrupt"):
        BPETokenizer.load(bad)
    bad.write_text('{"format": "tinylm.BPETokenizer", "merges": [], "specials": [], '
                   '"pretokenize": "other"}')
    with pytest.raises(TinyLMError, match="another pre-tokenization pattern"):
        BPETokenizer.load(bad)
    bad.write_text('[1, 2]')
    with pytest.raises(TinyLMError, match="not a saved tinylm tokenizer"):
        load_tokenizer(bad)
    with pytest.raises(TinyLMError, match="does not exist"):
        load_tokenizer(tmp_path / "missing.json")
