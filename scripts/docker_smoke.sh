#!/usr/bin/env bash
# Build the backend image, run it, and check it from outside like a user would:
#   - the container turns "healthy" (its HEALTHCHECK answers), runs as a non-root user, carries the demo models;
#   - gradio_client on the host segments a synthetic frame with both demo models, PyTorch and ONNX Runtime,
#     and the IoU against the phantom's known mask is sensible.
#
#   scripts/docker_smoke.sh                         # plain build: python:3.11-slim, torch from the CPU index
#   DOCKER_BUILD_ARGS="--network host --build-arg BASE_IMAGE=... --build-arg TORCH_INDEX_URL=..." scripts/docker_smoke.sh
#
# Needs a Docker engine and the project's venv (.venv, README command 1) for the client side.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-trus-hf:smoke}
PYTHON=${PYTHON:-.venv/bin/python}
NAME=trus-hf-smoke-$$
PORT=$("$PYTHON" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")

t0=$(date +%s)
# shellcheck disable=SC2086  # DOCKER_BUILD_ARGS is a list of words on purpose
docker build ${DOCKER_BUILD_ARGS:-} -t "$IMAGE" .
echo "built $IMAGE in $(( $(date +%s) - t0 )) s; size $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1/1e9}')"

cleanup() { docker rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT
t0=$(date +%s)
docker run -d --name "$NAME" -p "127.0.0.1:$PORT:7860" "$IMAGE" >/dev/null
status=starting
for _ in $(seq 1 120); do
  status=$(docker inspect -f '{{.State.Health.Status}}' "$NAME")
  [ "$status" = healthy ] && break
  [ "$(docker inspect -f '{{.State.Running}}' "$NAME")" = true ] || { docker logs "$NAME"; echo "container exited"; exit 1; }
  sleep 2
done
[ "$status" = healthy ] || { docker logs "$NAME" | tail -30; echo "container not healthy: $status"; exit 1; }
echo "healthy $(( $(date +%s) - t0 )) s after docker run"

uid=$(docker exec "$NAME" id -u)
[ "$uid" != 0 ] || { echo "the container runs as root"; exit 1; }
echo "runs as uid $uid ($(docker exec "$NAME" id -un))"
docker exec "$NAME" python -c "from trus_hf.demo import demo_model_paths; p = demo_model_paths(); assert set(p) == {'fpn', 'segformer'}, p; print('demo models inside:', sorted(p))"

"$PYTHON" - "http://127.0.0.1:$PORT" <<'PY'
import sys, tempfile
from pathlib import Path
from gradio_client import Client, handle_file
from trus_hf.fileio import write_png
from trus_hf.synthetic import generate_phantom

tmp = Path(tempfile.mkdtemp())
ph = generate_phantom(11, (384, 448))
write_png(tmp / "frame.png", ph.image)
write_png(tmp / "mask.png", ph.lesion_mask * 255)
client = Client(sys.argv[1], verbose=False)
for model in ("Demo FPN", "Demo Segformer"):
    for backend in ("PyTorch", "ONNX Runtime"):
        out = client.predict(handle_file(str(tmp / "frame.png")), handle_file(str(tmp / "mask.png")), model, "",
                             backend, 0.5, api_name="/predict")
        iou, info = out[3], out[5]
        print(f"{model:15s} {backend:13s} IoU {iou:.3f}  inference {info['inference_ms']:.0f} ms")
        assert iou is not None and iou > 0.5, (model, backend, iou)
print("container answers gradio_client: OK")
PY
