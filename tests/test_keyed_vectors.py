"""KeyedVectors: lookups, most_similar, the two evaluations, the file formats, and gensim parity."""
import math

import numpy as np
import pytest

from tinylm.embeddings import KeyedVectors, VocabularyError
from tinylm.embeddings.keyed_vectors import _betainc, _correlation, _rankdata
from tinylm.errors import ShapeError, TinyLMError


def random_kv(n=50, d=8, seed=0):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(n)]
    return KeyedVectors(words, rng.standard_normal((n, d)).astype(np.float32),
                        counts=np.arange(n, 0, -1))


def test_lookups_and_unknown_word_error():
    kv = random_kv()
    assert len(kv) == 50 and kv.vector_size == 8 and "w3" in kv and "zz" not in kv
    assert kv.get_index("w3") == 3 and kv.key_to_index["w7"] == 7
    np.testing.assert_array_equal(kv["w3"], kv.vectors[3])
    assert kv[["w1", "w2"]].shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(kv.get_vector("w4", norm=True)), 1.0, rtol=1e-6)
    assert kv.get_vecattr("w0", "count") == 50
    with pytest.raises(KeyError) as exc:
        kv["xyz"]
    assert isinstance(exc.value, VocabularyError) and isinstance(exc.value, TinyLMError)
    assert str(exc.value) == "'xyz' is not in the vocabulary (50 words)"
    with pytest.raises(VocabularyError, match="'nope'"):
        kv.most_similar("nope")


def test_bad_construction():
    with pytest.raises(ShapeError, match="3 keys but 2 vectors"):
        KeyedVectors(["a", "b", "c"], np.zeros((2, 4)))
    with pytest.raises(ShapeError, match="2-D"):
        KeyedVectors(["a"], np.zeros(4))
    with pytest.raises(TinyLMError, match="'a' occurs twice"):
        KeyedVectors(["a", "b", "a"], np.zeros((3, 4)))


def test_similarity_and_most_similar_match_brute_force():
    kv = random_kv()
    v = kv.vectors.astype(np.float64)
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert kv.similarity("w1", "w2") == pytest.approx(unit[1] @ unit[2], rel=1e-5)
    target = unit[1] + unit[2] - unit[3]
    cos = unit @ (target / np.linalg.norm(target))
    order = [i for i in np.argsort(-cos) if i not in (1, 2, 3)][:5]
    got = kv.most_similar(positive=["w1", "w2"], negative=["w3"], topn=5)
    assert [w for w, _ in got] == [f"w{i}" for i in order]
    np.testing.assert_allclose([c for _, c in got], cos[order], rtol=1e-5)
    # weights, a raw vector, restrict_vocab and topn=None
    weighted = kv.most_similar(positive=[("w1", 2.0)], topn=3)
    assert [w for w, _ in weighted] == [w for w, _ in kv.most_similar("w1", topn=3)]
    assert kv.most_similar(positive=[kv["w5"]], topn=1)[0][0] == "w5"
    assert all(int(w[1:]) < 10 for w, _ in kv.most_similar("w1", topn=5, restrict_vocab=10))
    assert kv.most_similar("w1", topn=None).shape == (50,)


def test_betainc_and_p_values_against_closed_forms():
    for x in (0.01, 0.3, 0.77, 0.999):
        assert _betainc(1.0, 1.0, x) == pytest.approx(x, rel=1e-12)
        assert _betainc(3.5, 1.0, x) == pytest.approx(x ** 3.5, rel=1e-10)
        assert _betainc(2.0, 2.0, x) == pytest.approx(3 * x ** 2 - 2 * x ** 3, rel=1e-10)
    # n = 3: t with 1 degree of freedom is Cauchy, P(|T| >= t) = 1 - 2 atan(t) / pi
    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    r, p = _correlation(x, y)
    t = abs(r) * math.sqrt(1 / (1 - r * r))
    assert r == pytest.approx(0.5) and p == pytest.approx(1 - 2 * math.atan(t) / math.pi, rel=1e-10)
    np.testing.assert_array_equal(_rankdata(np.array([3.0, 1.0, 3.0, 2.0, 3.0])), [4, 1, 4, 2, 4])


