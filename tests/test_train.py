"""tinylm.train: the loop lowers the loss, writes its logs and checkpoints atomically, and a
resumed run gives exactly the losses of an uninterrupted one (dropout and batches included)."""
import json

import numpy as np
import pytest

from tinylm import TinyLMError, checkpoint
from tinylm.models import GPT, GPTConfig
from tinylm.train import TrainConfig, Trainer

TEXT = np.array(list(b"abcabdabcabdabcabe" * 20), dtype=np.int64) - 97


def get_batch(split, rng, block=8, batch=4):
    data = TEXT[:300] if split == "train" else TEXT[300:]
    starts = rng.integers(0, len(data) - block - 1, batch)
    x = np.stack([data[s:s + block] for s in starts])
    y = np.stack([data[s + 1:s + block + 1] for s in starts])
    return x, y


def make(tmp_path, name, max_iters, dropout=0.1, **kw):
    model = GPT(GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=2, n_embd=8,
                          dropout=dropout), seed=0)
    opt = model.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    settings = dict(lr=1e-2, min_lr=1e-3, warmup_iters=2, lr_decay_iters=12, eval_interval=4,
                    eval_iters=2, seed=5, progress=False)
    cfg = TrainConfig(max_iters=max_iters, out_dir=str(tmp_path / name), **{**settings, **kw})
    return Trainer(model, opt, get_batch, cfg, metadata={"model": "gpt"})


def test_training_lowers_the_loss_and_writes_logs(tmp_path):
    trainer = make(tmp_path, "run", 120, dropout=0.0, checkpoint_interval=60, lr=3e-2,
                   min_lr=3e-3, lr_decay_iters=120, eval_interval=20)
    history = trainer.fit()
    losses = [r["loss"] for r in history["train"]]
    assert len(losses) == 120 and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    out = tmp_path / "run"
    assert {p.name for p in out.iterdir()} == {"ckpt.safetensors", "model.safetensors",
                                                "metrics.json", "log.json", "log.csv",
                                                "loss.png"}
    weights, meta = checkpoint.load(out / "model.safetensors")
    assert meta == {"model": "gpt"} and set(weights) == set(trainer.model.state_dict())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["iters"] == 120 and metrics["tokens_per_second"] > 0
    assert metrics["best_val_loss"] == min(r["val_loss"] for r in history["eval"])
    assert [r["iter"] for r in history["eval"]] == list(range(0, 121, 20))
    lrs = [r["lr"] for r in history["train"]]
    assert lrs[0] == pytest.approx(1.5e-2) and lrs[1] == pytest.approx(3e-2)   # warmup
    assert lrs[-1] == pytest.approx(3e-3, rel=0.05)                             # decayed
    _, meta = checkpoint.load(out / "ckpt.safetensors")
    assert meta["iter"] == 120 and meta["model_metadata"] == {"model": "gpt"}


def test_the_weights_file_loads_into_pytorch_under_nanogpt_names(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    trainer = make(tmp_path, "export", 2, checkpoint_interval=2)
    trainer.fit()
    tensors = st.load_file(str(tmp_path / "export" / "model.safetensors"))
    assert "transformer.h.0.attn.c_attn.weight" in tensors and "lm_head.weight" in tensors
    np.testing.assert_array_equal(tensors["transformer.wte.weight"].numpy(),
                                  trainer.model.transformer.wte.weight.data)
    assert isinstance(tensors["lm_head.weight"], torch.Tensor)


def test_resume_continues_exactly(tmp_path):
    full = make(tmp_path, "full", 12, checkpoint_interval=6)
    full_losses = [r["loss"] for r in full.fit()["train"]]
    first = make(tmp_path, "split", 6, checkpoint_interval=6)
    first.fit()
    second = make(tmp_path, "split", 12, checkpoint_interval=6)
    resumed = [r["loss"] for r in second.fit(resume=True)["train"]]
    assert resumed == full_losses                      # bit for bit, dropout included
    np.testing.assert_array_equal(second.model.lm_head.weight.data,
                                  full.model.lm_head.weight.data)
    # the stopped run also evaluated at its end (iteration 6); every other row is the same
    assert [r for r in second.history["eval"] if r["iter"] != 6] == full.history["eval"]


def test_bad_configuration_and_resume_without_checkpoint(tmp_path):
    with pytest.raises(TinyLMError, match="max_iters must be a positive integer"):
        TrainConfig(max_iters=0)
    with pytest.raises(TinyLMError, match="min_lr <= lr"):
        TrainConfig(lr=1e-3, min_lr=1e-2)
    with pytest.raises(TinyLMError, match="cannot resume"):
        make(tmp_path, "none", 4).fit(resume=True)


def test_a_diverging_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(tmp_path):
    trainer = make(tmp_path, "nan", 8, checkpoint_interval=2)
    calls = {"n": 0}

    def loss_fn(model, x, y):
        calls["n"] += 1
        loss = model(x, y)[1]
        return loss * np.nan if calls["n"] > 12 else loss    # evals use 4 calls each
    trainer.loss_fn = loss_fn
    with pytest.raises(TinyLMError, match="the loss is nan at iteration"):
        trainer.fit()
    _, meta = checkpoint.load(tmp_path / "nan" / "ckpt.safetensors")
    assert meta["iter"] >= 2
