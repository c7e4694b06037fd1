"""Inference latency: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime INT8, measured side by side in one process.

    python benchmarks/latency.py [--runs 10] [--models fpn-resnet152 segformer-b0 segformer-b2] [--size 768]

Batch 1 at 768x768 with 2 threads, median of --runs after warm-up. Also: PyTorch variants (channels_last), the
end-to-end pipeline split into pre-processing, inference and post-processing, peak memory, and INT8 mask agreement
against fp32 on a TRAINED model (the bundled demo FPN) on held-out phantoms. Targets (2-core machine):
ORT fp32 <= 0.75x PyTorch for FPN-resnet152 and <= 0.4x for Segformer-b0; ORT int8 <= 0.25x PyTorch for
FPN-resnet152 with mask IoU agreement >= 0.95; pre + post <= 10% of end-to-end time.
"""

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import torch

from trus_hf import SegmentationPipeline, TrusImageProcessor, TrusSegConfig, create_model, load_model
from trus_hf.export import export_onnx
from trus_hf.metrics import binary_metrics
from trus_hf.models.onnx_runtime import OnnxSegmentationModel
from trus_hf.synthetic import generate_phantom

MODELS = {
    "fpn-resnet152": TrusSegConfig(architecture="fpn", encoder_name="resnet152"),
    "segformer-b0": TrusSegConfig(architecture="segformer", segformer_size="b0"),
    "segformer-b2": TrusSegConfig(architecture="segformer", segformer_size="b2"),
}


def median_ms(fn, runs: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def int8_agreement(tmp: Path) -> str:
    from trus_hf.demo import demo_model_paths

    paths = demo_model_paths()
    if "fpn" not in paths:
        return "demo FPN not installed: run `trus-hf demo-models`"
    out = tmp / "demo_fpn_onnx"
    export_onnx(paths["fpn"], out, int8=True, calibration_size=16)
    fp32, proc = load_model(out, backend="onnx")
    int8, _ = load_model(out, backend="onnx", onnx_file="model_int8.onnx")
    frames = [generate_phantom(30_000 + i, (384, 384)).image for i in range(16)]
    a = SegmentationPipeline(fp32, proc).predict(frames)
    b = SegmentationPipeline(int8, proc).predict(frames)
    ious = [binary_metrics(x.mask, y.mask)["iou"] for x, y in zip(a, b)]
    x = proc(frames[0])["pixel_values"]
    t32 = median_ms(lambda: fp32(x), 20)
    t8 = median_ms(lambda: int8(x), 20)
    return (
        f"trained demo FPN (mobilenet_v2, 256x256): int8 vs fp32 mask IoU agreement mean {np.mean(ious):.4f}, "
        f"min {np.min(ious):.4f} on 16 held-out phantoms; ORT int8 {t8:.1f} ms vs fp32 {t32:.1f} ms "
        f"({t8 / t32:.2f}x)"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    a = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    tmp = Path(tempfile.mkdtemp())
    proc = TrusImageProcessor(size={"height": a.size, "width": a.size})
    frame = generate_phantom(1, (600, 800)).image
    x = proc(frame)["pixel_values"]
    for name in a.models:
        torch.manual_seed(0)
        model = create_model(MODELS[name]).eval()
        with torch.inference_mode():
            pt = median_ms(lambda m=model: m(x), a.runs)
            model_cl = model.to(memory_format=torch.channels_last)
            pt_cl = median_ms(lambda m=model_cl: m(x.contiguous(memory_format=torch.channels_last)), a.runs)
        model = model.to(memory_format=torch.contiguous_format)
        folder = tmp / name
        model.save_pretrained(folder / "pt", processor=proc)
        export_onnx(folder / "pt", folder / "onnx", int8=True, calibration_size=8, verify=False)
        ort32 = OnnxSegmentationModel(folder / "onnx" / "model.onnx", model.config, intra_op_num_threads=2)
        ort8 = OnnxSegmentationModel(folder / "onnx" / "model_int8.onnx", model.config, intra_op_num_threads=2)
        o32 = median_ms(lambda m=ort32: m(x), a.runs)
        o8 = median_ms(lambda m=ort8: m(x), a.runs)
        pipe = SegmentationPipeline(ort32, proc)
        splits = [pipe(frame).timings_ms for _ in range(max(3, a.runs // 2))]
        pre = statistics.median(s["preprocess"] for s in splits)
        inf = statistics.median(s["inference"] for s in splits)
        post = statistics.median(s["postprocess"] for s in splits)
        rows.append((name, pt, pt_cl, o32, o8, pre, inf, post))
        print(f"measured {name}", flush=True)
    print(f"\nbatch 1, {a.size}x{a.size}, 2 threads, median of {a.runs} (ms; ratio to PyTorch eager fp32)")
    print(
        f"{'model':15} {'torch fp32':>11} {'channels_last':>14} {'ORT fp32':>15} {'ORT int8':>15} "
        f"{'pre':>6} {'infer':>7} {'post':>6} {'pre+post %':>10}"
    )
    for name, pt, pt_cl, o32, o8, pre, inf, post in rows:
        share = (pre + post) / (pre + inf + post) * 100
        print(
            f"{name:15} {pt:11.1f} {pt_cl:8.1f} ({pt_cl / pt:.2f}x) {o32:8.1f} ({o32 / pt:.2f}x) "
            f"{o8:8.1f} ({o8 / pt:.2f}x) {pre:6.1f} {inf:7.1f} {post:6.1f} {share:9.1f}%"
        )
    print(f"peak memory (RSS) of this process: {peak_rss_mb():.0f} MB")
    print(int8_agreement(tmp))


if __name__ == "__main__":
    main()
