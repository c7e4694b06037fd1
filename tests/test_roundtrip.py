"""Gland + lesion through the whole cycle (issue 14): a COCO export with two categories -> `import-labels` -> a
`datasets` folder -> train_segformer.py (tiny) -> `trus-hf push` to the local Hub-compatible server -> the app loads
it by Hub ID on ONNX Runtime (exported on demand) and answers per label, scored against ground truth per label.
Every step runs as a user runs it (command lines, a child app process with the real huggingface_hub client)."""

import json

import numpy as np
from conftest import run_python
from gradio_client import Client, handle_file
from hub_server import LocalHub
from PIL import Image
from test_app_models import CUSTOM, start
from test_multilabel import LABELS, _coco_two_categories

from trus_hf import SegmentationPipeline
from trus_hf.fileio import write_png
from trus_hf.metrics import binary_metrics
from trus_hf.synthetic import PRESETS, generate_phantom


def test_two_labels_from_coco_to_the_app_by_hub_id(tmp_path):
    export = _coco_two_categories(tmp_path, n=10)
    run_python(
        "-m", "trus_hf.cli", "import-labels", str(export), "--out", str(tmp_path / "data"),
        "--labels", *LABELS, "--label-map", "gland=prostate;lesion=tumor",
        "--missing-labels", "lesion=empty,gland=error", timeout=600,
    )  # fmt: skip
    dataset = tmp_path / "data" / "dataset"
    out = tmp_path / "run"
    r = run_python(
        "train_segformer.py", "--data", str(dataset), "--labels", *LABELS, "--output_dir", str(out),
        "--epochs", "1", "--image_size", "64", "--batch_size", "4", "--diffusion_iterations", "1",
        "--tensorboard", "false", timeout=600,
    )  # fmt: skip
    summary = json.loads(r.stdout[r.stdout.index("{") :])
    assert set(summary["best_val"]["labels"]) == set(LABELS)
    model_dir = out / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "gland", "1": "lesion"}
    card = (model_dir / "README.md").read_text()
    assert "gland" in card and "lesion" in card

    ph = generate_phantom(11, (150, 180), PRESETS["clean"].replace(lesion_counts=(0.0, 1.0)))
    frame = write_png(tmp_path / "frame.png", ph.image)
    lesion_gt = write_png(tmp_path / "frame_lesion.png", ph.lesion_mask * 255)
    gland_gt = write_png(tmp_path / "frame_gland.png", ph.gland_mask * 255)
    local = SegmentationPipeline.from_pretrained(model_dir)(ph.image)
    with LocalHub() as hub:
        env = hub.client_env(tmp_path, TRUS_HF_CACHE=str(tmp_path / "app_cache"))
        run_python(
            "-m",
            "trus_hf.cli",
            "push",
            "--model",
            str(model_dir),
            "--repo-id",
            "trus-org/gland-lesion",
            env=env,
            timeout=600,
        )
        proc, url = start(env)
        try:
            client = Client(url, verbose=False)
            mask_files, iou, dice, info = client.predict(
                handle_file(str(frame)),
                handle_file(str(lesion_gt)),
                CUSTOM,
                "trus-org/gland-lesion",
                "ONNX Runtime",
                0.5,
                False,
                False,
                [handle_file(str(gland_gt))],
                api_name="/segment",
            )
        finally:
            proc.terminate()
    assert info["labels"] == LABELS and info["backend"] == "ONNX Runtime"
    assert set(info["scores"]) == set(LABELS)
    by_label = {lb: next(f for f in mask_files if f.endswith(f"mask_{lb}.png")) for lb in LABELS}
    for label, gt in (("gland", ph.gland_mask), ("lesion", ph.lesion_mask)):
        got = np.asarray(Image.open(by_label[label])) > 0
        assert got.shape == ph.image.shape[:2]
        same = local.masks[label]
        if got.any() or same.any():
            assert binary_metrics(got, same)["iou"] >= 0.98, label  # ONNX via the Hub == PyTorch from the folder
        expected = binary_metrics(got, gt.astype(bool))
        assert abs(info["scores"][label]["iou"] - expected["iou"]) < 1e-3, label
    assert abs(iou - info["scores"]["lesion"]["iou"]) < 1e-3
