"""The seed-scale benchmark (issue 16): ~100 labelled frames from a scanner the bundled models never saw, a fixed
CPU budget, and three starts side by side in one run.

    python benchmarks/few_shot.py [--busbra ../shared/data/busbra] [--models fpn] [--budgets 2 5 10]
                                  [--seeds 0 1 2] [--out runs/few_shot] [--augment-strength 2] [--tune]
                                  [--mixed-precision auto] [--encoder-lr-factor 0.3] [--starts bundled]
                                  [--models-dir my_demo_models] [--starts scratch bundled kfold --folds 3] [--tta]
                                  [--dice-mode image] [--tune-input-sizes 224 256 288 320] [--tune-multiscale]

Target domain: BUS-BRA's Toshiba Aplio 300 frames (139, held out of `trus-hf demo-models`), split by case into 96
frames for training (16 of them, by case, for choosing the best checkpoint) and the rest for testing. Per model,
budget (wall minutes of training on this machine) and seed:

- ``scratch``: the bundled model's architecture and labels with random weights (no ImageNet download here);
- ``bundled``: fine-tuned from the bundled start (``--init_from trus_hf/demo_models/<model>``);
- ``zero-shot``: the bundled start as it is (no training; once per model);
- ``kfold`` (opt-in): the same budget split over a ``--folds``-fold cross-validation of the 96 frames from the bundled
  start (``train_fpn.py --init_from ... --folds K --max_train_minutes budget/K``), its fold models scored as one
  ensemble (their logits averaged, `SegmentationPipeline` with every fold's model): every frame trains K - 1 of
  the models and chooses the checkpoint of one.

``--tta`` scores every model with horizontal-flip test-time augmentation (`trus-hf predict --tta`).
``--tune-input-sizes`` has every trained start choose its input size after training among these sides and the
trained one (``--tune_input_sizes``: a single run on its 16 validation frames, the kfold start on its out-of-fold
frames, never the test frames); with ``--tune-multiscale`` one more candidate averages all of them. Every run
fine-tunes with the Dice per image (``--dice-mode``, `DICE_MODE`) and Adam at the bundled models' learning rate.

``--models-dir`` puts another folder of starts (``<dir>/fpn``, ``<dir>/segformer``, e.g. what ``trus-hf demo-models
--out <dir>`` trained) in place of the bundled ones, for both ``bundled`` and ``zero-shot``.

Prints test lesion Dice and IoU (mean over test frames at original resolution, through the prediction pipeline) with
95% bootstrap intervals, the mean over seeds, the gain of the bundled start over scratch per budget, and writes
``results.json`` and ``dice_vs_budget.png`` into --out. Issue 16's targets: with 96 frames and 5 minutes, from the
bundled start, test Dice >= 0.75 and >= +0.10 over scratch.
BUS-BRA: Gomez-Flores et al., Medical Physics 51(4):3110-3123 (2024).
"""

import argparse
import copy
import dataclasses
import json
import random
import time
from pathlib import Path

import numpy as np

from trus_hf import SegmentationPipeline
from trus_hf.configuration import DICE_MODES
from trus_hf.data.busbra import load_busbra
from trus_hf.demo import DEMO_CONFIGS, DEMO_LABELS, DEMO_MODELS_DIR, HELD_OUT_DEVICE, IMAGE_SIZE
from trus_hf.evaluation import bootstrap_ci, evaluate_dataset, of_label, tune_postprocessing
from trus_hf.training import TrainingArguments, train, train_kfold

ROOT = Path(__file__).resolve().parent.parent
N_TRAIN, N_VAL = 96, 16
#: One learning rate for both starts (the start is the only change): the bundled models' own. Fine-tuning from the
#: bundled FPN at the lower 3e-4 of common practice scored 0.05 less at 5 minutes (BENCHMARKS.md, 2026-12-04); 2e-3
#: less too.
LEARNING_RATE = 1e-3
#: The Dice of fine-tuning, for every start: per image, the metric the benchmark reports (mean Dice over test frames).
#: The bundled FPN was trained with the lesion-size balanced Dice (phantoms with lesion-free frames); on the 96
#: Toshiba frames, where every frame has a lesion, the per-image Dice scored higher (BENCHMARKS.md, 2026-12-06).
DICE_MODE = "image"


