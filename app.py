"""trus-hf Gradio app: pick a model, upload a TRUS image (and optionally its ground truth), see the mask and its IoU.

    python app.py            # http://127.0.0.1:7860 ; honours GRADIO_SERVER_NAME and GRADIO_SERVER_PORT

A thin client of the library: reading files (`trus_hf.fileio.read_image`), prediction (`SegmentationPipeline`),
metrics and pictures all come from `trus_hf`. Every action has an ``api_name`` for `gradio_client`.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # works offline: no analytics calls

import logging
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path

import cv2
import gradio as gr
import numpy as np

from trus_hf import SegmentationPipeline
from trus_hf.arrays import mask_to_binary
from trus_hf.demo import DEMO_MODELS_DIR, demo_model_paths
from trus_hf.export import default_onnx_cache, ensure_onnx
from trus_hf.fileio import read_image, write_png
from trus_hf.metrics import binary_metrics
from trus_hf.synthetic import generate_phantom
from trus_hf.visualization import disagreement, heatmap, overlay

logger = logging.getLogger("trus_hf.app")

MAX_FILE_BYTES = 50 * 2**20
# Stricter than the library's trus_hf.arrays.MAX_PIXELS: a served app bounds the memory of each request.
SERVED_MAX_PIXELS = 25_000_000
DEMO_CHOICES = {"Demo FPN": "fpn", "Demo Segformer": "segformer"}
CUSTOM = "Hub ID or local folder"
BACKENDS = {"PyTorch": "torch", "ONNX Runtime": "onnx"}
# System fonts only: the default theme would fetch Google Fonts, and the app must work offline.
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


class ModelCache:
    """Pipelines loaded once and kept (LRU, bounded); ONNX exports of PyTorch folders are made once and cached."""

    def __init__(self, demo_dir: Path = DEMO_MODELS_DIR, max_models: int = 4):
        self.demo = demo_model_paths(demo_dir)
        self.max_models = max_models
        self._cache: OrderedDict[tuple[str, str], SegmentationPipeline] = OrderedDict()
        self._lock = threading.Lock()  # guards _cache and _loading, never held while a model loads
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self.onnx_dir = default_onnx_cache()

    def source_for(self, choice: str, custom: str | None) -> str:
        if choice in DEMO_CHOICES:
            name = DEMO_CHOICES[choice]
            if name not in self.demo:
                raise gr.Error(f"{choice} is not installed: run `trus-hf demo-models` first")
            return str(self.demo[name])
        if not custom or not custom.strip():
            raise gr.Error("Enter a Hub model ID (org/name) or a local model folder in the text box")
        return custom.strip()

    def get(self, source: str, backend: str) -> SegmentationPipeline:
        """The cached pipeline, loading it once. A model being loaded (or exported to ONNX) holds only its own lock:
        other users' cached models keep answering meanwhile, and concurrent requests for it wait for one load."""
        key = (source, backend)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._cache:  # loaded by the request we waited for
                    return self._cache[key]
            try:
                pipe = self._load(source, backend)
            except BaseException:
                with self._lock:
                    self._loading.pop(key, None)
                raise
            with self._lock:  # cached and no longer loading in one step: a new request never loads it twice
                self._cache[key] = pipe
                self._loading.pop(key, None)
                if len(self._cache) > self.max_models:
                    self._cache.popitem(last=False)
            return pipe

    def _load(self, source: str, backend: str) -> SegmentationPipeline:
        try:
            path = ensure_onnx(source, self.onnx_dir) if backend == "onnx" else source
            return SegmentationPipeline.from_pretrained(path, backend=backend, device="cpu")
        except gr.Error:
            raise
        except Exception as exc:  # anything that stops a model loading becomes a message, not a traceback
            raise gr.Error(f"Cannot load model {source!r} ({backend}): {exc}") from exc


def _path_of(file) -> Path | None:
    if file is None:
        return None
    return Path(file if isinstance(file, (str, Path)) else getattr(file, "name", file))


