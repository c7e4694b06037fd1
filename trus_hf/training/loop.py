"""`train`: one model, one run. Built on `accelerate`: the same code trains on a CPU, one GPU, or several GPUs/nodes
with DDP and bf16/fp16 under ``accelerate launch``.

The recipe: Dice + BCE, Adam, ReduceLROnPlateau on validation IoU, best checkpoint kept by validation IoU, optional
early stopping. Validation IoU is measured exactly as evaluation reports it: logits mapped back to each image's
original size, thresholded and scored by `SegmentationPipeline.postprocess`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..augment import preview_augmentations
from ..configuration import TrusSegConfig
from ..fileio import remove_stale_temporaries
from ..metrics import aggregate
from ..pipeline import SegmentationPipeline
from ..progress import progress, quiet_library_bars
from .arguments import TrainingArguments, native_bf16, resolve_mixed_precision
from .checkpoints import load_checkpoint, save_checkpoint
from .dataset import (
    TorchSegmentationDataset,
    cached_preprocess,
    geometries_of,
    load_training_data,
    original_masks,
    split_for_training,
)
from .reporting import finalize_run, run_card, write_logs
from .start import initial_model

__all__ = ["train"]

logger = logging.getLogger(__name__)


def label_summary(per_image: list[dict[str, dict[str, float]]], labels: list[str]) -> dict[str, Any]:
    """Aggregate per-image label metrics: every label's `aggregate` under ``labels``, and at the top level the
    label's own figures for a one-label model, the mean over labels (macro) of IoU and Dice otherwise."""
    by_label = {
        lb: aggregate([m[lb] for m in per_image if lb in m]) for lb in labels if any(lb in m for m in per_image)
    }
    if not by_label:
        raise ValueError("no image of the evaluation set has a ground truth for any label")
    if len(labels) == 1:
        return {**next(iter(by_label.values())), "labels": by_label}
    return {
        "mean_iou": float(np.mean([a["mean_iou"] for a in by_label.values()])),
        "mean_dice": float(np.mean([a["mean_dice"] for a in by_label.values()])),
        "n_images": len(per_image),
        "labels": by_label,
    }


class _Validator:
    """Validation loss on the canvas, and IoU/Dice per label through the pipeline's post-processing at the original
    size."""

    def __init__(self, pipeline: SegmentationPipeline, geometries, masks):
        self.pipeline, self.geometries, self.masks = pipeline, geometries, masks

    def __call__(self, model, loader, accelerator) -> dict[str, Any]:
        from accelerate.utils import gather_object

        model.eval()
        per_image: dict[int, dict[str, dict[str, float]]] = {}
        loss_sum, n = 0.0, 0
        with torch.inference_mode():
            for batch in loader:
                out = model(pixel_values=batch["pixel_values"], labels=batch["labels"])
                loss_sum += float(out.loss) * len(batch["labels"])
                n += len(batch["labels"])
                idx = batch["index"].tolist()
                results = self.pipeline.postprocess(
                    out.logits.float().cpu(), [self.geometries[i] for i in idx], [self.masks[i] for i in idx]
                )
                per_image.update({i: r.label_metrics for i, r in zip(idx, results)})
        model.train()
        gathered = dict(gather_object(list(per_image.items())))  # every process's images, each once
        metrics = label_summary([gathered[i] for i in sorted(gathered)], self.pipeline.labels)
        metrics["loss"] = loss_sum / max(n, 1)
        return metrics


def _epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's random draws (order, augmentation, dropout): a function of the run's seed and the epoch
    alone, so that a resumed run draws what the uninterrupted one would have (and runs of neighbouring seeds do not
    share epochs)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _seed_worker(worker_id: int) -> None:
    """A loader worker's augmentation seed: torch gives each worker its own seed, drawn from the loader's generator."""
    torch.utils.data.get_worker_info().dataset.reseed(torch.initial_seed() % 2**32)


def _loaders(args: TrainingArguments, train_pre, val_pre, processor):
    train_set = TorchSegmentationDataset(train_pre, processor, args.augment, args.seed, args.augment_strength)
    val_set = TorchSegmentationDataset(val_pre, processor, False, args.seed)
    generator = torch.Generator()  # seeded at the start of every epoch (`_seed_epoch`)
    train_loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.num_workers,
        generator=generator,
        worker_init_fn=_seed_worker,
        drop_last=len(train_set) > args.batch_size,
    )
    val_loader = DataLoader(val_set, batch_size=args.batch_size, shuffle=False, num_workers=args.num_workers)
    return train_loader, val_loader, generator


