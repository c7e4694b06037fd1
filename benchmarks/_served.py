"""Start `python app.py` in a child process on a free loopback port (shared by the app benchmarks)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_app(script: Path = ROOT / "app.py", extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Returns the process and its URL; prints how long the app took to answer its first request."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **(extra_env or {}), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    t0 = time.time()
    while time.time() - t0 < 120:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                print(f"{script.name} ready {time.time() - t0:.1f} s after start (target <= 30 s)", flush=True)
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the app did not start within 120 s")
