"""`train_kfold`: K-fold cross-validation by group (or by a fold column such as BUS-BRA's ``kFold``)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ..configuration import TrusSegConfig
from ..data import group_kfold
from ..evaluation import describe_input_size, tune_input_size
from ..fileio import write_csv, write_json
from ..models import load_model
from ..pipeline import KFOLD_SUMMARY, SegmentationPipeline
from .arguments import TrainingArguments
from .dataset import load_training_data
from .loop import train
from .reporting import write_model

__all__ = ["train_kfold"]

logger = logging.getLogger(__name__)


def _tune_members_input_size(runs, held_out, args: TrainingArguments, test) -> dict[str, Any]:
    """Choose one input size for all fold models on their out-of-fold frames (each model on the fold it never
    trained on) and rewrite every fold model with it: its processor, and its card and test figures at that size."""
    members = [load_model(s["model_dir"]) for _, s in runs]
    pairs = [(SegmentationPipeline(m, p, device="cpu"), ds) for (m, p), ds in zip(members, held_out)]
    tuned = tune_input_size(
        pairs, args.tune_input_sizes, on="out-of-fold validation frames", multiscale=args.tune_multiscale
    )
    logger.info(describe_input_size(tuned))
    for (model, processor), (fold_args, s) in zip(members, runs):
        processor.set_input_size(tuned)
        state = {"epoch": s["epochs_run"], "best_epoch": s["best_epoch"], "best_val": s["best_val"]}
        refreshed = write_model(Path(s["model_dir"]), model, processor, fold_args, test, state)
        fold_summary = Path(fold_args.output_dir) / "summary.json"
        write_json(fold_summary, {**json.loads(fold_summary.read_text()), **refreshed, "input_size": tuned})
    return tuned


def train_kfold(
    model_config: TrusSegConfig,
    args: TrainingArguments,
    train_ds: datasets.Dataset | None = None,
    test_ds: datasets.Dataset | None = None,
) -> dict[str, Any]:
    """K models in ``<output_dir>/fold_<i>``, per-fold metrics and mean +/- std in ``kfold_summary.json`` and
    ``kfold_metrics.csv``. The fold models form an ensemble in `SegmentationPipeline`: ``<output_dir>`` itself loads
    as it (``SegmentationPipeline.from_pretrained``, ``trus-hf predict/evaluate --model <output_dir>``).

    With ``args.tune_input_sizes`` the fold models get one input size, chosen on their out-of-fold frames
    (`trus_hf.evaluation.tune_input_size`) and recorded in the summary's ``input_size``.

    Without ``train_ds`` the frames come from ``args.data`` (its train split folded, its test split, if any, scored
    by every fold), as `train` does."""
    if train_ds is None:
        dsd = load_training_data(args, model_config.labels)
        full, test = dsd["train"], dsd.get("test")
    else:
        full, test = train_ds, test_ds
    folds = group_kfold(full, k=args.folds, seed=args.seed, fold_column=args.fold_column)
    if args.fold_column is None and len(folds) != args.folds:
        raise ValueError(f"expected {args.folds} folds, got {len(folds)}")
    per_fold, runs = [], []
    for i, (tr, va) in enumerate(folds, 1):
        fold_args = TrainingArguments(
            **{
                **asdict(args),
                "output_dir": str(Path(args.output_dir) / f"fold_{i}"),
                "folds": 0,
                "push_to_hub": None,
                "tune_input_sizes": [],  # chosen below, on every fold's held-out frames at once
            }
        )
        # with an input size to choose, the test split is scored once, at that size, by _tune_members_input_size
        s = train(model_config, fold_args, full.select(tr), full.select(va), None if args.tune_input_sizes else test)
        runs.append((fold_args, s))
        per_fold.append(
            {
                "fold": i,
                "val_iou": s["best_val"]["mean_iou"],
                "val_dice": s["best_val"]["mean_dice"],
                "train_images": len(tr),
                "val_images": len(va),
                "epochs_run": s["epochs_run"],
                "mixed_precision": s["mixed_precision"],
                "model_dir": s.get("model_dir"),
            }
        )
    ious = np.array([f["val_iou"] for f in per_fold])
    dices = np.array([f["val_dice"] for f in per_fold])
    summary = {
        "k": len(per_fold),
        "folds": per_fold,
        "iou_mean": float(ious.mean()),
        "iou_std": float(ious.std()),
        "dice_mean": float(dices.mean()),
        "dice_std": float(dices.std()),
    }
    if args.tune_input_sizes:
        summary["input_size"] = _tune_members_input_size(runs, [full.select(va) for _, va in folds], args, test)
    out = Path(args.output_dir)
    write_json(out / KFOLD_SUMMARY, summary)
    write_csv(out / "kfold_metrics.csv", per_fold)
    return summary
