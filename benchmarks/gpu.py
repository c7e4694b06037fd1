"""GPU throughput at 768x768, prepared for a session that is lent a GPU machine (issue 13): one short run.

    python benchmarks/gpu.py [--models fpn-resnet152 segformer-b0] [--batch-sizes 1 8 32] [--runs 20] [--json F]

For each architecture (random weights: throughput does not depend on them), images/s of PyTorch fp32 (TF32 off and
on), autocast fp16 and bf16, bf16 channels-last, and the model's inference module (Segformer's decode head folded)
in bf16; ONNX Runtime with its CUDA provider where the installed onnxruntime has one (it says so where it has not).
Each figure is the median of ``--runs`` timed batches after warm-up, synchronised, all in one process. Mask agreement
of fp16 and bf16 with fp32 is measured on the bundled (trained) demo models, on 24 held-out phantoms at their own
canvas, per label (mean and minimum IoU of the masks at logit 0).

On the lent machine (its image has PyTorch, transformers, timm, OpenCV and onnxruntime, but not
segmentation-models-pytorch, and nothing can be downloaded there), first here:

    pip download segmentation-models-pytorch==0.6.0 --no-deps -d .whl

then, as the device tool's run with ``carry: [".whl"]``:

    pip install -q --no-deps .whl/*.whl && python3 benchmarks/gpu.py --json $OUT/gpu.json

``--device cpu`` runs the same code on the CPU (a quick check that the script works; the tests run it so).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, also where trus-hf is not installed

from trus_hf import TrusSegConfig, create_model  # noqa: E402

MODELS = {
    "fpn-resnet152": TrusSegConfig(architecture="fpn", encoder_name="resnet152"),
    "segformer-b0": TrusSegConfig(architecture="segformer", segformer_size="b0"),
}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def images_per_s(fn, x: torch.Tensor, runs: int, device: str) -> float:
    """Median images/s of ``fn(x)`` over ``runs`` synchronised batches after three warm-up batches."""
    with torch.inference_mode():
        for _ in range(3):
            fn(x)
        _sync(device)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn(x)
            _sync(device)
            times.append(time.perf_counter() - t)
    return x.shape[0] / statistics.median(times)


def _autocast(fn, device: str, dtype: torch.dtype):
    def run(x):
        with torch.autocast(device_type=device, dtype=dtype):
            return fn(x)

    return run


def torch_variants(model: torch.nn.Module, device: str) -> list[tuple[str, object, torch.memory_format]]:
    """(name, callable on a batch, memory format of model and input) for each PyTorch setting."""
    forward = _logits(model)
    variants = [
        ("PyTorch fp16 autocast", _autocast(forward, device, torch.float16), torch.contiguous_format),
        ("PyTorch bf16 autocast", _autocast(forward, device, torch.bfloat16), torch.contiguous_format),
        ("PyTorch bf16 channels_last", _autocast(forward, device, torch.bfloat16), torch.channels_last),
    ]
    folded = model.inference_module()
    if type(folded).__name__ != "_LogitsOf":  # a rewritten inference graph (Segformer's folded head, FPN's sums)
        variants.append(
            ("PyTorch bf16, inference module", _autocast(folded, device, torch.bfloat16), torch.contiguous_format)
        )
    return variants


def _logits(model: torch.nn.Module):
    return lambda x: model(x).logits


def ort_cuda(model: torch.nn.Module, tmp: Path) -> tuple[object, str] | tuple[None, str]:
    """An ONNX Runtime session on the CUDA provider over the model's export, or None and why not."""
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return None, f"ONNX Runtime {ort.__version__} here has no CUDA provider ({', '.join(providers)})"
    from trus_hf import TrusImageProcessor
    from trus_hf.export import export_onnx

    proc = TrusImageProcessor(size={"height": 768, "width": 768})
    export_onnx(model.float().cpu(), tmp, processor=proc, verify=False)
    model.to("cuda")
    session = ort.InferenceSession(str(tmp / "model.onnx"), providers=["CUDAExecutionProvider"])
    return session, ""


