"""Shared fixtures: tiny real models (small encoders, small images) so the suite runs fast on 2 CPU cores."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download; the Hub tests point HF_ENDPOINT at a local server
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from trus_hf import TrusImageProcessor, TrusSegConfig, create_model

torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parent.parent
BUSBRA = ROOT.parent / "shared" / "data" / "busbra"

TINY_FPN = {
    "architecture": "fpn",
    "encoder_name": "resnet18",
    "decoder_pyramid_channels": 64,
    "decoder_segmentation_channels": 32,
}
TINY_SEGFORMER = {"architecture": "segformer", "segformer_size": "b0"}


def run_python(*args, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: int = 300):
    """``python *args`` in a child process, as a user runs it; asserts that it succeeded (the tail of stderr in the
    message) and returns the finished process."""
    r = subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, (args[:3], r.stderr[-3000:])
    return r


def tiny_processor(size: int = 64, **kw) -> TrusImageProcessor:
    return TrusImageProcessor(size={"height": size, "width": size}, **kw)


def tiny_model(arch: str, seed: int = 0):
    torch.manual_seed(seed)
    return create_model(TrusSegConfig(**(TINY_FPN if arch == "fpn" else TINY_SEGFORMER))).eval()


def tiny_kfold_run(folder: Path, k: int = 2) -> Path:
    """A k-fold run's folder as `train_kfold` leaves it: ``fold_<i>/model`` (tiny random FPNs, one seed per fold)
    and ``kfold_summary.json`` with per-fold validation figures (its card needs them when pushed)."""
    folds = []
    for i in range(1, k + 1):
        tiny_model("fpn", seed=i).save_pretrained(folder / f"fold_{i}" / "model", processor=tiny_processor())
        folds.append({"fold": i, "val_iou": 0.5 + i / 10, "val_dice": 0.6 + i / 10, "val_images": 6})
    iou, dice = [f["val_iou"] for f in folds], [f["val_dice"] for f in folds]
    summary = {
        "k": k,
        "folds": folds,
        "iou_mean": float(np.mean(iou)),
        "iou_std": float(np.std(iou)),
        "dice_mean": float(np.mean(dice)),
        "dice_std": float(np.std(dice)),
    }
    (folder / "kfold_summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory) -> dict[str, Path]:
    """One saved tiny model folder per architecture (random weights, real files)."""
    out = {}
    for arch in ("fpn", "segformer"):
        path = tmp_path_factory.mktemp(f"model_{arch}")
        tiny_model(arch).save_pretrained(path, processor=tiny_processor())
        out[arch] = path
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """The app with its bundled models, served on a free local port for the whole session."""
    import numpy as np
    from PIL import Image
    from test_prepare import write_dicom

    import app as trus_app
    from trus_hf.demo import demo_model_paths
    from trus_hf.synthetic import PRESETS, generate_phantom

    assert set(demo_model_paths()) == {"fpn", "segformer"}, "bundled demo models are missing"
    cache = trus_app.make_cache()
    trus_app.warm_up(cache)
    demo = trus_app.build_demo(cache)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        theme=trus_app.THEME,
        max_file_size=trus_app.MAX_FILE_BYTES,
    )
    folder = tmp_path_factory.mktemp("inputs")
    one_lesion = PRESETS["clean"].replace(lesion_counts=(0.0, 1.0))  # the IoU checks compare real masks
    ph = generate_phantom(3, (300, 360), one_lesion)
    assert ph.n_lesions and ph.lesion_mask.any()
    Image.fromarray(ph.image).save(folder / "frame.png")
    Image.fromarray(ph.lesion_mask * 255).save(folder / "frame_mask.png")
    Image.fromarray(ph.gland_mask * 255).save(folder / "frame_gland.png")
    write_dicom(folder / "frame.dcm", ph.image[None])
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder / "small_mask.png")
    (folder / "notes.png").write_text("this is text, not an image")
    Image.fromarray(np.zeros((5000, 6000), np.uint8)).save(folder / "huge.png")  # 30 MP, a few kB compressed
    yield {"url": f"http://127.0.0.1:{port}", "dir": folder, "phantom": ph, "cache": cache, "demo": demo}
    demo.close()
