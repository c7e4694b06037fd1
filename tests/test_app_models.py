"""`python app.py` as users start it (GRADIO_SERVER_NAME/PORT), loading models from the text box: a Hub ID served by
the local Hub-compatible server (real huggingface_hub client inside the app), a local PyTorch folder and a local ONNX
export, on both backends. Each answer is checked against the same model run in this process.

HF_ENDPOINT must be set before huggingface_hub is imported, so the app runs in a child process.
"""

import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from conftest import ROOT, free_port, run_python, tiny_kfold_run
from gradio_client import Client, handle_file
from hub_server import LocalHub
from PIL import Image

from trus_hf import SegmentationPipeline
from trus_hf.export import export_kfold, export_onnx
from trus_hf.fileio import write_png
from trus_hf.synthetic import generate_phantom

CUSTOM = "Hub ID or local folder"


def start(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"app.py exited: {proc.stderr.read()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("app.py did not answer within 120 s")


def test_text_box_loads_hub_ids_and_local_folders_on_both_backends(saved_models, tmp_path):
    """... and a k-fold run, pushed to the Hub or exported to ONNX, serves as its fold models' ensemble."""
    ph = generate_phantom(5, (200, 240))
    frame = write_png(tmp_path / "frame.png", ph.image)
    onnx_dir = tmp_path / "segformer-onnx"
    export_onnx(saved_models["segformer"], onnx_dir)
    run = tiny_kfold_run(tmp_path / "k2")
    kfold_onnx = tmp_path / "k2-onnx"
    export_kfold(run, kfold_onnx)
    with LocalHub() as hub:
        env = hub.client_env(tmp_path, TRUS_HF_CACHE=str(tmp_path / "app_cache"))
        run_python(
            "-m", "trus_hf.cli", "push", "--model", saved_models["fpn"], "--repo-id", "trus-org/tiny-fpn", env=env
        )
        run_python("-m", "trus_hf.cli", "push", "--model", run, "--repo-id", "trus-org/tiny-k2", env=env)
        proc, url = start(env)
        try:
            client = Client(url, verbose=False)
            cases = [
                ("trus-org/tiny-fpn", "PyTorch", saved_models["fpn"]),
                ("trus-org/tiny-fpn", "ONNX Runtime", saved_models["fpn"]),
                (str(saved_models["segformer"]), "PyTorch", saved_models["segformer"]),
                (str(onnx_dir), "ONNX Runtime", saved_models["segformer"]),
                ("trus-org/tiny-k2", "PyTorch", run),
                ("trus-org/tiny-k2", "ONNX Runtime", run),
                (str(kfold_onnx), "ONNX Runtime", run),
            ]
            for custom, backend, reference in cases:
                # A threshold at the reference's median probability: a random tiny model gives a non-trivial mask.
                probs = SegmentationPipeline.from_pretrained(reference)(ph.image).probabilities
                threshold = float(np.clip(np.median(probs), 0.05, 0.95))
                expected = probs > threshold
                assert 0.05 < expected.mean() < 0.95
                mask_files, iou, dice, info = client.predict(
                    handle_file(str(frame)), None, CUSTOM, custom, backend, threshold, api_name="/segment"
                )
                (mask_file,) = [f for f in mask_files if f.endswith(f"mask_{info['labels'][0]}.png")]
                got = np.asarray(Image.open(mask_file)) > 0
                agreement = (got & expected).sum() / (got | expected).sum()
                assert info["backend"] == backend and iou is None
                assert info["ensemble_members"] == (2 if reference == run else 1)
                assert agreement >= (0.999 if backend == "PyTorch" else 0.98), (custom, backend, agreement)
            with pytest.raises(Exception, match="Cannot load model 'trus-org/missing'"):
                client.predict(
                    handle_file(str(frame)), None, CUSTOM, "trus-org/missing", "ONNX Runtime", 0.5, api_name="/segment"
                )
            assert any(r.startswith("GET /api/models/trus-org/tiny-fpn") for r in hub.state.requests)
        finally:
            proc.terminate()
            proc.wait(30)
