"""The training engine behind ``train_fpn.py``, ``train_segformer.py`` and ``trus-hf train``.

Built on `accelerate`: the same code trains on a CPU, one GPU, or several GPUs/nodes with DDP and bf16/fp16 under
``accelerate launch``. The recipe: Dice + BCE, Adam, ReduceLROnPlateau on validation IoU, best checkpoint kept by
validation IoU, optional early stopping, group-aware validation split or k-fold.

Durability: every epoch writes ``checkpoints/last`` atomically (temporary folder, then rename) with the model
(safetensors), optimizer and scheduler state, RNG state and history; ``resume=True`` continues from it after a crash
or ``kill -9``. Checkpoint tensors are loaded with ``weights_only=True``.

Preprocessing (crop, resize, diffusion) runs once per image and is cached with ``datasets.map`` in
``<output_dir>/cache``; augmentation and normalisation run per step.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .augment import build_augmentations, preview_augmentations
from .configuration import TrusSegConfig
from .data import group_kfold, group_train_test_split, load_dataset
from .fileio import atomic_dir, atomic_file, remove_stale_temporaries
from .hub import MODEL_ID_PLACEHOLDER
from .image_processing import TrusImageProcessor, to_gray_float
from .metrics import aggregate, binary_metrics
from .models import create_model

__all__ = ["ModelArguments", "TrainingArguments", "cached_preprocess", "train", "train_kfold"]

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """Model choice (the architecture is fixed by the script)."""

    encoder_name: str = field(default="resnet152", metadata={"help": "FPN encoder (smp name)"})
    encoder_weights: str | None = field(default=None, metadata={"help": "FPN encoder init: 'imagenet' (online) or none"})
    decoder_pyramid_channels: int = field(default=256, metadata={"help": "FPN decoder pyramid channels"})
    decoder_segmentation_channels: int = field(default=128, metadata={"help": "FPN segmentation channels (x32)"})
    segformer_size: str = field(default="b0", metadata={"help": "Segformer size: b0..b5"})
    pretrained_backbone: str | None = field(default=None, metadata={"help": "Segformer: Hub ID of an MiT encoder"})
    dice_weight: float = field(default=1.0, metadata={"help": "weight of the Dice loss"})
    bce_weight: float = field(default=1.0, metadata={"help": "weight of the BCE loss"})
    label: str = field(default="lesion", metadata={"help": "name of the positive class"})

    def to_config(self, architecture: str) -> TrusSegConfig:
        return TrusSegConfig(architecture=architecture, encoder_name=self.encoder_name,
                             encoder_weights=self.encoder_weights, segformer_size=self.segformer_size,
                             decoder_pyramid_channels=self.decoder_pyramid_channels,
                             decoder_segmentation_channels=self.decoder_segmentation_channels,
                             pretrained_backbone=self.pretrained_backbone, dice_weight=self.dice_weight,
                             bce_weight=self.bce_weight, label=self.label)


@dataclass
class TrainingArguments:
    """Data, preprocessing and optimisation settings. Defaults follow the original recipe."""

    output_dir: str = field(default="runs/model", metadata={"help": "where checkpoints, logs and the model go"})
    data: str = field(default="synthetic:64:512", metadata={"help": "dataset: folder, COCO json, Hub ID, synthetic:N"})
    data_format: str = field(default="auto", metadata={"help": "dataset format (see trus_hf.data.FORMATS)"})
    mask_suffix: str = field(default="", metadata={"help": "mask file suffix in folder datasets, e.g. _mask"})
    skip_invalid: bool = field(default=False, metadata={"help": "skip invalid pairs (listed) instead of failing"})
    test_fold: str | None = field(default=None, metadata={"help": "value of --fold-column held out as test set"})
    fold_column: str | None = field(default=None, metadata={"help": "dataset column with fold ids (e.g. kFold)"})
    folds: int = field(default=0, metadata={"help": "k-fold cross-validation with K folds (0 = single run)"})
    val_fraction: float = field(default=0.2, metadata={"help": "group-aware validation fraction without a split"})
    image_size: int = field(default=768, metadata={"help": "model input size (square)"})
    interpolation: str = field(default="area", metadata={"help": "image interpolation: area, bilinear, bicubic"})
    diffusion_iterations: int = field(default=10, metadata={"help": "isotropic diffusion iterations (0 = off)"})
    epochs: int = field(default=50, metadata={"help": "maximum epochs"})
    batch_size: int = field(default=4, metadata={"help": "per-device batch size"})
    learning_rate: float = field(default=1e-4, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay"})
    lr_patience: int = field(default=5, metadata={"help": "ReduceLROnPlateau patience (epochs)"})
    lr_factor: float = field(default=0.5, metadata={"help": "ReduceLROnPlateau factor"})
    early_stopping: int = field(default=0, metadata={"help": "stop after N epochs without improvement (0 = off)"})
    augment: bool = field(default=True, metadata={"help": "use the training augmentations"})
    seed: int = field(default=42, metadata={"help": "random seed"})
    num_workers: int = field(default=0, metadata={"help": "data loader workers"})
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 or bf16 (GPU)"})
    resume: bool = field(default=False, metadata={"help": "continue from <output_dir>/checkpoints/last"})
    checkpoint_every: int = field(default=1, metadata={"help": "write the resumable checkpoint every N epochs"})
    max_train_minutes: float = field(default=0.0, metadata={"help": "stop after this wall time (0 = no limit)"})
    max_steps_per_epoch: int = field(default=0, metadata={"help": "cap optimizer steps per epoch (0 = all)"})
    preview_augmentations: int = field(default=0, metadata={"help": "write a grid of N augmented samples and exit"})
    push_to_hub: str | None = field(default=None, metadata={"help": "Hub repo ID to push the best model to"})
    dataset_name: str | None = field(default=None, metadata={"help": "dataset name for the model card"})
    save_dtype: str = field(default="float32", metadata={"help": "dtype of saved weights: float32 or float16"})
    tensorboard: bool = field(default=True, metadata={"help": "write TensorBoard logs"})

    def processor(self) -> TrusImageProcessor:
        return TrusImageProcessor(size={"height": self.image_size, "width": self.image_size},
                                  interpolation=self.interpolation, do_diffusion=self.diffusion_iterations > 0,
                                  diffusion_iterations=max(self.diffusion_iterations, 0))


# --------------------------------------------------------------------------------------------- data
def cached_preprocess(ds: datasets.Dataset, processor: TrusImageProcessor, cache_dir: str | Path | None
                      ) -> datasets.Dataset:
    """Run the processor's deterministic half once per image (``x``: float16 HxW, ``y``: uint8 HxW), cached on disk.

    The cache file name is a hash of the dataset fingerprint and the processor settings, so a changed setting never
    reuses a stale cache.
    """
    h, w = processor.size["height"], processor.size["width"]
    d = processor.size_divisor
    ch, cw = math.ceil(h / d) * d, math.ceil(w / d) * d
    features = datasets.Features({"x": datasets.Array2D((ch, cw), "float16"), "y": datasets.Array2D((ch, cw), "uint8"),
                                  "group": datasets.Value("string"), "file": datasets.Value("string")})

    def fn(batch):
        xs, ys = [], []
        for img, msk in zip(batch["image"], batch["mask"]):
            gray = to_gray_float(img)
            x, geo = processor.prepare_gray(gray)
            m = processor.mask_to_binary(msk)
            xs.append(x.astype(np.float16))
            ys.append(processor.prepare_mask(m, geo))
        return {"x": xs, "y": ys, "group": batch["group"], "file": batch["file"]}

    kwargs: dict[str, Any] = {}
    if cache_dir is not None:
        key = hashlib.sha256((ds._fingerprint + processor.to_json_string()).encode()).hexdigest()[:16]
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        kwargs = {"cache_file_name": str(Path(cache_dir) / f"pre-{key}.arrow"), "load_from_cache_file": True}
    return ds.map(fn, batched=True, batch_size=8, remove_columns=ds.column_names, features=features,
                  desc="preprocessing (cached)", **kwargs)


class _TorchDataset(Dataset):
    def __init__(self, ds: datasets.Dataset, processor: TrusImageProcessor, augment: bool, seed: int):
        self.ds = ds.with_format("numpy", columns=["x", "y"])
        self.processor = processor
        self.aug = build_augmentations(seed=seed) if augment else None

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = self.ds[int(i)]
        x, y = row["x"].astype(np.float32), row["y"].astype(np.uint8)
        if self.aug is not None:
            out = self.aug(image=x, mask=y)
            x, y = np.clip(out["image"], 0.0, 1.0), out["mask"]
        return {"pixel_values": torch.from_numpy(self.processor.finalize(x)),
                "labels": torch.from_numpy(y.astype(np.int64))}


# --------------------------------------------------------------------------------------------- checkpoints
def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {"python": random.getstate()[1], "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}


def _set_rng_state(state: dict[str, Any], torch_state: torch.Tensor | None) -> None:
    random.setstate((3, tuple(state["python"]), None))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, np.uint32), pos, has_gauss, cached))
    if torch_state is not None:
        torch.set_rng_state(torch_state)


def _save_checkpoint(path: Path, model, optimizer, scheduler, trainer_state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    with atomic_dir(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()},
                  str(tmp / "model.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state()}, tmp / "training_state.pt")
        (tmp / "trainer_state.json").write_text(json.dumps({**trainer_state, "rng": _rng_state()}))


def _load_checkpoint(path: Path, model, optimizer, scheduler) -> dict[str, Any]:
    from safetensors.torch import load_file

    state = json.loads((path / "trainer_state.json").read_text())
    model.net.load_state_dict(load_file(str(path / "model.safetensors")))
    extra = torch.load(path / "training_state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    _set_rng_state(state.pop("rng"), extra["torch_rng"])
    return state


# --------------------------------------------------------------------------------------------- the loop
def _validate(model, loader, accelerator) -> dict[str, float]:
    model.eval()
    per_image = []
    loss_sum, n = 0.0, 0
    with torch.inference_mode():
        for batch in loader:
            out = model(**batch)
            preds = (out.logits > 0).to(torch.uint8)[:, 0]
            preds, labels = accelerator.gather_for_metrics((preds, batch["labels"]))
            loss_sum += float(out.loss) * len(batch["labels"])
            n += len(batch["labels"])
            for p, t in zip(preds.cpu().numpy(), labels.cpu().numpy()):
                per_image.append(binary_metrics(p, t))
    model.train()
    metrics = aggregate(per_image)
    metrics["loss"] = loss_sum / max(n, 1)
    return metrics


def _plot_curves(history: list[dict[str, Any]], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    a1.plot(ep, [h["train_loss"] for h in history], label="train")
    a1.plot(ep, [h["val_loss"] for h in history], label="validation")
    a1.set_xlabel("epoch"), a1.set_ylabel("Dice + BCE loss"), a1.legend()
    a2.plot(ep, [h["val_iou"] for h in history], color="C2")
    a2.set_xlabel("epoch"), a2.set_ylabel("validation IoU"), a2.set_ylim(0, 1)
    fig.tight_layout()
    with atomic_file(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def _split_data(dsd: datasets.DatasetDict, args: TrainingArguments) -> tuple[datasets.Dataset, datasets.Dataset,
                                                                            datasets.Dataset | None]:
    full = dsd["train"]
    test = dsd.get("test")
    if args.test_fold is not None:
        if args.fold_column is None or args.fold_column not in full.column_names:
            raise ValueError(f"--test-fold needs --fold-column naming a dataset column; columns: {full.column_names}")
        values = [str(v) for v in full[args.fold_column]]
        test = full.select([i for i, v in enumerate(values) if v == str(args.test_fold)])
        full = full.select([i for i, v in enumerate(values) if v != str(args.test_fold)])
        if len(test) == 0:
            raise ValueError(f"no rows with {args.fold_column} == {args.test_fold!r}; values: {sorted(set(values))}")
    if "validation" in dsd:
        return full, dsd["validation"], test
    split = group_train_test_split(full, test_size=args.val_fraction, seed=args.seed)
    return split["train"], split["test"], test


def _load(args: TrainingArguments) -> datasets.DatasetDict:
    extra = [args.fold_column] if args.fold_column else []
    return load_dataset(args.data, format=args.data_format, strict=not args.skip_invalid, mask_suffix=args.mask_suffix,
                        extra_columns=extra)


def train(model_config: TrusSegConfig, args: TrainingArguments, train_ds: datasets.Dataset | None = None,
          val_ds: datasets.Dataset | None = None, test_ds: datasets.Dataset | None = None) -> dict[str, Any]:
    """Train one model; returns a summary with the best validation (and test) metrics and the model folder.

    Without ``train_ds``/``val_ds`` the data come from ``args.data`` (validation split by group when the dataset has
    none). The best model is saved to ``<output_dir>/model`` (config, safetensors, processor, card).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    if accelerator.is_main_process:
        for stale in remove_stale_temporaries(out):
            logger.info("removed %s left by an interrupted run", stale)
    set_seed(args.seed)
    processor = args.processor()

    if train_ds is None or val_ds is None:
        train_ds, val_ds, test_ds = _split_data(_load(args), args)
    if args.preview_augmentations:
        sample = cached_preprocess(train_ds.select(range(min(8, len(train_ds)))), processor, None).with_format("numpy")
        path = preview_augmentations(list(sample["x"]), list(sample["y"]), args.preview_augmentations,
                                     out / "augmentations.png", seed=args.seed)
        return {"preview": str(path)}

    cache = out.parent / ".cache" if out.parent != out else out / ".cache"
    with accelerator.main_process_first():
        train_pre = cached_preprocess(train_ds, processor, cache)
        val_pre = cached_preprocess(val_ds, processor, cache)
    train_set = _TorchDataset(train_pre, processor, args.augment, args.seed)
    val_set = _TorchDataset(val_pre, processor, False, args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, num_workers=args.num_workers,
                              generator=generator, drop_last=len(train_set) > args.batch_size)
    val_loader = DataLoader(val_set, batch_size=args.batch_size, shuffle=False, num_workers=args.num_workers)

    model = create_model(model_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=args.lr_factor,
                                                           patience=args.lr_patience)
    state: dict[str, Any] = {"epoch": 0, "best_iou": -1.0, "best_epoch": -1, "history": [], "stale": 0,
                             "train_seconds": 0.0}
    ckpt = out / "checkpoints" / "last"
    if args.resume and (ckpt / "trainer_state.json").is_file():
        state = _load_checkpoint(ckpt, model, optimizer, scheduler)
        generator.manual_seed(args.seed + state["epoch"])
        logger.info("resumed from %s at epoch %d", ckpt, state["epoch"])
    elif args.resume:
        logger.warning("--resume given but %s has no checkpoint; starting fresh", ckpt)

    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    unwrapped = accelerator.unwrap_model(model)
    writer = None
    if args.tensorboard and accelerator.is_main_process:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))

    start_time = time.time() - state["train_seconds"]
    for epoch in range(state["epoch"], args.epochs):
        model.train()
        losses = []
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=not accelerator.is_local_main_process,
                   leave=False)
        for step, batch in enumerate(bar):
            if args.max_steps_per_epoch and step >= args.max_steps_per_epoch:
                break
            if args.max_train_minutes and losses and time.time() - start_time > args.max_train_minutes * 60:
                break  # the budget ends inside an epoch: validate and save what was learned so far
            with accelerator.autocast():
                loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        val = _validate(model, val_loader, accelerator)
        scheduler.step(val["mean_iou"])
        row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan"),
               "val_loss": val["loss"], "val_iou": val["mean_iou"], "val_dice": val["mean_dice"],
               "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - start_time, 1)}
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
                unwrapped.save_pretrained(out / "checkpoints" / "best", processor=processor,
                                          card=_card(unwrapped.config, processor, args, val, "validation", state))
            _write_logs(out, state["history"])
            if (epoch + 1) % max(1, args.checkpoint_every) == 0 or epoch + 1 == args.epochs:
                _save_checkpoint(ckpt, unwrapped, optimizer, scheduler, state)
        accelerator.wait_for_everyone()
        if args.early_stopping and state["stale"] >= args.early_stopping:
            logger.info("early stopping after %d epochs without improvement", state["stale"])
            break
        if args.max_train_minutes and time.time() - start_time > args.max_train_minutes * 60:
            logger.info("stopping: time budget of %.1f min reached", args.max_train_minutes)
            break

    summary: dict[str, Any] = {"best_epoch": state["best_epoch"], "best_val_iou": state["best_iou"],
                               "best_val": state.get("best_val"), "epochs_run": state["epoch"],
                               "train_seconds": round(state["train_seconds"], 1),
                               "train_images": len(train_set), "val_images": len(val_set)}
    if accelerator.is_main_process:
        summary.update(_finalize(out, args, test_ds, state))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if writer is not None:
        writer.close()
    return summary


