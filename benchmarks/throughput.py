"""Phantom and processor throughput, measured side by side in one run.

    python benchmarks/throughput.py [--n 40]

Prints frames/s for: the phantom generator at 512x512 on one core (target >= 20; default preset, and with acoustic
clutter in every frame), and TrusImageProcessor at 768x768 with the diffusion filter on and off; plus the gain of the
training cache (datasets `map` on disk) over recomputing the preprocessing every epoch.
"""

import argparse
import shutil
import tempfile
import time

import cv2
import numpy as np

from trus_hf import TrusImageProcessor
from trus_hf.data import synthetic_dataset
from trus_hf.synthetic import PRESETS, generate_phantom
from trus_hf.training import cached_preprocess


def rate(fn, n):
    fn(0)
    t = time.perf_counter()
    for i in range(n):
        fn(i + 1)
    return n / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    a = ap.parse_args()
    cv2.setNumThreads(1)  # one core, as the target says
    phantom_fps = rate(lambda i: generate_phantom(i, (512, 512)), a.n)
    hazy = PRESETS["default"].replace(clutter_prob=1.0)
    clutter_fps = rate(lambda i: generate_phantom(i, (512, 512), hazy), a.n)
    frames = [generate_phantom(i, (600, 800)).image for i in range(8)]
    on = TrusImageProcessor()
    off = TrusImageProcessor(do_diffusion=False)
    fps_on = rate(lambda i: on(frames[i % 8], return_tensors="np"), a.n)
    fps_off = rate(lambda i: off(frames[i % 8], return_tensors="np"), a.n)
    print(
        f"phantom 512x512, 1 core:          {phantom_fps:7.1f} frames/s (target >= 20: "
        f"{'OK' if phantom_fps >= 20 else 'MISSED'})"
    )
    print(f"  with clutter in every frame:     {clutter_fps:7.1f} frames/s ({phantom_fps / clutter_fps:.2f}x the time)")
    print(f"processor 768x768, diffusion on:  {fps_on:7.1f} frames/s")
    print(f"processor 768x768, diffusion off: {fps_off:7.1f} frames/s  (filter costs {fps_off / fps_on:.2f}x)")

    cv2.setNumThreads(0)
    ds = synthetic_dataset(24, 600, seed=7)
    proc = TrusImageProcessor(size={"height": 512, "width": 512})
    tmp = tempfile.mkdtemp()
    try:
        t = time.perf_counter()
        cached = cached_preprocess(ds, proc, tmp)
        first = time.perf_counter() - t
        t = time.perf_counter()
        cached = cached_preprocess(ds, proc, tmp)
        again = time.perf_counter() - t
        t = time.perf_counter()
        for row in cached.with_format("numpy"):
            row["x"].astype(np.float32)
        read = time.perf_counter() - t
    finally:
        shutil.rmtree(tmp)
    per_epoch_uncached = first
    per_epoch_cached = again + read
    print(
        f"training data, 24 frames at 512: preprocessing every epoch {per_epoch_uncached:.2f} s, from cache "
        f"{per_epoch_cached:.2f} s per epoch -> {per_epoch_uncached / per_epoch_cached:.1f}x faster"
    )


if __name__ == "__main__":
    main()