def time_model(name: str, size: int, batch_sizes: list[int], runs: int, device: str, tmp: Path) -> list[dict]:
    torch.manual_seed(0)
    model = create_model(MODELS[name]).eval().to(device)
    rows = []

    def row(bs: int, variant: str, **figures) -> None:
        rows.append({"model": name, "batch": bs, "variant": variant, **figures})

    for bs in batch_sizes:
        x = torch.randn(bs, 3, size, size, device=device)
        for tf32 in (False, True) if device == "cuda" else (False,):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            row(
                bs,
                "PyTorch fp32" + (", TF32" if tf32 else ""),
                images_per_s=images_per_s(_logits(model), x, runs, device),
            )
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        for label, fn, memory_format in torch_variants(model, device):
            model.to(memory_format=memory_format)
            row(bs, label, images_per_s=images_per_s(fn, x.contiguous(memory_format=memory_format), runs, device))
            model.to(memory_format=torch.contiguous_format)
        print(f"measured {name} batch {bs}", flush=True)
    if device != "cuda":
        return rows
    session, why = ort_cuda(model, tmp / name)
    for bs in batch_sizes:
        if session is None:
            row(bs, "ONNX Runtime CUDA", note=why)
            continue
        xn = np.random.rand(bs, 3, size, size).astype(np.float32)
        times = []
        for i in range(runs + 3):  # synchronous: run() returns the outputs on the host
            t = time.perf_counter()
            session.run(None, {"pixel_values": xn})
            if i >= 3:
                times.append(time.perf_counter() - t)
        row(bs, "ONNX Runtime CUDA fp32", images_per_s=bs / statistics.median(times))
    return rows


def demo_agreement(device: str, n: int = 24) -> list[dict]:
    """fp16 / bf16 autocast against fp32 on the trained demo models: per-label mask IoU on ``n`` held-out phantoms."""
    from trus_hf import load_model
    from trus_hf.export import _phantom_frames
    from trus_hf.metrics import binary_metrics

    frames = _phantom_frames(30_000, n)
    out = []
    # the folders themselves: trus_hf.demo needs `datasets`, which the GPU machine's image does not have
    demo = Path(__file__).resolve().parent.parent / "trus_hf" / "demo_models"
    for name, path in ((d.name, d) for d in sorted(demo.iterdir()) if (d / "config.json").is_file()):
        model, proc = load_model(path)
        model = model.float().eval().to(device)
        x = proc(frames)["pixel_values"].to(device)
        with torch.inference_mode():
            reference = model(x).logits.float() > 0
            for dtype in (torch.float16, torch.bfloat16):
                with torch.autocast(device_type=device, dtype=dtype):
                    masks = model(x).logits.float() > 0
                for i, label in enumerate(model.config.labels):
                    ious = [
                        binary_metrics(masks[j, i].cpu().numpy(), reference[j, i].cpu().numpy())["iou"]
                        for j in range(len(frames))
                    ]
                    out.append(
                        {
                            "model": name,
                            "dtype": str(dtype).removeprefix("torch."),
                            "label": label,
                            "mean": float(np.mean(ious)),
                            "min": float(np.min(ious)),
                        }
                    )
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--frames", type=int, default=24, help="held-out phantoms for the demo models' agreement")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run this on a lent GPU machine, or with --device cpu to check it")
    machine = torch.cuda.get_device_name() if a.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    import tempfile

    tmp = Path(tempfile.mkdtemp())
    rows = [r for name in a.models for r in time_model(name, a.size, a.batch_sizes, a.runs, a.device, tmp)]
    agreement = demo_agreement(a.device, a.frames)
    print(f"\n{machine}, torch {torch.__version__}, {a.size}x{a.size}, median of {a.runs} batches: images/s")
    for r in rows:
        figure = f"{r['images_per_s']:9.1f}" if "images_per_s" in r else f"  -  ({r['note']})"
        print(f"  {r['model']:14} batch {r['batch']:3}  {r['variant']:34} {figure}")
    for r in agreement:
        print(f"  demo {r['model']} {r['dtype']} vs fp32, {r['label']}: mask IoU {r['mean']:.4f} (min {r['min']:.4f})")
    if a.json:
        a.json.write_text(
            json.dumps(
                {"machine": machine, "torch": torch.__version__, "size": a.size, "rows": rows, "agreement": agreement},
                indent=1,
            )
        )


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