def _write_logs(out: Path, history: list[dict[str, Any]]) -> None:
    with atomic_file(out / "metrics.csv") as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(history[0]))
            w.writeheader()
            w.writerows(history)
    with atomic_file(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(history, indent=1))
    _plot_curves(history, out / "training_curves.png")


def _dataset_name(args: TrainingArguments) -> str:
    if args.dataset_name:
        return args.dataset_name
    return "synthetic TRUS phantoms (trus-hf)" if args.data.startswith("synthetic:") else Path(args.data).name or args.data


def _card(config, processor, args: TrainingArguments, metrics, split: str, state, repo_id: str = MODEL_ID_PLACEHOLDER,
          fold_summary=None) -> str:
    from .hub import render_model_card

    training = {"loss": f"{config.dice_weight} x Dice + {config.bce_weight} x BCE", "optimizer": "Adam",
                "learning_rate": args.learning_rate, "scheduler": "ReduceLROnPlateau(max val IoU, "
                f"factor={args.lr_factor}, patience={args.lr_patience})", "batch_size": args.batch_size,
                "epochs_run": state.get("epoch"), "best_epoch": state.get("best_epoch"), "image_size": args.image_size,
                "augmentation": args.augment, "seed": args.seed, "data": args.data}
    return render_model_card(config, processor, metrics=metrics, dataset_name=_dataset_name(args), eval_split=split,
                             repo_id=repo_id, training=training, fold_summary=fold_summary)