def _seed_epoch(args: TrainingArguments, epoch: int, generator: torch.Generator, train_set) -> None:
    """Seed everything an epoch draws: the shuffle, the augmentation, and torch/numpy/python (dropout)."""
    from accelerate.utils import set_seed

    seed = _epoch_seed(args.seed, epoch)
    set_seed(seed)
    generator.manual_seed(seed)
    train_set.reseed(seed)


def _param_groups(model, args: TrainingArguments) -> list[dict[str, Any]]:
    """The encoder at ``encoder_lr_factor`` x the learning rate, the rest (decoder, head) at the learning rate."""
    encoder = {id(p) for p in model.encoder().parameters()}
    return [
        {
            "params": [p for p in model.parameters() if id(p) in encoder],
            "lr": args.learning_rate * args.encoder_lr_factor,
            "name": "encoder",
        },
        {
            "params": [p for p in model.parameters() if id(p) not in encoder],
            "lr": args.learning_rate,
            "name": "decoder",
        },
    ]


def _freeze_encoder(model, frozen: bool) -> None:
    """Frozen: no gradients, and batch-norm statistics kept as the start learned them (the encoder in eval mode)."""
    encoder = model.encoder()
    for p in encoder.parameters():
        p.requires_grad_(not frozen)
    if frozen:
        encoder.eval()


