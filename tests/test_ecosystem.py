"""Where Hugging Face users already are: transformers' pipeline and Auto classes on trus-hf folders and Hub IDs, card
snippets that run as written, command lines that answer mistakes with a usage line, and short logs away from a
terminal."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT, run_python, tiny_processor
from hub_server import LocalHub
from PIL import Image

from trus_hf import SegmentationPipeline, TrusSegConfig, create_model
from trus_hf.modelcard import render_model_card
from trus_hf.synthetic import generate_phantom

LABELS = ["gland", "lesion"]


def _model(arch: str, labels=("lesion",)):
    import torch

    torch.manual_seed(0)
    extra = {"encoder_name": "resnet18", "decoder_pyramid_channels": 64, "decoder_segmentation_channels": 32}
    return create_model(TrusSegConfig(architecture=arch, labels=list(labels), **(extra if arch == "fpn" else {})))


@pytest.mark.parametrize("arch", ["fpn", "segformer"])
@pytest.mark.parametrize("labels", [("lesion",), LABELS])
def test_transformers_pipeline_agrees_with_the_segmentation_pipeline(tmp_path, arch, labels):
    from transformers import pipeline

    # tuned post-processing in the processor: both paths must apply it the same way
    tuned = tiny_processor(mask_threshold={"lesion": 0.45}, min_mask_fraction={"lesion": 0.002})
    _model(arch, labels).save_pretrained(tmp_path / "m", processor=tuned)
    frame = generate_phantom(5, (130, 170), "clean").image
    Image.fromarray(frame).save(tmp_path / "frame.png")
    hf = pipeline("image-segmentation", model=str(tmp_path / "m"))
    ours = SegmentationPipeline.from_pretrained(tmp_path / "m")(frame)
    for out in (hf(str(tmp_path / "frame.png")), hf(Image.open(tmp_path / "frame.png"))):
        assert [o["label"] for o in out] == list(labels)
        for o in out:
            mask = np.asarray(o["mask"]) > 0
            assert mask.shape == (130, 170) and np.array_equal(mask, ours.masks[o["label"]].astype(bool))


@pytest.mark.parametrize("arch", ["fpn", "segformer"])
def test_transformers_pipeline_averages_a_multiscale_processor_as_the_segmentation_pipeline(tmp_path, arch):
    from transformers import pipeline

    processor = tiny_processor(multiscale=[64, 96])  # the sides a tuned model may carry (`tune_input_size`)
    _model(arch, LABELS).save_pretrained(tmp_path / "m", processor=processor)
    frame = generate_phantom(6, (130, 170), "clean").image
    ours = SegmentationPipeline.from_pretrained(tmp_path / "m")(frame)
    single = SegmentationPipeline.from_pretrained(tmp_path / "m")
    single.processor = single.processor.with_size(64)
    assert not all(np.array_equal(ours.masks[lb], single(frame).masks[lb]) for lb in LABELS)  # the sides count
    out = pipeline("image-segmentation", model=str(tmp_path / "m"))(frame)
    for o in out:
        assert np.array_equal(np.asarray(o["mask"]) > 0, ours.masks[o["label"]].astype(bool)), o["label"]


def test_auto_classes_know_the_fpn(tmp_path):
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForSemanticSegmentation

    from trus_hf.transformers_integration import TrusFPNForSemanticSegmentation

    _model("fpn").save_pretrained(tmp_path / "m", processor=tiny_processor())
    assert AutoConfig.from_pretrained(tmp_path / "m").model_type == "trus_hf_fpn"
    assert isinstance(AutoModelForSemanticSegmentation.from_pretrained(tmp_path / "m"), TrusFPNForSemanticSegmentation)
    assert type(AutoImageProcessor.from_pretrained(tmp_path / "m")).__name__ == "TrusImageProcessor"


def test_without_import_trus_hf_the_fpn_error_names_the_package(tmp_path):
    _model("fpn").save_pretrained(tmp_path / "m", processor=tiny_processor())
    code = f"from transformers import pipeline\npipeline('image-segmentation', model={str(tmp_path / 'm')!r})"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode != 0 and "trus_hf_fpn" in r.stderr


HUB = textwrap.dedent("""
    import json, sys
    import numpy as np
    from PIL import Image
    import trus_hf
    from transformers import pipeline
    from trus_hf import SegmentationPipeline
    from trus_hf.cli import main
    out = {}
    for arch, folder in (("fpn", sys.argv[1]), ("segformer", sys.argv[2])):
        assert main(["push", "--model", folder, "--repo-id", f"trus-org/{arch}"]) == 0
        hf = pipeline("image-segmentation", model=f"trus-org/{arch}")(sys.argv[3])
        ours = SegmentationPipeline.from_pretrained(f"trus-org/{arch}")(sys.argv[3])
        out[arch] = [bool(np.array_equal(np.asarray(o["mask"]) > 0, ours.masks[o["label"]].astype(bool))) for o in hf]
    json.dump(out, open(sys.argv[4], "w"))
