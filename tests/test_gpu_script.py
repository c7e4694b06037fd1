"""The prepared GPU benchmark (`benchmarks/gpu.py`, issue 13) must work the first time it meets a lent GPU machine,
whose image lacks `datasets`, gradio and albumentations: here it runs on the CPU with those imports refused."""

import json
import os
import subprocess
import sys

import torch
from conftest import ROOT, run_python

BLOCK = """
import sys
class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("datasets", "gradio", "gradio_client", "albumentations", "pydicom", "evaluate"):
            raise ImportError(f"No module named {name!r} (not on the GPU machine's image)")
sys.meta_path.insert(0, _Missing())
"""


def test_gpu_benchmark_runs_without_the_packages_the_gpu_image_lacks(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCK)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = tmp_path / "gpu.json"
    argv = ["benchmarks/gpu.py", "--device", "cpu", "--size", "64", "--batch-sizes", "1", "--runs", "1"]
    run_python(*argv, "--models", "segformer-b0", "--frames", "2", "--json", out, env=env)
    result = json.loads(out.read_text())
    variants = {r["variant"]: r["images_per_s"] for r in result["rows"]}
    assert set(variants) == {
        "PyTorch fp32",
        "PyTorch fp16 autocast",
        "PyTorch bf16 autocast",
        "PyTorch bf16 channels_last",
        "PyTorch bf16, inference module",
    }
    assert all(v > 0 for v in variants.values())
    agreement = {(r["model"], r["dtype"], r["label"]): r for r in result["agreement"]}
    assert set(agreement) == {
        (m, d, lb) for m in ("fpn", "segformer") for d in ("float16", "bfloat16") for lb in ("gland", "lesion")
    }
    assert all(0 <= r["min"] <= r["mean"] <= 1 for r in agreement.values())
    if not torch.cuda.is_available():  # asked for the GPU where there is none: a sentence, not a traceback
        r = subprocess.run([sys.executable, "benchmarks/gpu.py"], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode != 0 and "no CUDA device here" in r.stderr and "Traceback" not in r.stderr