def test_evaluate_word_pairs_on_a_small_file(tmp_path):
    kv = random_kv()
    rng = np.random.default_rng(1)
    pairs = [(f"W{i}", f"w{i + 1}", float(rng.uniform(0, 10))) for i in range(0, 40, 2)]
    lines = ["# a comment", "not a pair line"] + [f"{a}\t{b}\t{s}" for a, b, s in pairs]
    lines += ["w1\tunknownword\t5.0"]
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n")
    pearson, spearman, oov = kv.evaluate_word_pairs(path)
    model = np.array([kv.similarity(a.lower(), b) for a, b, _ in pairs])
    gold = np.array([s for _, _, s in pairs])
    assert pearson[0] == pytest.approx(np.corrcoef(gold, model)[0, 1], rel=1e-6)
    ranks = lambda a: np.argsort(np.argsort(a))          # no ties here
    assert spearman.statistic == pytest.approx(np.corrcoef(ranks(gold), ranks(model))[0, 1],
                                               rel=1e-6)
    assert oov == pytest.approx(100 / 21)
    _, _, oov_dummy = kv.evaluate_word_pairs(path, dummy4unknown=True)
    assert oov_dummy == pytest.approx(100 / 21)
    # case-sensitive: "W0", "W2"... are now unknown, so no usable pair is left
    with pytest.raises(TinyLMError, match="no pair .* has both words in the vocabulary"):
        kv.evaluate_word_pairs(path, case_insensitive=False)
    with pytest.raises(TinyLMError, match="does not exist"):
        kv.evaluate_word_pairs(tmp_path / "missing.tsv")


def test_evaluate_word_analogies_on_constructed_vectors(tmp_path):
    # the vectors make b - a + c = d exactly for the first section's questions
    basis = np.eye(6, dtype=np.float32)
    words = {"man": basis[0], "woman": basis[0] + basis[1], "king": basis[2],
             "queen": basis[2] + basis[1], "paris": basis[3], "france": basis[4],
             "rome": basis[5], "italy": basis[4] + 0.1 * basis[5]}
    kv = KeyedVectors(list(words), np.stack(list(words.values())))
    path = tmp_path / "questions.txt"
    path.write_text(": gender\nman woman king queen\nMAN KING woman queen\n"
                    ": capitals\nparis france rome italy\nparis france rome berlin\n"
                    "bad line\n")
    score, sections = kv.evaluate_word_analogies(path)
    assert [s["section"] for s in sections] == ["gender", "capitals", "Total accuracy"]
    assert sections[0]["correct"] == [("MAN", "WOMAN", "KING", "QUEEN"),
                                      ("MAN", "KING", "WOMAN", "QUEEN")]
    total = sections[-1]
    assert len(total["correct"]) + len(total["incorrect"]) == 3     # berlin is unknown: skipped
    assert score == len(total["correct"]) / 3
    score_dummy, sections_dummy = kv.evaluate_word_analogies(path, dummy4unknown=True)
    assert len(sections_dummy[-1]["incorrect"]) == len(total["incorrect"]) + 1
    bad = tmp_path / "noheader.txt"
    bad.write_text("man woman king queen\n")
    with pytest.raises(TinyLMError, match="before any ': section' header"):
        kv.evaluate_word_analogies(bad)


def test_save_load_npz_and_word2vec_formats(tmp_path):
    kv = random_kv()
    kv.save(tmp_path / "kv.npz")
    back = KeyedVectors.load(tmp_path / "kv.npz")
    assert back.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(back.vectors, kv.vectors)
    np.testing.assert_array_equal(back.counts, kv.counts)
    for binary in (False, True):
        path = tmp_path / f"vec{int(binary)}.txt"
        kv.save_word2vec_format(path, binary=binary)
        back = KeyedVectors.load_word2vec_format(path, binary=binary)
        assert back.index_to_key == kv.index_to_key
        np.testing.assert_array_equal(back.vectors, kv.vectors)     # exact: 9 digits round-trip
        assert len(KeyedVectors.load_word2vec_format(path, binary=binary, limit=7)) == 7
    text = (tmp_path / "vec0.txt").read_text().splitlines()
    assert text[0] == "50 8" and text[1].split()[0] == "w0" and len(text[1].split()) == 9


