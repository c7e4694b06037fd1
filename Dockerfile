# trus-hf backend image: the Gradio app with the bundled demo models, CPU only.
#   docker build -t trus-hf .
#   docker run -p 7860:7860 trus-hf
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 TRUS_HF_CACHE=/home/app/.cache/trus-hf OMP_NUM_THREADS=2

RUN apt-get update && apt-get install -y --no-install-recommends curl libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 app
WORKDIR /home/app/trus-hf

# CPU wheels of torch keep the image small; everything else from the project's pins.
COPY requirements.txt .
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1 \
    && pip install -r requirements.txt

COPY --chown=app:app pyproject.toml README.md model_card.md app.py train_fpn.py train_segformer.py ./
COPY --chown=app:app trus_hf ./trus_hf
RUN pip install --no-deps -e .

USER app
# Pre-export the demo models to ONNX so the ONNX Runtime backend answers at once.
RUN python -c "import app; c = app.ModelCache(); [c.onnx_folder(str(p)) for p in c.demo.values()]"

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${GRADIO_SERVER_PORT}/" >/dev/null || exit 1
CMD ["python", "app.py"]
