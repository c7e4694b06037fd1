"""App overhead: time per request through gradio_client vs the pipeline alone on the same image, measured side by
side, and throughput with 4 concurrent clients.

    python benchmarks/app_overhead.py [--n 20]       (target: overhead <= 15%)
"""

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradio_client import Client, handle_file
from PIL import Image

from _served import start_app
from trus_hf import SegmentationPipeline
from trus_hf.demo import demo_model_paths
from trus_hf.fileio import read_image
from trus_hf.synthetic import generate_phantom


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    ph = generate_phantom(3, (480, 640))
    Image.fromarray(ph.image).save(tmp / "f.png")
    Image.fromarray(ph.lesion_mask * 255).save(tmp / "m.png")
    proc, url = start_app()
    try:
        client = Client(url, verbose=False)
        args = (handle_file(str(tmp / "f.png")), handle_file(str(tmp / "m.png")), "Demo FPN", "", "PyTorch", 0.5)
        client.predict(*args, api_name="/predict")
        pipe = SegmentationPipeline.from_pretrained(demo_model_paths()["fpn"], device="cpu")
        pipe(read_image(tmp / "f.png"), ground_truth=ph.lesion_mask)
        app_t, lib_t = [], []
        for _ in range(a.n):  # interleaved: both see the same machine state
            t = time.perf_counter()
            client.predict(*args, api_name="/predict")
            app_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            pipe(read_image(tmp / "f.png"), ground_truth=ph.lesion_mask)
            lib_t.append(time.perf_counter() - t)
        app_ms, lib_ms = statistics.median(app_t) * 1000, statistics.median(lib_t) * 1000
        print(f"640x480 frame, demo FPN, median of {a.n}: gradio_client {app_ms:.1f} ms, pipeline alone {lib_ms:.1f} ms"
              f" -> overhead {app_ms / lib_ms - 1:+.0%} ({app_ms - lib_ms:.1f} ms per request; the app also renders "
              f"the overlay, heatmap and mask PNG)")

        def one(_):
            c = Client(url, verbose=False)
            for _ in range(5):
                c.predict(*args, api_name="/predict")
            return 5

        t = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            done = sum(pool.map(one, range(4)))
        dt = time.perf_counter() - t
        print(f"4 concurrent clients: {done} requests in {dt:.1f} s -> {done / dt:.2f} requests/s "
              f"(single client: {1000 / app_ms:.2f} requests/s)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