def recipe_config(name: str, dice_mode: str = DICE_MODE):
    """The model options of every run of ``name`` (scratch and bundled alike): the bundled model's architecture
    and labels, with the fine-tuning Dice."""
    return dataclasses.replace(DEMO_CONFIGS[name], dice_mode=dice_mode)


def split_by_case(ds, seed: int = 0):
    """(train, validation, test) indices: whole cases shuffled with a fixed seed, taken until N_TRAIN frames."""
    cases: dict[str, list[int]] = {}
    for i, g in enumerate(ds["group"]):
        cases.setdefault(g, []).append(i)
    order = sorted(cases)
    random.Random(seed).shuffle(order)
    train_cases, n_train, test_idx = [], 0, []
    for case in order:
        if n_train + len(cases[case]) <= N_TRAIN:
            train_cases.append(case)
            n_train += len(cases[case])
        else:
            test_idx.extend(cases[case])
    val_idx, fit_idx = [], []
    for case in train_cases:  # the first training cases that fit in N_VAL frames choose the checkpoint
        (val_idx if len(val_idx) + len(cases[case]) <= N_VAL else fit_idx).extend(cases[case])
    return fit_idx, val_idx, test_idx


def _lesion_dice(pipe, test_ds) -> float:
    return float(np.mean([r["dice"] for r in of_label(evaluate_dataset(pipe, test_ds, desc="test"), "lesion")]))


def score(model_dir, test_ds, tune_ds=None, tta: bool = False) -> dict:
    """Test lesion Dice and IoU of a model folder (a k-fold run's folder: its fold models as one ensemble); with
    ``tune_ds`` (the run's validation frames) the post-processing is tuned on it first, as `trus-hf
    tune-postprocessing` does. A model whose input size was chosen after training is also scored at the size it
    trained at (``dice_trained_size``): what the choice changed."""
    pipe = SegmentationPipeline.from_pretrained(model_dir, device="cpu", tta_flip=tta)
    out = {}
    if pipe.processor.size_selection is not None:
        chosen = pipe.processor
        pipe.processor = copy.deepcopy(chosen)
        pipe.processor.set_input_size()
        out["dice_trained_size"] = _lesion_dice(pipe, test_ds)
        pipe.processor = chosen
    if tune_ds is not None:
        tuned = tune_postprocessing(pipe, tune_ds, desc="tuning")
        pipe.processor.set_postprocessing(tuned["mask_threshold"], tuned["min_mask_fraction"])
        out["postprocessing"] = {"threshold": tuned["mask_threshold"], "min_fraction": tuned["min_mask_fraction"]}
    rows = of_label(evaluate_dataset(pipe, test_ds, desc="test"), "lesion")
    for metric in ("dice", "iou"):
        v = np.array([r[metric] for r in rows])
        out[metric] = float(v.mean())
        out[f"{metric}_ci95"] = list(bootstrap_ci(v))
    out["n_test"] = len(rows)
    return out


def run_args(name, start, budget, seed, out, models_dir: Path = DEMO_MODELS_DIR, **options) -> TrainingArguments:
    """The recipe of one run; ``options`` are further `TrainingArguments` (augmentation strength, precision, encoder
    lr, folds)."""
    return TrainingArguments(
        **options,
        output_dir=str(out),
        image_size=IMAGE_SIZE,
        epochs=10_000,
        batch_size=8,
        learning_rate=LEARNING_RATE,
        lr_patience=3,
        max_train_minutes=budget,
        diffusion_iterations=3,
        seed=seed,
        checkpoint_every=1000,
        tensorboard=False,
        init_from=str(models_dir / name) if start == "bundled" else None,
    )


def fine_tune(
    name, start, budget, seed, fit_ds, val_ds, out, models_dir: Path = DEMO_MODELS_DIR, dice_mode=DICE_MODE, **options
):
    """One run; returns `train`'s summary."""
    args = run_args(name, start, budget, seed, out, models_dir, **options)
    return train(recipe_config(name, dice_mode), args, fit_ds, val_ds)  # the same model options for both starts


def fine_tune_kfold(
    name, budget, seed, k, train_ds, out, models_dir: Path = DEMO_MODELS_DIR, dice_mode=DICE_MODE, **options
):
    """`train_kfold` from the bundled start: K folds of ``train_ds`` by case, budget / K minutes each; returns its
    summary (the run's folder, ``out``, loads as the ensemble)."""
    args = run_args(name, "bundled", budget / k, seed, out, models_dir, folds=k, **options)
    return train_kfold(recipe_config(name, dice_mode), args, train_ds)