""")


def test_transformers_pipeline_by_hub_id_on_the_local_hub(tmp_path):
    for arch in ("fpn", "segformer"):
        _model(arch, LABELS).save_pretrained(tmp_path / arch, processor=tiny_processor())
    Image.fromarray(generate_phantom(6, (120, 150)).image).save(tmp_path / "frame.png")
    with LocalHub() as hub:
        env = hub.client_env(tmp_path)
        run_python(
            "-c", HUB, tmp_path / "fpn", tmp_path / "segformer", tmp_path / "frame.png", tmp_path / "out.json", env=env
        )
    assert json.loads((tmp_path / "out.json").read_text()) == {"fpn": [True, True], "segformer": [True, True]}


@pytest.mark.parametrize("arch", ["fpn", "segformer"])
def test_card_snippets_run_as_written(tmp_path, arch):
    model = _model(arch, LABELS)
    model.save_pretrained(tmp_path / "m", processor=tiny_processor())
    card = render_model_card(model.config, tiny_processor(), repo_id=str(tmp_path / "m"))
    snippets = re.findall(r"```python\n(.*?)```", card, re.S)
    assert len(snippets) == 2 and 'pipeline("image-segmentation"' in snippets[1]
    Image.fromarray(generate_phantom(7, (90, 110)).image).save(tmp_path / "frame.png")
    for code in snippets:
        r = run_python("-c", code, cwd=tmp_path, timeout=180)
    assert "gland (110, 90)" in r.stdout and "lesion (110, 90)" in r.stdout


ENTRY_POINTS = [
    ([str(ROOT / "train_fpn.py"), "--some_typo", "1"], "unrecognized arguments: --some_typo 1"),
    ([str(ROOT / "train_segformer.py"), "--segformer_size", "b9"], "unknown segformer_size 'b9'"),
    ([str(ROOT / "train_fpn.py"), "--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
    ([str(ROOT / "train_fpn.py"), "--data", "/no/such/dataset", "--epochs", "1"], "/no/such/dataset: no such file"),
    (["-m", "trus_hf.cli", "train", "segformer", "--nope", "3"], "unrecognized arguments: --nope 3"),
    (["-m", "trus_hf.cli", "synth", "--n", "2", "--out", "x", "--bogus"], "unrecognized arguments: --bogus"),
    (["-m", "trus_hf.cli", "synth", "--n", "two", "--out", "x"], "argument --n: invalid int value: 'two'"),
    (
        ["-m", "trus_hf.cli", "predict", "--model", "/no/such", "--input", ".", "--out", "o"],
        "neither an existing folder",
    ),
    (
        ["-m", "trus_hf.cli", "evaluate", "--model", "/no/such", "--data", "synthetic:2", "--out", "o"],
        "neither an existing folder nor a valid Hub model ID",
    ),
    (["-m", "trus_hf.cli", "export-onnx", "--model", "/no/such", "--out", "o", "--opset", "x"], "invalid int value"),
    (["-m", "trus_hf.cli", "import-labels", "/no/such", "--out", "o"], "no such file or folder"),
    (["-m", "trus_hf.cli", "prepare", "/no/such", "--out", "o"], "not a folder"),
    (["-m", "trus_hf.cli", "push", "--model", "/no/such", "--repo-id", "a/b"], "/no/such"),
    (["-m", "trus_hf.cli", "demo-models", "--model", "unet"], "invalid choice: 'unet'"),
    (["-m", "trus_hf.cli", "export-for-labeling", "--model", "m", "--images", "/no/such", "--out", "o"], "no images"),
    (["-m", "trus_hf.cli", "frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("argv, reason", ENTRY_POINTS, ids=[" ".join(a[-3:]) for a, _ in ENTRY_POINTS])
def test_every_entry_point_answers_mistakes_with_usage_and_reason(tmp_path, argv, reason):
    r = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "usage:" in r.stderr and reason in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_a_training_log_away_from_a_terminal_stays_short(tmp_path):
    """stdout and stderr to a pipe, as in a background job or CI: no carriage-return redraws, a bounded number of
    lines, and the epoch's progress total is the capped number of steps."""
    args = [
        "--data",
        "synthetic:24:96",
        "--image_size",
        "64",
        "--batch_size",
        "2",
        "--diffusion_iterations",
        "1",
        "--epochs",
        "3",
        "--max_steps_per_epoch",
        "4",
        "--tensorboard",
        "false",
        "--log_every_seconds",
        "0",
        "--encoder_name",
        "resnet18",
        "--decoder_pyramid_channels",
        "32",
        "--decoder_segmentation_channels",
        "32",
        "--output_dir",
        str(tmp_path / "run"),
    ]
    r = run_python(ROOT / "train_fpn.py", *args, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log = r.stdout + r.stderr
    assert "\r" not in log
    assert len(log.splitlines()) < 80, log[-3000:]
    assert "epoch 1/3: 4/4 (100%)" in log  # the capped epoch: 4 steps, not the loader's 8