def _finalize(out: Path, args: TrainingArguments, test_ds, state) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test split (through the prediction pipeline), write ``model/`` with its
    card, and push when asked."""
    from .evaluation import evaluate_dataset
    from .models import load_model
    from .pipeline import SegmentationPipeline

    best = out / "checkpoints" / "best"
    result: dict[str, Any] = {"model_dir": str(out / "model")}
    model, processor = load_model(best)
    metrics, split = state.get("best_val"), "validation"
    if test_ds is not None and len(test_ds):
        rows = evaluate_dataset(SegmentationPipeline(model, processor), test_ds)
        metrics, split = aggregate(rows), "test"
        result["test"] = metrics
    repo_id = args.push_to_hub or MODEL_ID_PLACEHOLDER
    dtype = torch.float16 if args.save_dtype == "float16" else None
    model.save_pretrained(out / "model", processor=processor,
                          card=_card(model.config, processor, args, metrics, split, state, repo_id=repo_id),
                          dtype=dtype)
    shutil.copy(out / "training_curves.png", out / "model" / "training_curves.png")
    with atomic_file(out / "summary.json") as tmp:
        tmp.write_text(json.dumps({**result, "best_val_iou": state["best_iou"], "best_epoch": state["best_epoch"]},
                                  indent=1, default=float))
    if args.push_to_hub:
        from .hub import push_folder

        result["pushed"] = push_folder(out / "model", args.push_to_hub)
    return result


def train_kfold(model_config: TrusSegConfig, args: TrainingArguments) -> dict[str, Any]:
    """K-fold cross-validation by group (or by ``fold_column``): K models in ``<output_dir>/fold_<i>``, per-fold
    metrics and mean +/- std in ``kfold_summary.json``. The fold models form an ensemble in `SegmentationPipeline`."""
    dsd = _load(args)
    full = dsd["train"]
    test = dsd.get("test")
    folds = group_kfold(full, k=args.folds, seed=args.seed, fold_column=args.fold_column)
    if args.fold_column is None and len(folds) != args.folds:
        raise ValueError(f"expected {args.folds} folds, got {len(folds)}")
    per_fold = []
    for i, (tr, va) in enumerate(folds, 1):
        fold_args = TrainingArguments(**{**asdict(args), "output_dir": str(Path(args.output_dir) / f"fold_{i}"),
                                         "folds": 0, "push_to_hub": None})
        s = train(model_config, fold_args, full.select(tr), full.select(va), test)
        per_fold.append({"fold": i, "val_iou": s["best_val"]["mean_iou"], "val_dice": s["best_val"]["mean_dice"],
                         "train_images": len(tr), "val_images": len(va), "model_dir": s.get("model_dir")})
    ious = np.array([f["val_iou"] for f in per_fold])
    dices = np.array([f["val_dice"] for f in per_fold])
    summary = {"k": len(per_fold), "folds": per_fold, "iou_mean": float(ious.mean()), "iou_std": float(ious.std()),
               "dice_mean": float(dices.mean()), "dice_std": float(dices.std())}
    out = Path(args.output_dir)
    with atomic_file(out / "kfold_summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    with atomic_file(out / "kfold_metrics.csv") as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(per_fold[0]))
            w.writeheader()
            w.writerows(per_fold)
    return summary


def main_train(architecture: str, argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``ModelArguments`` + ``TrainingArguments`` (HfArgumentParser) and train; the body of both scripts."""
    from transformers import HfArgumentParser

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = HfArgumentParser((ModelArguments, TrainingArguments),
                              description=f"Train a trus-hf {architecture} model (runs under `accelerate launch`).")
    model_args, args = parser.parse_args_into_dataclasses(args=argv)
    config = model_args.to_config(architecture)
    summary = train_kfold(config, args) if args.folds else train(config, args)
    print(json.dumps(summary, indent=1, default=float))
    return summary
