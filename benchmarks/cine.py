"""Cine throughput: the bundled demo models segmenting a 384x384 cine loop end to end, as the app's /cine does.

    python benchmarks/cine.py [--frames 96] [--batch-sizes 1 8 16]

`trus_hf.batch.segment_cine` (pre-processing, inference, post-processing and the overlay frame of every frame) over
one loop, per model, backend and batch size, all in one run on the same frames; frames/s is wall-clock over the
whole loop, and the split says where the time goes (milliseconds per frame). Issue 13's target: >= 30 frames/s on
the 2 cores with ONNX Runtime, pre + post-processing <= 10% of the time.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import torch

from trus_hf import SegmentationPipeline, load_model
from trus_hf.batch import segment_cine
from trus_hf.demo import demo_model_paths
from trus_hf.export import export_onnx
from trus_hf.synthetic import generate_phantom


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16])
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    # 12 phantoms of the default preset, each held for 8 frames: a loop that changes scene now and then.
    frames = [generate_phantom(i // 8, (a.size, a.size)).image for i in range(a.frames)]
    tmp = Path(tempfile.mkdtemp())
    paths = demo_model_paths()
    if not paths:
        raise SystemExit("demo models not installed: run `trus-hf demo-models`")
    rows = []
    for name, path in paths.items():
        info = export_onnx(path, tmp / name, int8="auto")
        backends = {"torch": load_model(path)}
        backends["ORT fp32"] = load_model(tmp / name, backend="onnx", onnx_file="model.onnx")
        if info["preferred"] != "model.onnx":
            backends[f"ORT {info['preferred']}"] = load_model(tmp / name, backend="onnx")
        for backend, (model, proc) in backends.items():
            for bs in a.batch_sizes:
                pipe = SegmentationPipeline(model, proc, batch_size=bs)
                segment_cine(pipe, frames[: 2 * bs])  # warm-up
                t = time.perf_counter()
                _, _, split = segment_cine(pipe, frames, batch_size=bs)
                fps = len(frames) / (time.perf_counter() - t)
                rows.append((name, backend, bs, fps, split))
                print(f"measured {name} {backend} batch {bs}: {fps:.1f} frames/s", flush=True)
    print(f"\ncine loop of {a.frames} frames {a.size}x{a.size}, {os.environ['OMP_NUM_THREADS']} threads")
    print(f"{'model':10} {'backend':24} {'batch':>5} {'frames/s':>9}   ms per frame: pre / infer / post / overlay")
    for name, backend, bs, fps, s in rows:
        share = 100 * (s["preprocess"] + s["postprocess"]) / sum(s.values())
        print(
            f"{name:10} {backend:24} {bs:5d} {fps:9.1f}   {s['preprocess']:.1f} / {s['inference']:.1f} / "
            f"{s['postprocess']:.1f} / {s['overlay']:.1f} (pre + post {share:.0f}%)"
        )


if __name__ == "__main__":
    main()
