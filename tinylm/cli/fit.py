"""``train``'s common end: the Trainer and AdamW from the command line, the run (or its
resumption) and the files written beside the checkpoint."""
import json
from pathlib import Path

from .. import checkpoint
from ..errors import TinyLMError
from ..io import save_json
from ..optim import AdamW, decay_groups
from ..parallel import DistributedDataParallel, world_size
from ..train import CHECKPOINT_NAME, Trainer, TrainConfig
from .checkpoints import _checkpoint_path


CLI_VERSION = 1


def _trainer(args, model, optimizer, get_batch, metadata, loss_fn=None):
    decay = args.lr_decay_iters or args.max_iters
    if args.warmup_iters is None:      # the default warmup, shortened for short runs
        warmup = min(args.default_warmup, decay)
    else:
        warmup = args.warmup_iters
    config = TrainConfig(max_iters=args.max_iters, lr=args.lr, min_lr=args.min_lr,
                         warmup_iters=warmup, lr_decay_iters=decay,
                         grad_clip=args.grad_clip, eval_interval=args.eval_interval,
                         eval_iters=args.eval_iters, out_dir=args.out, seed=args.seed,
                         progress=not args.quiet)
    # under mpiexec -n N: data parallel, each rank on B/N rows of every batch (C7)
    parallel = DistributedDataParallel(model) if world_size() > 1 else None
    return Trainer(model, optimizer, get_batch, config, loss_fn=loss_fn, metadata=metadata,
                   parallel=parallel)


def _adamw(model, args):
    """nanoGPT's optimiser groups: weight decay on matrices only."""
    return AdamW(decay_groups(model.parameters(), args.weight_decay), lr=args.lr,
                 betas=(args.beta1, args.beta2))


def _fit(args, kind, model, get_batch, metadata, loss_fn=None, score=None):
    """Train (or resume), write metrics.json, config.json and tokenizer.json; print a summary."""
    out = Path(args.out)
    # through JSON once, so it compares equal to what a checkpoint gives back (lists, not
    # tuples) when resuming
    metadata = json.loads(json.dumps({"kind": kind, "cli_version": CLI_VERSION, **metadata}))
    if args.resume:
        if not (out / CHECKPOINT_NAME).is_file():
            raise TinyLMError(f"--resume: there is no checkpoint {out / CHECKPOINT_NAME} to "
                              f"resume from (train without --resume first, or give its --out)")
        _, saved = checkpoint.load(_checkpoint_path(out))
        old = saved.get("model_metadata", {})
        for key in ("kind", "model_config", "data", "tokenizer", "src_tokenizer",
                    "tgt_tokenizer"):
            if old.get(key) != metadata.get(key):
                raise TinyLMError(f"--resume: the checkpoint in {out} was trained with another "
                                  f"{key.replace('_', ' ')}; resume with the same arguments")
    trainer = _trainer(args, model, _adamw(model, args), get_batch, metadata, loss_fn)
    trainer.fit(resume=args.resume)
    if not trainer.is_root:            # rank 0 alone scores, writes and prints
        return 0
    metrics = {"model": kind, "parameters": int(model.num_parameters()), **trainer.metrics()}
    model.eval()
    if score is not None:
        metrics.update(score(model))
    save_json(out / "metrics.json", metrics)
    save_json(out / "config.json", {"kind": kind, "model_config": metadata["model_config"],
                                    "data": metadata["data"], "train": vars(args) | {
                                        "handler": None}})
    for key in ("tokenizer", "src_tokenizer", "tgt_tokenizer"):
        if key in metadata:
            save_json(out / f"{key}.json", metadata[key])
    shown = {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}
    print(json.dumps(shown, indent=1))
    print(f"wrote {out / CHECKPOINT_NAME} and {out / 'metrics.json'}")
    return 0
