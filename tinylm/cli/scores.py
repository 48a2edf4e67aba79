"""Scores of a trained classifier or translator (shared by ``train``'s metrics.json and
``evaluate``), and the translation itself (also used by ``generate``)."""
import numpy as np

from ..metrics import accuracy, corpus_bleu, precision_recall_f1
from ..tensor import no_grad
from ..text import pad_sequences
from .data import _encode_texts


@no_grad()
def _predict_classes(model, sequences, batch_size=256):
    out = []
    for start in range(0, len(sequences), batch_size):
        ids, lengths = pad_sequences(sequences[start:start + batch_size])
        out.append(model(ids, lengths).data.argmax(-1))
    return np.concatenate(out)


def _classifier_scores(model, tokenizer, texts, labels, max_len, num_classes):
    pred = _predict_classes(model, _encode_texts(tokenizer, texts, max_len))
    p, r, f1 = precision_recall_f1(labels, pred, average="macro", num_classes=num_classes)
    return {"accuracy": accuracy(labels, pred), "macro_precision": p, "macro_recall": r,
            "macro_f1": f1, "examples": len(labels)}


def _tokens_for_bleu(tokenizer, text_or_ids, unit):
    """The units BLEU counts: characters for a character tokenizer, else words."""
    text = text_or_ids if isinstance(text_or_ids, str) else tokenizer.decode(text_or_ids)
    return list(text) if unit == "char" else tokenizer.tokenize(text)


def _translate(model, src_tok, tgt_tok, sources, max_len, beam=0, batch_size=64):
    """Translations (strings) of ``sources``: greedy, or beam search with ``beam`` > 1."""
    bos, eos = tgt_tok.vocab.stoi["<bos>"], tgt_tok.vocab.stoi["<eos>"]
    src = _encode_texts(src_tok, sources, max_len)
    out = []
    for start in range(0, len(src), batch_size):
        ids, _ = pad_sequences(src[start:start + batch_size])
        if beam > 1:
            rows = model.beam_search(ids, bos, eos, beam_size=beam, max_new_tokens=max_len)
        else:
            rows = [[t for t in row[1:] if t != 0] for row in
                    model.greedy(ids, bos, eos, max_new_tokens=max_len).tolist()]
        for row in rows:
            row = row[:row.index(eos)] if eos in row else row
            out.append(tgt_tok.decode(row))
    return out


def _translation_scores(model, src_tok, tgt_tok, pairs, max_len, unit, beam=0):
    hyps = _translate(model, src_tok, tgt_tok, [s for s, _ in pairs], max_len, beam)
    refs = [t for _, t in pairs]
    bleu = corpus_bleu([_tokens_for_bleu(tgt_tok, h, unit) for h in hyps],
                       [_tokens_for_bleu(tgt_tok, r, unit) for r in refs])
    exact = float(np.mean([h.strip() == r.strip() for h, r in zip(hyps, refs)]))
    examples = [{"source": s, "reference": r, "hypothesis": h}
                for (s, r), h in list(zip(pairs, hyps))[:3]]
    return {"bleu": 100 * bleu, "exact_match": exact, "sentences": len(pairs),
            "search": f"beam {beam}" if beam > 1 else "greedy", "examples": examples}
