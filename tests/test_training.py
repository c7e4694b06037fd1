import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import ROOT, TINY_FPN

from trus_hf import SegmentationPipeline, load_model
from trus_hf.pipeline import kfold_members
from trus_hf.synthetic import generate_phantom

TINY = [
    "--data",
    "synthetic:12:96",
    "--image_size",
    "64",
    "--batch_size",
    "4",
    "--diffusion_iterations",
    "2",
    "--learning_rate",
    "1e-3",
    "--tensorboard",
    "false",
]
FPN = ["--encoder_name", "resnet18", "--decoder_pyramid_channels", "64", "--decoder_segmentation_channels", "32"]


def tiny_run(output_dir, **overrides):
    """Train the suite's tiny FPN in this process (64x64 phantoms, 2 steps per epoch); returns the run's summary."""
    from trus_hf import TrusSegConfig
    from trus_hf.training import TrainingArguments, train

    options = {
        "data": "synthetic:12:96",
        "image_size": 64,
        "batch_size": 4,
        "diffusion_iterations": 0,
        "epochs": 1,
        "max_steps_per_epoch": 2,
        "tensorboard": False,
        **overrides,
    }
    return train(TrusSegConfig(**TINY_FPN), TrainingArguments(output_dir=str(output_dir), **options))


def run(script, *args, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def test_train_fpn_script_leaves_a_loadable_model_with_card_and_logs(tmp_path):
    out = tmp_path / "fpn"
    r = run("train_fpn.py", "--output_dir", str(out), "--epochs", "2", *TINY, *FPN)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout[r.stdout.index("{") :])
    assert summary["epochs_run"] == 2 and 0 <= summary["best_val_iou"] <= 1
    model_dir = out / "model"
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= {
        p.name for p in model_dir.iterdir()
    }
    for name in ("metrics.csv", "metrics.json", "training_curves.png", "summary.json"):
        assert (out / name).is_file(), name
    card = (model_dir / "README.md").read_text()
    assert "model-index" in card and f"{summary['best_val']['mean_iou']:.4f}" in card
    model, proc = load_model(model_dir)
    assert proc.size == {"height": 64, "width": 64}
    assert SegmentationPipeline(model, proc)(generate_phantom(0, (80, 90)).image).mask.shape == (80, 90)


def test_segformer_kfold_writes_summary_and_fold_models_form_an_ensemble(tmp_path):
    out = tmp_path / "seg"
    r = run("train_segformer.py", "--output_dir", str(out), "--epochs", "1", "--folds", "2", *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "kfold_summary.json").read_text())
    assert summary["k"] == 2 and len(summary["folds"]) == 2
    assert all(f["epochs_run"] == 1 and f["mixed_precision"] == "no" for f in summary["folds"])  # as each fold ran
    ious = [f["val_iou"] for f in summary["folds"]]
    assert summary["iou_mean"] == pytest.approx(sum(ious) / 2)
    assert (out / "kfold_metrics.csv").is_file()
    pipe = SegmentationPipeline.from_pretrained([out / "fold_1" / "model", out / "fold_2" / "model"])
    assert len(pipe.models) == 2 and pipe(generate_phantom(1, (70, 70)).image).mask.shape == (70, 70)
    # the run's folder is that ensemble: the same probabilities as the fold models listed one by one
    whole = SegmentationPipeline.from_pretrained(out, tta_flip=True)
    listed = SegmentationPipeline.from_pretrained([out / "fold_1" / "model", out / "fold_2" / "model"], tta_flip=True)
    image = generate_phantom(2, (70, 70)).image
    assert len(whole.models) == 2
    np.testing.assert_allclose(whole(image).probabilities, listed(image).probabilities, atol=1e-6)
    assert kfold_members(out / "fold_1" / "model") is None  # a model folder is itself
    shutil.rmtree(out / "fold_2" / "model")
    with pytest.raises(ValueError, match=r"a 2-fold run, but fold model\(s\) missing: .*fold_2"):
        SegmentationPipeline.from_pretrained(out)


def test_kill_9_at_three_random_moments_then_resume_finishes_cleanly(tmp_path):
    """kill -9 three times at random moments (after a random number of checkpoints, at a random point of the next
    epoch), resuming each time: the history continues without gaps, the final checkpoint loads, no partial files."""
    import random

    rng = random.Random(1234)
    out = tmp_path / "resume"
    epochs = 14
    args = [sys.executable, str(ROOT / "train_fpn.py"), "--output_dir", str(out), "--epochs", str(epochs), *TINY, *FPN]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
    state_file = out / "checkpoints" / "last" / "trainer_state.json"
    kills = []
    for attempt in range(3):
        proc = subprocess.Popen(
            args + (["--resume", "true"] if attempt else []),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        start_epoch = json.loads(state_file.read_text())["epoch"] if state_file.is_file() else 0
        target = start_epoch + rng.randint(1, 2)
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if state_file.is_file():
                try:
                    epoch = json.loads(state_file.read_text())["epoch"]
                except (json.JSONDecodeError, KeyError):  # must never happen: writes are atomic
                    pytest.fail("trainer_state.json was observed half-written")
                if epoch >= target:
                    time.sleep(rng.uniform(0.0, 0.8))  # somewhere inside the next epoch (or its checkpoint write)
                    os.kill(proc.pid, signal.SIGKILL)
                    kills.append(epoch)
                    break
            time.sleep(0.02)
        proc.wait(timeout=30)
        assert len(kills) == attempt + 1, "training finished or stalled before it could be killed"
    r = run("train_fpn.py", "--output_dir", str(out), "--epochs", str(epochs), "--resume", "true", *TINY, *FPN)
    assert r.returncode == 0, r.stderr[-3000:]
    history = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))  # continued, never restarted or duplicated
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".old-" in p.name]
    assert not leftovers, leftovers
    for folder in (out / "checkpoints" / "best", out / "model"):
        model, _ = load_model(folder)
        assert torch.isfinite(model(torch.randn(1, 3, 64, 64)).logits).all()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_run_learns_exactly_what_the_uninterrupted_run_learns(tmp_path, workers):
    """3 epochs in one go, and 1 epoch then a resume to 3 (augmentation on, shuffled, in the main process or in loader
    workers): the same weights, bit for bit, because each epoch's shuffle, augmentation and dropout are seeded from
    the run's seed and the epoch alone (and each worker's augmentation from the loader's generator)."""
    from safetensors.torch import load_file

    def run_to(folder, epochs, resume=False):
        tiny_run(tmp_path / folder, epochs=epochs, resume=resume, num_workers=workers)
        return load_file(tmp_path / folder / "checkpoints" / "last" / "model.safetensors")

    whole = run_to("whole", 3)
    run_to("split", 1)
    resumed = run_to("split", 3, resume=True)
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    history = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_preview_augmentations_writes_a_grid_and_trains_nothing(tmp_path):
    out = tmp_path / "preview"
    r = run(
        "train_segformer.py", "--output_dir", str(out), "--preview_augmentations", "6", "--augment_strength", "2", *TINY
    )
    assert r.returncode == 0, r.stderr[-3000:]
    from PIL import Image

    grid = Image.open(out / "augmentations.png")
    assert grid.size[0] > 400 and grid.size[1] > 300
    assert not (out / "model").exists()