def _train_epoch(
    model, loader, optimizer, accelerator, args: TrainingArguments, epoch: int, start_time: float
) -> list[float]:
    losses: list[float] = []
    steps = min(len(loader), args.max_steps_per_epoch) if args.max_steps_per_epoch else len(loader)
    bar = progress(
        itertools.islice(loader, steps),
        total=steps,
        desc=f"epoch {epoch + 1}/{args.epochs}",
        unit="step",
        enabled=accelerator.is_local_main_process,
        interval=args.log_every_seconds,
    )
    for batch in bar:
        if args.max_train_minutes and losses and time.time() - start_time > args.max_train_minutes * 60:
            break  # the budget ends inside an epoch: validate and save what was learned so far
        with accelerator.autocast():
            loss = model(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses


def _accelerator(args: TrainingArguments, *handlers):
    """The run's `Accelerator`, and the arguments with ``auto`` precision resolved to what this machine runs (so that
    the logs, the summary and the card record the precision actually used)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    args = dataclasses.replace(args, mixed_precision=resolve_mixed_precision(args.mixed_precision))
    if (args.mixed_precision == "bf16" and not native_bf16()) or (
        args.mixed_precision == "fp16" and not torch.cuda.is_available()
    ):
        logger.warning(
            "%s is emulated on this CPU: training is slower than with mixed_precision no", args.mixed_precision
        )
    if AcceleratorState._shared_state.get("_mixed_precision") not in (None, args.mixed_precision):
        # accelerate keeps one state per process and refuses another precision; a second run in the same process (a
        # notebook, a benchmark comparing precisions) may ask for one: only the precision state is reset, not the
        # distributed one (accelerate has no public call for this)
        AcceleratorState._reset_state()
    logger.info("mixed precision: %s", args.mixed_precision)
    return Accelerator(mixed_precision=args.mixed_precision, kwargs_handlers=list(handlers)), args


def train(
    model_config: TrusSegConfig,
    args: TrainingArguments,
    train_ds: datasets.Dataset | None = None,
    val_ds: datasets.Dataset | None = None,
    test_ds: datasets.Dataset | None = None,
) -> dict[str, Any]:
    """Train one model; returns a summary with the best validation (and test) metrics and the model folder.

    Without ``train_ds``/``val_ds`` the data come from ``args.data`` (validation split by group when the dataset has
    none). The best model is saved to ``<output_dir>/model`` (config, safetensors, processor, card).
    """
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    quiet_library_bars()
    # a frozen encoder leaves parameters without gradients, which DDP must be told about
    ddp = DistributedDataParallelKwargs(find_unused_parameters=args.freeze_encoder_epochs > 0)
    accelerator, args = _accelerator(args, ddp)
    if accelerator.is_main_process:
        for stale in remove_stale_temporaries(out):
            logger.info("removed %s left by an interrupted run", stale)
    set_seed(args.seed)
    model, processor, model_config = initial_model(model_config, args)

    if train_ds is None or val_ds is None:
        train_ds, val_ds, test_ds = split_for_training(load_training_data(args, model_config.labels), args)
    if args.preview_augmentations:
        sample = cached_preprocess(
            train_ds.select(range(min(8, len(train_ds)))), processor, None, model_config.labels
        ).with_format("numpy")
        primary = model_config.labels.index(model_config.primary_label)
        masks = [y if y.ndim == 2 else (y[primary] == 1).astype(np.uint8) for y in sample["y"]]
        path = preview_augmentations(
            list(sample["x"]),
            masks,
            args.preview_augmentations,
            out / "augmentations.png",
            seed=args.seed,
            strength=args.augment_strength,
        )
        return {"preview": str(path)}

    cache = out.parent / ".cache" if out.parent != out else out / ".cache"
    with accelerator.main_process_first():
        train_pre = cached_preprocess(train_ds, processor, cache, model_config.labels)
        val_pre = cached_preprocess(val_ds, processor, cache, model_config.labels)
    train_loader, val_loader, generator = _loaders(args, train_pre, val_pre, processor)

    validate = _Validator(
        SegmentationPipeline(model, processor, device="cpu"),
        geometries_of(val_pre),
        original_masks(val_ds, model_config.labels),
    )
    optimizer = torch.optim.Adam(_param_groups(model, args), lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=args.lr_factor, patience=args.lr_patience
    )
    state: dict[str, Any] = {
        "epoch": 0,
        "best_iou": -1.0,
        "best_epoch": -1,
        "history": [],
        "stale": 0,
        "train_seconds": 0.0,
    }
    ckpt = out / "checkpoints" / "last"
    if args.resume and (ckpt / "trainer_state.json").is_file():
        state = load_checkpoint(ckpt, model, optimizer, scheduler)
        logger.info("resumed from %s at epoch %d", ckpt, state["epoch"])
    elif args.resume:
        logger.warning("--resume given but %s has no checkpoint; starting fresh", ckpt)

    train_set = train_loader.dataset
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    unwrapped = accelerator.unwrap_model(model)
    writer = None
    if args.tensorboard and accelerator.is_main_process:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))

    start_time = time.time() - state["train_seconds"]
    for epoch in range(state["epoch"], args.epochs):
        _seed_epoch(args, epoch, generator, train_set)
        model.train()
        _freeze_encoder(unwrapped, epoch < args.freeze_encoder_epochs)
        losses = _train_epoch(model, train_loader, optimizer, accelerator, args, epoch, start_time)
        val = validate(model, val_loader, accelerator)
        scheduler.step(val["mean_iou"])
        row = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_loss": val["loss"],
            "val_iou": val["mean_iou"],
            "val_dice": val["mean_dice"],
            **({f"val_iou_{lb}": m["mean_iou"] for lb, m in val["labels"].items()} if len(val["labels"]) > 1 else {}),
            "lr": optimizer.param_groups[-1]["lr"],
            "seconds": round(time.time() - start_time, 1),
        }
        state["history"].append(row)
        state["epoch"] = epoch + 1
        state["train_seconds"] = time.time() - start_time
        improved = val["mean_iou"] > state["best_iou"]
        if improved:
            state.update(best_iou=val["mean_iou"], best_epoch=epoch + 1, best_val=val, stale=0)
        else:
            state["stale"] += 1
        if accelerator.is_main_process:
            logger.info("epoch %d: %s", epoch + 1, row)
            if writer is not None:
                for k, v in row.items():
                    if k != "epoch":
                        writer.add_scalar(k, v, epoch + 1)
            if improved:
                unwrapped.save_pretrained(
                    out / "checkpoints" / "best",
                    processor=processor,
                    card=run_card(unwrapped.config, processor, args, val, "validation", state),
                )
            write_logs(out, state["history"])
            if (epoch + 1) % max(1, args.checkpoint_every) == 0 or epoch + 1 == args.epochs:
                save_checkpoint(ckpt, unwrapped, optimizer, scheduler, state)
        accelerator.wait_for_everyone()
        if args.early_stopping and state["stale"] >= args.early_stopping:
            logger.info("early stopping after %d epochs without improvement", state["stale"])
            break
        if args.max_train_minutes and time.time() - start_time > args.max_train_minutes * 60:
            logger.info("stopping: time budget of %.1f min reached", args.max_train_minutes)
            break

    summary: dict[str, Any] = {
        "best_epoch": state["best_epoch"],
        "best_val_iou": state["best_iou"],
        "best_val": state.get("best_val"),
        "epochs_run": state["epoch"],
        "train_seconds": round(state["train_seconds"], 1),
        "mixed_precision": args.mixed_precision,
        "train_images": len(train_pre),
        "val_images": len(val_pre),
    }
    if accelerator.is_main_process:
        summary.update(finalize_run(out, args, test_ds, state, val_ds))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if writer is not None:
        writer.close()
    return summary