def test_file_errors(tmp_path):
    with pytest.raises(TinyLMError, match="does not exist"):
        KeyedVectors.load(tmp_path / "none.npz")
    with pytest.raises(TinyLMError, match="does not exist"):
        KeyedVectors.load_word2vec_format(tmp_path / "none.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("hello world\n")
    with pytest.raises(TinyLMError, match="'V d' header"):
        KeyedVectors.load_word2vec_format(bad)
    bad.write_text("2 3\na 1 2 3\nb 1 2\n")
    with pytest.raises(TinyLMError, match="line 3 .* has 2 numbers, expected 3"):
        KeyedVectors.load_word2vec_format(bad)
    bad.write_text("3 3\na 1 2 3\n")
    with pytest.raises(TinyLMError, match="promises 3 words"):
        KeyedVectors.load_word2vec_format(bad)
    with pytest.raises(TinyLMError, match="whitespace"):
        KeyedVectors(["a b"], np.zeros((1, 2))).save_word2vec_format(tmp_path / "x.txt")


# --- gensim parity ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gensim_pair():
    """The same random vectors in tinylm's and gensim's KeyedVectors, over every word of the
    wordsim353 and questions-words files gensim ships (so nothing is out of vocabulary)."""
    gensim = pytest.importorskip("gensim")
    from gensim.test.utils import datapath
    words = []
    with open(datapath("wordsim353.tsv"), encoding="utf8") as f:
        for line in f:
            if not line.startswith("#"):
                words += [w.lower() for w in line.split("\t")[:2]]
    with open(datapath("questions-words.txt"), encoding="utf8") as f:
        for line in f:
            if not line.startswith(":"):
                words += [w.lower() for w in line.split()]
    words = list(dict.fromkeys(words))
    vectors = np.random.default_rng(0).standard_normal((len(words), 16)).astype(np.float32)
    ours = KeyedVectors(words, vectors)
    theirs = gensim.models.KeyedVectors(16)
    theirs.add_vectors(words, vectors)
    return ours, theirs, datapath


def test_most_similar_matches_gensim(gensim_pair):
    ours, theirs, _ = gensim_pair
    for pos, neg in ((["king"], []), (["king", "woman"], ["man"]), (["paris"], ["france"])):
        a = ours.most_similar(positive=pos, negative=neg, topn=10)
        b = theirs.most_similar(positive=pos, negative=neg, topn=10)
        assert [w for w, _ in a] == [w for w, _ in b]
        np.testing.assert_allclose([c for _, c in a], [c for _, c in b], atol=1e-6)
    assert ours.similarity("king", "queen") == pytest.approx(
        float(theirs.similarity("king", "queen")), abs=1e-6)


def test_evaluate_word_pairs_matches_gensim(gensim_pair):
    ours, theirs, datapath = gensim_pair
    path = datapath("wordsim353.tsv")
    for kwargs in ({}, {"restrict_vocab": 600}, {"restrict_vocab": 600, "dummy4unknown": True}):
        (pr, pp), (sr, sp), oov = ours.evaluate_word_pairs(path, **kwargs)
        (gpr, gpp), (gsr, gsp), goov = theirs.evaluate_word_pairs(path, **kwargs)
        assert pr == pytest.approx(gpr, abs=1e-6) and pp == pytest.approx(gpp, abs=1e-6)
        assert sr == pytest.approx(gsr, abs=1e-6) and sp == pytest.approx(gsp, abs=1e-6)
        assert oov == pytest.approx(goov, abs=1e-9)


def test_evaluate_word_analogies_matches_gensim(gensim_pair):
    ours, theirs, datapath = gensim_pair
    path = datapath("questions-words.txt")
    score, sections = ours.evaluate_word_analogies(path, restrict_vocab=700)
    gscore, gsections = theirs.evaluate_word_analogies(path, restrict_vocab=700)
    assert score == pytest.approx(gscore)
    assert [s["section"] for s in sections] == [s["section"] for s in gsections]
    for s, g in zip(sections, gsections):
        assert s["correct"] == g["correct"] and s["incorrect"] == g["incorrect"]


def test_word2vec_files_are_readable_by_gensim_and_back(gensim_pair, tmp_path):
    ours, theirs, _ = gensim_pair
    gensim = pytest.importorskip("gensim")
    for binary in (False, True):
        path = tmp_path / f"ours{int(binary)}.w2v"
        ours.save_word2vec_format(path, binary=binary)
        loaded = gensim.models.KeyedVectors.load_word2vec_format(str(path), binary=binary)
        assert loaded.index_to_key == ours.index_to_key
        np.testing.assert_array_equal(loaded.vectors, ours.vectors)
        path = tmp_path / f"theirs{int(binary)}.w2v"
        theirs.save_word2vec_format(str(path), binary=binary)
        back = KeyedVectors.load_word2vec_format(path, binary=binary)
        assert back.index_to_key == theirs.index_to_key
        np.testing.assert_allclose(back.vectors, theirs.vectors, rtol=1e-6)