def _read_upload(file, what: str) -> tuple[np.ndarray, str]:
    path = _path_of(file)
    if path is None:
        raise gr.Error(f"Upload {what} first")
    size = path.stat().st_size if path.is_file() else 0
    if size > MAX_FILE_BYTES:
        raise gr.Error(f"{path.name}: {size / 2**20:.1f} MB is larger than the {MAX_FILE_BYTES // 2**20} MB limit")
    try:
        return read_image(path, max_pixels=SERVED_MAX_PIXELS), path.name
    except ValueError as exc:
        raise gr.Error(f"{what}: {str(exc).replace(str(path), path.name)}") from exc


def _read_ground_truth(file, shape: tuple[int, int]) -> np.ndarray | None:
    if _path_of(file) is None:
        return None
    arr, name = _read_upload(file, "ground-truth mask")
    try:
        gt = mask_to_binary(arr, name=name)
    except ValueError as exc:
        raise gr.Error(str(exc)) from exc
    if gt.shape != shape:
        raise gr.Error(
            f"ground-truth mask {name} is {gt.shape[1]}x{gt.shape[0]} but the image is "
            f"{shape[1]}x{shape[0]}: they must be the same size"
        )
    return gt


# PNG settings for the pictures the app returns: zlib level 1 with the SUB filter, lossless and several times faster
# to write than PIL's defaults (BENCHMARKS.md).
_PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


def _save_png(array: np.ndarray, cache_dir: str, stem: str, kind: str) -> str:
    """Write an output as a lossless PNG straight into the app's Gradio cache and return its path. A file already in
    the cache is served as is (Gradio neither hashes nor copies it) and `delete_cache` removes it with the rest."""
    out = Path(cache_dir) / "trus-hf" / f"{Path(stem).stem}_{kind}_{uuid.uuid4().hex[:8]}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    if not cv2.imwrite(str(out), img, _PNG_FAST):
        raise gr.Error(f"could not write {out.name} to {out.parent}")
    return str(out)


def make_examples(n: int = 3) -> list[list[str]]:
    """Synthetic frames with their ground truth, written once to a temporary folder (never the working dir)."""
    folder = Path(tempfile.gettempdir()) / "trus-hf-examples"
    rows = []
    for seed in (3, 11, 17)[:n]:  # frames with lesions; seeds without one show only an empty mask
        img, msk = folder / f"phantom_{seed}.png", folder / f"phantom_{seed}_mask.png"
        if not (img.is_file() and msk.is_file()):
            ph = generate_phantom(seed, (384, 448))
            write_png(img, ph.image)
            write_png(msk, ph.lesion_mask * 255)
        rows.append([str(img), str(msk)])
    return rows


