"""What a run leaves besides checkpoints: ``metrics.csv``/``metrics.json`` and ``training_curves.png`` per epoch,
the model card of each saved model, and at the end ``model/`` (the best checkpoint evaluated on the test split
through the prediction pipeline) with ``summary.json``, pushed to the Hub when asked."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_file, write_csv, write_json
from ..modelcard import MODEL_ID_PLACEHOLDER, render_model_card
from .arguments import TrainingArguments

__all__ = ["finalize_run", "run_card", "write_logs", "write_model"]

logger = logging.getLogger(__name__)


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


def write_logs(out: Path, history: list[dict[str, Any]]) -> None:
    write_csv(out / "metrics.csv", history)
    write_json(out / "metrics.json", history)
    _plot_curves(history, out / "training_curves.png")


def _dataset_name(args: TrainingArguments) -> str:
    if args.dataset_name:
        return args.dataset_name
    return (
        "synthetic TRUS phantoms (trus-hf)" if args.data.startswith("synthetic:") else Path(args.data).name or args.data
    )


def run_card(
    config,
    processor,
    args: TrainingArguments,
    metrics,
    split: str,
    state,
    repo_id: str = MODEL_ID_PLACEHOLDER,
    fold_summary=None,
) -> str:
    """The model card of a checkpoint of this run: recipe, data and the metrics it was chosen or tested on."""
    training = {
        "loss": f"{config.dice_weight} x Dice{config.dice_description} + {config.bce_weight} x BCE",
        "optimizer": "Adam",
        "learning_rate": args.learning_rate,
        "scheduler": f"ReduceLROnPlateau(max val IoU, factor={args.lr_factor}, patience={args.lr_patience})",
        "batch_size": args.batch_size,
        "epochs_run": state.get("epoch"),
        "best_epoch": state.get("best_epoch"),
        "image_size": args.image_size,
        "mixed_precision": args.mixed_precision,
        "augmentation": (f"strength {args.augment_strength:g}" if args.augment_strength != 1 else True)
        if args.augment
        else False,
        "seed": args.seed,
        "data": args.data,
    }
    if args.init_from:
        training["init_from"] = args.init_from + (f"@{args.revision}" if args.revision else "")
    if args.freeze_encoder_epochs or args.encoder_lr_factor != 1.0:
        training["fine_tuning"] = (
            f"encoder frozen for {args.freeze_encoder_epochs} epochs, encoder learning rate x{args.encoder_lr_factor}"
        )
    return render_model_card(
        config,
        processor,
        metrics=metrics,
        dataset_name=_dataset_name(args),
        eval_split=split,
        repo_id=repo_id,
        training=training,
        fold_summary=fold_summary,
    )


def write_model(model_dir: Path, model, processor, args: TrainingArguments, test_ds, state) -> dict[str, Any]:
    """Save ``model`` with ``processor`` into ``model_dir`` with its card, evaluated first on the test split when
    there is one (through the prediction pipeline, so at the processor's input size); returns ``{"test": ...}``
    then."""
    from ..evaluation import evaluate_dataset, summarize
    from ..pipeline import SegmentationPipeline

    result: dict[str, Any] = {}
    metrics, split = state.get("best_val"), "validation"
    if test_ds is not None and len(test_ds):
        rows = evaluate_dataset(SegmentationPipeline(model, processor), test_ds)
        metrics, split = summarize(rows, model.config.primary_label), "test"
        result["test"] = metrics
    model.save_pretrained(
        model_dir,
        processor=processor,
        card=run_card(
            model.config, processor, args, metrics, split, state, repo_id=args.push_to_hub or MODEL_ID_PLACEHOLDER
        ),
        dtype=torch.float16 if args.save_dtype == "float16" else None,
    )
    return result


def finalize_run(out: Path, args: TrainingArguments, test_ds, state, val_ds=None) -> dict[str, Any]:
    """Write ``model/``: the best checkpoint, at the input size chosen on ``val_ds`` when ``--tune_input_sizes`` asks
    for one, evaluated on the test split (through the prediction pipeline), with its card; push when asked."""
    from ..evaluation import describe_input_size, tune_input_size
    from ..models import load_model
    from ..pipeline import SegmentationPipeline

    model, processor = load_model(out / "checkpoints" / "best")
    result: dict[str, Any] = {"model_dir": str(out / "model")}
    if args.tune_input_sizes and val_ds is not None and len(val_ds):
        pipeline = SegmentationPipeline(model, processor, device="cpu")
        result["input_size"] = tune_input_size(
            [(pipeline, val_ds)], args.tune_input_sizes, multiscale=args.tune_multiscale
        )
        logger.info(describe_input_size(result["input_size"]))
        processor.set_input_size(result["input_size"])
    result.update(write_model(out / "model", model, processor, args, test_ds, state))
    shutil.copy(out / "training_curves.png", out / "model" / "training_curves.png")
    write_json(out / "summary.json", {**result, "best_val_iou": state["best_iou"], "best_epoch": state["best_epoch"]})
    if args.push_to_hub:
        from ..hub import push_folder

        result["pushed"] = push_folder(out / "model", args.push_to_hub)
    return result
