"""The app under load, on localhost only and bounded: 8 concurrent gradio_client clients x 20 requests, mixing good
and bad inputs. All good requests must succeed, bad ones get clear errors, the server's memory stays under a bound,
and it is alive afterwards. Prints requests, failures, p50/p95 latency and peak memory.

    python benchmarks/app_load.py [--clients 8] [--requests 20] [--memory-bound-mb 3000]
"""

import argparse
import random
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
from _served import start_app
from gradio_client import Client, handle_file
from PIL import Image

from trus_hf.synthetic import generate_phantom


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--memory-bound-mb", type=float, default=3000)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    ph = generate_phantom(5, (400, 500))
    Image.fromarray(ph.image).save(tmp / "good.png")
    Image.fromarray(ph.lesion_mask * 255).save(tmp / "good_mask.png")
    (tmp / "text.png").write_text("not an image")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp / "wrong_size_mask.png")
    (tmp / "truncated.png").write_bytes((tmp / "good.png").read_bytes()[:500])
    cases = [
        ("good", "good.png", "good_mask.png", "Demo FPN", ""),
        ("good", "good.png", None, "Demo Segformer", ""),
        ("bad", "text.png", None, "Demo FPN", ""),
        ("bad", "good.png", "wrong_size_mask.png", "Demo FPN", ""),
        ("bad", "truncated.png", None, "Demo Segformer", ""),
        ("bad", "good.png", None, "Hub ID or local folder", "/no/such/model"),
    ]
    proc, url = start_app()
    server = psutil.Process(proc.pid)
    peak = [server.memory_info().rss]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak.append(server.memory_info().rss)
            time.sleep(0.1)

    threading.Thread(target=sample, daemon=True).start()
    results = []

    def client_run(seed):
        rng = random.Random(seed)
        c = Client(url, verbose=False)
        for _ in range(a.requests):
            kind, img, mask, model, custom = rng.choice(cases)
            t = time.perf_counter()
            try:
                c.predict(
                    handle_file(str(tmp / img)),
                    handle_file(str(tmp / mask)) if mask else None,
                    model,
                    custom,
                    "PyTorch",
                    0.5,
                    api_name="/predict",
                )
                outcome = "ok"
            except Exception as exc:
                outcome = "clear error" if str(exc).strip() and "Traceback" not in str(exc) else f"unclear: {exc!r}"
            results.append((kind, outcome, time.perf_counter() - t))

    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(a.clients) as pool:
            list(pool.map(client_run, range(a.clients)))
        wall = time.perf_counter() - t0
        alive = (
            Client(url, verbose=False).predict(
                handle_file(str(tmp / "good.png")), None, "Demo FPN", "", "PyTorch", 0.5, api_name="/predict"
            )
            is not None
        )
    finally:
        stop.set()
        proc.terminate()
        proc.wait(10)
    good = [r for r in results if r[0] == "good"]
    bad = [r for r in results if r[0] == "bad"]
    lat = sorted(r[2] * 1000 for r in good)
    peak_mb = max(peak) / 2**20
    good_failures = sum(r[1] != "ok" for r in good)
    bad_unclear = sum(r[1] != "clear error" for r in bad)
    print(f"{len(results)} requests ({len(good)} good, {len(bad)} bad) from {a.clients} clients in {wall:.1f} s")
    print(f"good requests failed: {good_failures}; bad requests without a clear error: {bad_unclear}")
    print(
        f"latency of good requests: p50 {statistics.median(lat):.0f} ms, p95 {lat[int(0.95 * (len(lat) - 1))]:.0f} ms"
    )
    print(
        f"server peak RSS {peak_mb:.0f} MB (bound {a.memory_bound_mb:.0f} MB): "
        f"{'OK' if peak_mb <= a.memory_bound_mb else 'EXCEEDED'}; alive afterwards: {alive}"
    )
    ok = good_failures == 0 and bad_unclear == 0 and peak_mb <= a.memory_bound_mb and alive
    print("PASS" if ok else "FAIL")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
