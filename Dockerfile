# trus-hf backend image: the Gradio app with the bundled demo models, CPU only.
#   docker build -t trus-hf .
#   docker run -p 7860:7860 trus-hf
# The base image and the index that serves torch are build arguments, so that a mirror or an offline index can
# stand in for Docker Hub and download.pytorch.org (scripts/docker_smoke.sh builds, runs and checks the image).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PYPI_INDEX_URL=https://pypi.org/simple

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 TRUS_HF_CACHE=/home/app/.cache/trus-hf GRADIO_TEMP_DIR=/home/app/.cache/gradio \
    OMP_NUM_THREADS=2

# curl only for the healthcheck; OpenCV is the headless build and needs no GUI libraries.
RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 app
WORKDIR /home/app/trus-hf

# CPU wheels of torch keep the image small (the CPU index wins over PyPI's CUDA build of the same version);
# everything else from the project's pins.
COPY requirements.txt .
RUN pip install --index-url "${TORCH_INDEX_URL}" --extra-index-url "${PYPI_INDEX_URL}" torch==2.14.1 torchvision==0.29.1 \
    && pip install --index-url "${PYPI_INDEX_URL}" -r requirements.txt

COPY --chown=app:app pyproject.toml README.md model_card.md app.py train_fpn.py train_segformer.py ./
COPY --chown=app:app trus_hf ./trus_hf
RUN pip install --no-deps -e .

USER app
# Pre-export the demo models to ONNX so the ONNX Runtime backend answers at once.
RUN python -c "import app; c = app.make_cache(); [c.get(name, 'onnx') for name in c.bundled]"

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${GRADIO_SERVER_PORT}/" >/dev/null || exit 1
CMD ["python", "app.py"]