class Handlers:
    """The app's actions, one method each; ``out_dir`` is the Gradio cache folder the pictures are written into."""

    def __init__(self, cache: ModelCache, out_dir: str):
        self.cache, self.out_dir = cache, out_dir

    def _png(self, array: np.ndarray, stem: str, kind: str) -> str:
        return _save_png(array, self.out_dir, stem, kind)

    def run_model(self, image_file, mask_file, model_choice, custom_model, backend, threshold):
        """The one prediction path behind /predict and /segment: the image, its name, the ground truth (or None),
        the pipeline's result, and the numbers both endpoints return (mask file, IoU, Dice, details)."""
        image, name = _read_upload(image_file, "image")
        gt = _read_ground_truth(mask_file, image.shape[:2])
        pipe = self.cache.get(self.cache.source_for(model_choice, custom_model), BACKENDS.get(backend, "torch"))
        try:
            result = pipe(image, ground_truth=gt, threshold=threshold)
        except ValueError as exc:
            raise gr.Error(f"{name}: {exc}") from exc
        t = result.timings_ms
        info = {
            "image": name,
            "size": f"{image.shape[1]}x{image.shape[0]}",
            "model": model_choice,
            "backend": backend,
            "threshold": float(threshold),
            "lesion_pixels": int(result.mask.sum()),
            "preprocess_ms": round(t["preprocess"], 1),
            "inference_ms": round(t["inference"], 1),
            "postprocess_ms": round(t["postprocess"], 1),
        }
        iou = round(result.iou, 4) if result.metrics else None
        dice = round(result.dice, 4) if result.metrics else None
        numbers = (self._png(result.mask * 255, name, "mask"), iou, dice, info)
        return image, name, gt, result, numbers

    def predict(self, image_file, mask_file, model_choice, custom_model, backend, threshold):
        image, name, gt, result, numbers = self.run_model(
            image_file, mask_file, model_choice, custom_model, backend, threshold
        )
        return (
            self._png(overlay(image, result.mask, gt), name, "overlay"),
            self._png(heatmap(result.probabilities), name, "probability"),
            *numbers,
        )

    def segment(self, image_file, mask_file, model_choice, custom_model, backend, threshold):
        """For API clients: the mask PNG and the numbers, without the two pictures (one download per call, not 3)."""
        return self.run_model(image_file, mask_file, model_choice, custom_model, backend, threshold)[-1]

    def compare(self, image_file, mask_file, backend, threshold):
        image, name = _read_upload(image_file, "image")
        gt = _read_ground_truth(mask_file, image.shape[:2])
        masks, outs = [], []
        for choice in DEMO_CHOICES:
            pipe = self.cache.get(self.cache.source_for(choice, None), BACKENDS.get(backend, "torch"))
            r = pipe(image, ground_truth=gt, threshold=threshold)
            masks.append(r.mask)
            outs += [
                self._png(overlay(image, r.mask, gt), name, choice.split()[-1].lower()),
                round(r.iou, 4) if r.metrics else None,
            ]
        agreement = binary_metrics(masks[0], masks[1])["iou"]
        diff = self._png(disagreement(image, masks[0], masks[1]), name, "disagreement")
        return (*outs, diff, round(agreement, 4))