def _chosen(summary) -> str | None:
    """The input size a run chose after training (``--tune-input-sizes``): a side, or the sides averaged."""
    tuned = summary.get("input_size")
    if not tuned:
        return None
    return "+".join(map(str, tuned["multiscale"])) if tuned.get("multiscale") else str(tuned["size"]["height"])


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for (name, start), runs in results.items():
        if start == "zero-shot":
            ax.axhline(runs[0]["dice"], ls="--", lw=1, label=f"{name} zero-shot", color="gray")
            continue
        budgets = sorted({r["budget"] for r in runs})
        means = [np.mean([r["dice"] for r in runs if r["budget"] == b]) for b in budgets]
        ax.plot(budgets, means, marker="o", label=f"{name} {start}")
        ax.scatter([r["budget"] for r in runs], [r["dice"] for r in runs], s=8, alpha=0.4)
    ax.set_xlabel("training budget (CPU minutes)")
    ax.set_ylabel("test lesion Dice (Toshiba)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--busbra", default=str(ROOT.parent / "shared" / "data" / "busbra"))
    ap.add_argument("--models", nargs="+", default=["fpn"], choices=list(DEMO_CONFIGS))
    ap.add_argument("--budgets", nargs="+", type=float, default=[2, 5, 10])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default=str(ROOT / "runs" / "few_shot"))
    ap.add_argument("--augment-strength", type=float, default=1.0, help="augmentation strength of every run")
    ap.add_argument(
        "--tune", action="store_true", help="tune each fine-tuned model's post-processing on its validation frames"
    )
    ap.add_argument(
        "--mixed-precision",
        default="no",
        choices=["no", "bf16", "auto"],
        help="precision of every training step (auto: bf16 where the CPU runs it natively, more steps per budget)",
    )
    ap.add_argument(
        "--encoder-lr-factor", type=float, default=1.0, help="encoder learning rate x this, for the bundled start"
    )
    ap.add_argument(
        "--starts",
        nargs="+",
        default=["scratch", "bundled"],
        choices=["scratch", "bundled", "kfold"],
        help="which trained starts to run (scratch and bundled by default: the gain needs both; kfold: the bundled "
        "start's --folds fold models as an ensemble, the budget split over them)",
    )
    ap.add_argument("--folds", type=int, default=3, help="folds of the kfold start (default 3)")
    ap.add_argument(
        "--dice-mode",
        default=DICE_MODE,
        choices=list(DICE_MODES),
        help=f"Dice of every run's loss (default {DICE_MODE}: per image)",
    )
    ap.add_argument("--tta", action="store_true", help="score every model with horizontal-flip TTA")
    ap.add_argument(
        "--split-seed", type=int, default=0, help="seed of the split by case (default 0: the benchmark's split)"
    )
    ap.add_argument(
        "--tune-input-sizes",
        nargs="*",
        type=int,
        default=[],
        help="input sides every trained start chooses from after training, on validation frames (out of fold for "
        "kfold); none by default",
    )
    ap.add_argument(
        "--tune-multiscale",
        action="store_true",
        help="with --tune-input-sizes, one more candidate averages all those sides (multi-scale inference)",
    )
    ap.add_argument(
        "--models-dir",
        type=Path,
        default=DEMO_MODELS_DIR,
        help="folder holding the starts as <dir>/fpn, <dir>/segformer (default: the bundled models)",
    )
    a = ap.parse_args()
    a.starts = list(dict.fromkeys(a.starts))  # each start once, in the order given
    if a.folds < 2:
        raise SystemExit(f"--folds must be >= 2, got {a.folds}")
    gains = [s for s in a.starts if s != "scratch"] if "scratch" in a.starts else []  # each start - scratch
    out = Path(a.out)
    if not (Path(a.busbra) / "bus_data.csv").is_file():
        raise SystemExit(f"{a.busbra}: BUS-BRA not found (pass --busbra)")
    ds = load_busbra(a.busbra, devices=[HELD_OUT_DEVICE], labels=DEMO_LABELS)
    fit_idx, val_idx, test_idx = split_by_case(ds, a.split_seed)
    fit_ds, val_ds, test_ds = ds.select(fit_idx), ds.select(val_idx), ds.select(test_idx)
    train_ds = ds.select(sorted(fit_idx + val_idx))  # the kfold start's 96 frames
    print(f"{HELD_OUT_DEVICE}: {len(ds)} frames -> {len(fit_idx)} fit + {len(val_idx)} val, {len(test_idx)} test")
    options = {
        "augment_strength": a.augment_strength,
        "mixed_precision": a.mixed_precision,
        "dice_mode": a.dice_mode,
        "tune_input_sizes": a.tune_input_sizes,
        "tune_multiscale": a.tune_multiscale,
    }
    results: dict = {}
    started = time.time()
    for name in a.models:
        results[(name, "zero-shot")] = [{"budget": 0, "seed": None, **score(a.models_dir / name, test_ds, tta=a.tta)}]
        for budget in a.budgets:
            for seed in a.seeds:
                for start in a.starts:
                    run_dir = out / f"{name}_{start}_{budget:g}min_seed{seed}"
                    row = {"budget": budget, "seed": seed, "dice_mode": a.dice_mode}
                    run_started = time.time()
                    if start == "kfold":
                        kfold = fine_tune_kfold(name, budget, seed, a.folds, train_ds, run_dir, a.models_dir, **options)
                        row["epochs"] = [f["epochs_run"] for f in kfold["folds"]]
                        row["mixed_precision"] = kfold["folds"][0]["mixed_precision"]  # as resolved ("auto")
                        row["input_size"] = _chosen(kfold)
                        row["wall_minutes"] = round((time.time() - run_started) / 60, 2)  # training + size choice
                        row.update(score(run_dir, test_ds, tta=a.tta))  # the fold models as one ensemble, untuned
                    else:
                        # a lower encoder learning rate only means something for a trained encoder: scratch keeps 1
                        lr_factor = a.encoder_lr_factor if start == "bundled" else 1.0
                        summary = fine_tune(
                            name,
                            start,
                            budget,
                            seed,
                            fit_ds,
                            val_ds,
                            run_dir,
                            models_dir=a.models_dir,
                            encoder_lr_factor=lr_factor,
                            **options,
                        )
                        row["epochs"], row["mixed_precision"] = summary["epochs_run"], summary["mixed_precision"]
                        row["input_size"] = _chosen(summary)
                        row["wall_minutes"] = round((time.time() - run_started) / 60, 2)
                        row.update(score(summary["model_dir"], test_ds, val_ds if a.tune else None, tta=a.tta))
                    results.setdefault((name, start), []).append(row)
                    print(f"{name} {start} {budget:g} min seed {seed}: Dice {row['dice']:.3f}", flush=True)
    print(f"\ntest lesion Dice / IoU on {len(test_idx)} {HELD_OUT_DEVICE} frames (95% bootstrap CI over frames)")
    for (name, start), runs in results.items():
        for r in runs:
            lo, hi = r["dice_ci95"]
            print(
                f"  {name:9} {start:9} {r['budget']:4g} min seed {r['seed']}: Dice {r['dice']:.3f} [{lo:.3f}, "
                f"{hi:.3f}], IoU {r['iou']:.3f}, epochs {r.get('epochs', 0)}"
                + (f", input {r['input_size']}" if r.get("input_size") else "")
                + (f" (at the trained size {r['dice_trained_size']:.3f})" if "dice_trained_size" in r else "")
            )
    print("\nmean over seeds" + (f" ({', '.join(f'{s} - scratch' for s in gains)})" if gains else ""))
    for name in a.models:
        for budget in a.budgets:
            mean = {
                s: float(np.mean([r["dice"] for r in results[(name, s)] if r["budget"] == budget])) for s in a.starts
            }
            diffs = ", ".join(f"{mean[s] - mean['scratch']:+.3f}" for s in gains)
            gain = f" ({diffs})" if gains else ""
            print(
                f"  {name} {budget:g} min: {', '.join(f'{s} {v:.3f}' for s, v in mean.items())}{gain}; "
                f"zero-shot {results[(name, 'zero-shot')][0]['dice']:.3f}"
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({f"{k[0]} {k[1]}": v for k, v in results.items()}, indent=1))
    plot(results, out / "dice_vs_budget.png")
    print(f"\nwrote {out / 'results.json'} and {out / 'dice_vs_budget.png'} ({(time.time() - started) / 60:.0f} min)")


if __name__ == "__main__":
    main()
