"""Gradio's own floor: an app with the same inputs, outputs, queue settings and api_name as app.py's /predict whose
handler does nothing but hand back three ready-made PNGs (copied into the cache, as app.py writes its outputs there).
Started by benchmarks/app_overhead.py, which passes the three files' paths in TRUS_HF_NOOP_OUTPUTS."""

import os
import shutil
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gradio as gr  # noqa: E402

import app  # noqa: E402  (the same queue settings)

SOURCES = os.environ["TRUS_HF_NOOP_OUTPUTS"].split(os.pathsep)

with gr.Blocks() as demo:
    inputs = [
        gr.File(),
        gr.File(),
        gr.Dropdown(["Demo FPN"], value="Demo FPN"),
        gr.Textbox(),
        gr.Radio(["PyTorch"]),
        gr.Slider(0.05, 0.95),
    ]
    outputs = [
        gr.Image(format="png", type="filepath"),
        gr.Image(format="png", type="filepath"),
        gr.File(),
        gr.Number(),
        gr.Number(),
        gr.JSON(),
    ]

    def predict(*_):
        folder = Path(demo.GRADIO_CACHE) / "noop"
        folder.mkdir(parents=True, exist_ok=True)
        copies = [shutil.copyfile(src, folder / f"{uuid.uuid4().hex}.png") for src in SOURCES]
        return (*map(str, copies), 0.5, 0.6, {"inference_ms": 0.0})

    gr.Button().click(predict, inputs, outputs, api_name="predict")
demo.queue(default_concurrency_limit=2, max_size=32)
app._calm_queue_polling(demo)
demo.launch()