def build_demo(cache: ModelCache | None = None) -> gr.Blocks:
    cache = cache or ModelCache()

    # delete_cache: uploads and outputs (written into this cache by _save_png) older than an hour are removed hourly.
    with gr.Blocks(title="trus-hf: TRUS lesion segmentation", delete_cache=(3600, 3600)) as demo:
        app = Handlers(cache, demo.GRADIO_CACHE)
        gr.Markdown(
            "# trus-hf: prostate lesion segmentation on TRUS\nUpload a transrectal ultrasound frame (PNG, JPG, "
            "BMP, TIFF or DICOM) and, optionally, its ground-truth mask. **Research software, not a medical "
            "device.** The demo models were trained on synthetic phantoms only."
        )
        with gr.Row():
            model_choice = gr.Dropdown([*DEMO_CHOICES, CUSTOM], value="Demo FPN", label="Model", elem_id="model")
            custom_model = gr.Textbox(
                label="Hub ID or local folder (PyTorch or ONNX export)",
                placeholder="org/trus-fpn or /path/to/model",
                elem_id="custom_model",
            )
            backend = gr.Radio(list(BACKENDS), value="PyTorch", label="Backend", elem_id="backend")
            threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Threshold", elem_id="threshold")
        with gr.Row():
            image_file = gr.File(
                label="TRUS image",
                file_types=[".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"],
                elem_id="image_file",
            )
            mask_file = gr.File(
                label="Ground-truth mask (optional)", file_types=[".png", ".bmp", ".tif", ".tiff"], elem_id="mask_file"
            )
        with gr.Tab("Segment"):
            run = gr.Button("Segment", variant="primary", elem_id="segment")
            with gr.Row():
                overlay_out = gr.Image(
                    label="Mask on the original image (red: prediction, green: ground truth)",
                    format="png",
                    type="filepath",
                    elem_id="overlay",
                    interactive=False,
                )
                heat_out = gr.Image(
                    label="Lesion probability", format="png", type="filepath", elem_id="heatmap", interactive=False
                )
            with gr.Row():
                iou_out = gr.Number(label="IoU", elem_id="iou", interactive=False)
                dice_out = gr.Number(label="Dice", elem_id="dice", interactive=False)
                mask_out = gr.File(label="Mask (lossless PNG)", elem_id="mask_download")
            info_out = gr.JSON(label="Details and timings", elem_id="details")
            inputs = [image_file, mask_file, model_choice, custom_model, backend, threshold]
            run.click(
                app.predict, inputs, [overlay_out, heat_out, mask_out, iou_out, dice_out, info_out], api_name="predict"
            )
            # API only (the button is never shown): the same prediction without the overlay and heatmap.
            gr.Button(visible=False).click(
                app.segment, inputs, [mask_out, iou_out, dice_out, info_out], api_name="segment"
            )
        with gr.Tab("Compare FPN vs Segformer"):
            run_cmp = gr.Button("Compare", variant="primary", elem_id="compare")
            with gr.Row():
                fpn_img = gr.Image(label="Demo FPN", format="png", type="filepath", interactive=False)
                seg_img = gr.Image(label="Demo Segformer", format="png", type="filepath", interactive=False)
                diff_img = gr.Image(
                    label="Disagreement (orange: FPN only, cyan: Segformer only)",
                    format="png",
                    type="filepath",
                    interactive=False,
                )
            with gr.Row():
                fpn_iou = gr.Number(label="FPN IoU", elem_id="fpn_iou", interactive=False)
                seg_iou = gr.Number(label="Segformer IoU", elem_id="seg_iou", interactive=False)
                agree = gr.Number(label="FPN-Segformer agreement (IoU)", elem_id="agreement", interactive=False)
            run_cmp.click(
                app.compare,
                [image_file, mask_file, backend, threshold],
                [fpn_img, fpn_iou, seg_img, seg_iou, diff_img, agree],
                api_name="compare",
            )
        gr.Examples(make_examples(), inputs=[image_file, mask_file], label="Synthetic TRUS frames with ground truth")
    # Bounded memory under several users: two inferences at a time, a queue of at most 32 waiting.
    demo.queue(default_concurrency_limit=2, max_size=32)
    _calm_queue_polling(demo)
    return demo


QUEUE_POLL_S, PROGRESS_POLL_S = 0.01, 0.1


def _calm_queue_polling(demo: gr.Blocks) -> None:
    """Gradio's queue loop polls every 1 ms while idle and its progress loop every 10 ms (non-Windows defaults); on a
    small CPU machine those wake-ups interrupt PyTorch's threads mid-inference (BENCHMARKS.md measures by how much).
    Polling every 10 ms / 100 ms costs at most 10 ms before a queued request starts. These are attributes of Gradio's
    Queue (pinned version): if a Gradio upgrade drops them the app still runs, with a warning, and the test suite
    fails."""
    queue = getattr(demo, "_queue", None)
    names = ("sleep_when_free", "progress_update_sleep_when_free")
    if queue is None or not all(hasattr(queue, n) for n in names):
        logger.warning("gradio %s: Queue.%s not found; queue polling left at Gradio's defaults", gr.__version__, names)
        return
    queue.sleep_when_free, queue.progress_update_sleep_when_free = QUEUE_POLL_S, PROGRESS_POLL_S


def warm_up(cache: ModelCache) -> None:
    """Load the demo models before the first request, so that the app is ready when it starts serving."""
    for name in cache.demo:
        cache.get(str(cache.demo[name]), "torch")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    t0 = time.time()
    model_cache = ModelCache()
    warm_up(model_cache)
    app = build_demo(model_cache)
    logger.info("ready in %.1f s", time.time() - t0)
    app.launch(theme=THEME, max_file_size=MAX_FILE_BYTES, show_error=True)