def test_bf16_mixed_precision_trains_in_bf16_records_it_and_refuses_unknown_values(tmp_path):
    from safetensors.torch import load_file

    from trus_hf.training import parse_args
    from trus_hf.training.arguments import native_bf16, resolve_mixed_precision

    def weights(precision):
        summary = tiny_run(tmp_path / precision, data="synthetic:8:96", mixed_precision=precision)
        model_dir = tmp_path / precision / "model"
        assert summary["mixed_precision"] == resolve_mixed_precision(precision)
        assert f"mixed_precision: `{summary['mixed_precision']}`" in (model_dir / "README.md").read_text()
        return load_file(model_dir / "model.safetensors")

    fp32, bf16 = weights("no"), weights("bf16")
    floats = [t for t in bf16.values() if t.is_floating_point()]  # (batch norm also counts its batches in int64)
    assert floats and all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in floats)  # fp32 master weights
    # the same seed and data: only the autocast precision differs, and it changes what was learned
    assert any(not torch.equal(fp32[k], bf16[k]) for k in fp32)
    assert resolve_mixed_precision("auto") == ("bf16" if native_bf16() else "no")
    with pytest.raises(SystemExit) as exc:
        parse_args("fpn", ["--mixed_precision", "bf61"])
    assert exc.value.code == 2


def test_kfold_chooses_one_input_size_out_of_fold_and_rewrites_every_fold_model(tmp_path):
    from trus_hf import TrusSegConfig
    from trus_hf.data import group_kfold, load_dataset
    from trus_hf.evaluation import _frame_ious
    from trus_hf.training import TrainingArguments, train_kfold

    out = tmp_path / "k2"
    args = TrainingArguments(
        output_dir=str(out),
        data="synthetic:12:96",
        image_size=64,
        batch_size=4,
        diffusion_iterations=0,
        epochs=2,
        learning_rate=1e-3,
        max_steps_per_epoch=2,
        tensorboard=False,
        folds=2,
        tune_input_sizes=[96, 32],
        tune_multiscale=True,
    )
    summary = train_kfold(TrusSegConfig(**TINY_FPN), args)
    tuned = summary["input_size"]
    assert set(tuned["scores"]) == {"32", "64", "96", "32+64+96"} and tuned["trained"] == {"height": 64, "width": 64}
    frames = load_dataset("synthetic:12:96", labels=["lesion"])["train"]
    assert tuned["frames"] == len(frames) and tuned["on"] == "out-of-fold validation frames"
    side = tuned["size"]["height"]
    best = max(tuned["scores"], key=tuned["scores"].get)
    if tuned["scores"][best] < tuned["scores"]["64"] + 0.005:
        best = "64"  # another size only where it gains at least min_gain
    assert (side, tuned["multiscale"]) == ((64, [32, 64, 96]) if "+" in best else (int(best), None))
    # every fold model carries the size and its record: the ensemble (the run's folder) predicts at that size
    folds = group_kfold(frames, k=2, seed=args.seed)
    pooled = {}
    for i, (_, va) in enumerate(folds, 1):
        model, processor = load_model(out / f"fold_{i}" / "model")
        assert processor.size == tuned["size"] and processor.trained_size == {"height": 64, "width": 64}
        assert processor.multiscale == tuned["multiscale"]
        assert processor.size_selection["scores"] == tuned["scores"]
        card = (out / f"fold_{i}" / "model" / "README.md").read_text()
        assert f"this input size was chosen after training on {len(frames)} out-of-fold validation frames" in card
        assert "trained at 64×64" in card and f"resizes to\n{side}×{side}" in card
        # the recorded score is each fold model on its own held-out fold, pooled: recomputed here at 32 pixels
        pipe = SegmentationPipeline(model, processor.with_size(32), device="cpu")
        pooled[i] = _frame_ious(pipe, frames.select(va))
    assert tuned["scores"]["32"] == pytest.approx(np.mean(pooled[1] + pooled[2]), abs=1e-4)
    assert SegmentationPipeline.from_pretrained(out).processor.size == tuned["size"]
