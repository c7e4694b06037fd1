"""Proof on real ultrasound: FPN and Segformer-b0 trained on BUS-BRA (breast ultrasound lesions, official fold 1 as
test, validation split by case) at 256x256 within a fixed CPU budget each, then the same recipe on phantoms.

    python benchmarks/busbra.py [--minutes 30] [--busbra ../shared/data/busbra] [--out runs/busbra]

Prints test IoU and Dice (mean over images, through the prediction pipeline at original resolution) for both.
BUS-BRA: Gomez-Flores et al., Medical Physics 51(4):3110-3123 (2024).
"""

import argparse
import json
from pathlib import Path

import torch

from trus_hf import SegmentationPipeline, TrusSegConfig, load_model
from trus_hf.data import group_train_test_split, load_dataset, synthetic_dataset
from trus_hf.evaluation import evaluate_dataset
from trus_hf.metrics import aggregate
from trus_hf.training import TrainingArguments, train

ROOT = Path(__file__).resolve().parent.parent
# resnet34 runs ~5 s per batch-8 step at 256x256 on 2 cores (under one epoch in 12 minutes); mobilenet_v2 is ~4x faster.
MODELS = {
    "FPN-mobilenet_v2": TrusSegConfig(architecture="fpn", encoder_name="mobilenet_v2"),
    "Segformer-b0": TrusSegConfig(architecture="segformer", segformer_size="b0"),
}


def run(name, config, train_ds, val_ds, test_ds, out, minutes, lr):
    args = TrainingArguments(
        output_dir=str(out),
        image_size=256,
        epochs=1000,
        batch_size=8,
        learning_rate=lr,
        lr_patience=3,
        max_train_minutes=minutes,
        diffusion_iterations=5,
        seed=0,
        checkpoint_every=5,
        tensorboard=False,
        max_steps_per_epoch=40,
    )
    summary = train(config, args, train_ds, val_ds)
    model, proc = load_model(summary["model_dir"])
    test = aggregate(evaluate_dataset(SegmentationPipeline(model, proc, device="cpu"), test_ds, desc=name))
    return {
        "model": name,
        "epochs": summary["epochs_run"],
        "minutes": round(summary["train_seconds"] / 60, 1),
        "best_val_iou": round(summary["best_val_iou"], 4),
        "test_iou": round(test["mean_iou"], 4),
        "test_dice": round(test["mean_dice"], 4),
        "test_images": test["n_images"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0, help="training budget per model")
    ap.add_argument("--encoder", default="mobilenet_v2", help="FPN encoder (resnet34 is the issue's suggestion)")
    ap.add_argument("--synthetic-minutes", type=float, default=5.0)
    ap.add_argument("--busbra", default=str(ROOT.parent / "shared" / "data" / "busbra"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "busbra"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    MODELS[f"FPN-{a.encoder}"] = MODELS.pop("FPN-mobilenet_v2")
    MODELS[f"FPN-{a.encoder}"].encoder_name = a.encoder
    rows = []
    if Path(a.busbra).is_dir():
        full = load_dataset(a.busbra, extra_columns=["kFold"])["train"]
        folds = [str(v) for v in full["kFold"]]
        test = full.select([i for i, f in enumerate(folds) if f == "1"])
        split = group_train_test_split(full.select([i for i, f in enumerate(folds) if f != "1"]), 0.1, seed=0)
        for name, cfg in MODELS.items():
            rows.append(
                {
                    "data": f"BUS-BRA ({len(split['train'])} train / {len(split['test'])} val / {len(test)} test)",
                    **run(
                        name,
                        cfg,
                        split["train"],
                        split["test"],
                        test,
                        Path(a.out) / name,
                        a.minutes,
                        1e-3 if "FPN" in name else 6e-4,
                    ),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    else:
        print(f"BUS-BRA not found at {a.busbra}: skipping the real-data part")
    tr, va, te = synthetic_dataset(300, 384, 0), synthetic_dataset(40, 384, 10_000), synthetic_dataset(100, 384, 20_000)
    for name, cfg in MODELS.items():
        rows.append(
            {
                "data": "synthetic phantoms (300 / 40 / 100)",
                **run(
                    name,
                    cfg,
                    tr,
                    va,
                    te,
                    Path(a.out) / f"synthetic_{name}",
                    a.synthetic_minutes,
                    1e-3 if "FPN" in name else 6e-4,
                ),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'data':45} {'model':14} {'epochs':>6} {'min':>5} {'val IoU':>8} {'test IoU':>9} {'test Dice':>9}")
    for r in rows:
        print(
            f"{r['data']:45} {r['model']:14} {r['epochs']:6d} {r['minutes']:5.1f} {r['best_val_iou']:8.4f} "
            f"{r['test_iou']:9.4f} {r['test_dice']:9.4f}"
        )


if __name__ == "__main__":
    main()
