"""trus-hf Gradio app: segment TRUS frames, compare any two models, whole folders and cine loops, correct the mask.

    python app.py            # http://127.0.0.1:7860 ; honours GRADIO_SERVER_NAME and GRADIO_SERVER_PORT

A thin client of the library: decoding (`trus_hf.fileio`, `trus_hf.video`), prediction (`SegmentationPipeline`),
batches and cine loops (`trus_hf.batch`), model sources and their limits (`trus_hf.serving`), pictures
(`trus_hf.visualization`). Every action has an ``api_name`` for `gradio_client`: /preview, /predict, /segment,
/compare, /batch, /cine, /edit and /correct.

Served on an address other than loopback, local model folders are accepted only under ``TRUS_HF_MODEL_ROOTS``
(none by default) and Hub downloads are bounded (``TRUS_HF_MAX_DOWNLOAD_MB``, ``TRUS_HF_ALLOW_HUB=0`` to refuse
them); see `trus_hf.serving.SourcePolicy`.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # works offline: no analytics calls

import functools
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np

from trus_hf import SegmentationPipeline
from trus_hf.arrays import mask_to_binary, to_rgb8
from trus_hf.batch import BatchLimits, gather_batch, segment_batch, segment_cine, summarize_batch, write_batch_outputs
from trus_hf.demo import DEMO_MODELS_DIR, demo_model_paths
from trus_hf.fileio import read_image, write_png
from trus_hf.metrics import binary_metrics
from trus_hf.serving import ModelCache, ModelSourceError, SourcePolicy, safe_message
from trus_hf.synthetic import generate_phantom
from trus_hf.video import read_cine, write_video
from trus_hf.visualization import annotations, disagreement, heatmap, overlay

logger = logging.getLogger("trus_hf.app")

MAX_FILE_BYTES = 50 * 2**20
# Stricter than the library's trus_hf.arrays.MAX_PIXELS: a served app bounds the memory of each request.
SERVED_MAX_PIXELS = 25_000_000
BATCH_LIMITS = BatchLimits(max_frames=200, max_bytes=300 * 2**20, max_pixels=SERVED_MAX_PIXELS)
CINE_MAX_FRAMES, CINE_MAX_SECONDS = 300, 30.0
DEMO_CHOICES = {"Demo FPN": "fpn", "Demo Segformer": "segformer"}
CUSTOM = "Hub ID or local folder"
BACKENDS = {"PyTorch": "torch", "ONNX Runtime": "onnx"}
IMAGE_TYPES = [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"]
MASK_TYPES = [".png", ".bmp", ".tif", ".tiff"]
# System fonts only: the default theme would fetch Google Fonts, and the app must work offline.
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def make_cache(demo_dir: Path = DEMO_MODELS_DIR, policy: SourcePolicy | None = None) -> ModelCache:
    """The app's model cache: the bundled models by their menu name, other sources through the serving policy."""
    bundled = {
        choice: demo_model_paths(demo_dir)[name]
        for choice, name in DEMO_CHOICES.items()
        if name in demo_model_paths(demo_dir)
    }
    return ModelCache(bundled, policy or SourcePolicy.from_env())


# ------------------------------------------------------------------------------------------------ inputs
def _path_of(file) -> Path | None:
    if file is None:
        return None
    return Path(file if isinstance(file, (str, Path)) else getattr(file, "name", file))


def _error(text: Any) -> gr.Error:
    return gr.Error(safe_message(text))


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
        raise _error(f"{what}: {str(exc).replace(str(path), path.name)}") from exc


def _read_mask(file, shape: tuple[int, int], what: str) -> np.ndarray | None:
    if _path_of(file) is None:
        return None
    arr, name = _read_upload(file, what)
    try:
        gt = mask_to_binary(arr, name=name)
    except ValueError as exc:
        raise _error(exc) from exc
    if gt.shape != shape:
        raise gr.Error(
            f"{what} {name} is {gt.shape[1]}x{gt.shape[0]} but the image is {shape[1]}x{shape[0]}: "
            f"they must be the same size"
        )
    return gt


def _ground_truth(mask_file, more_files, shape, pipe: SegmentationPipeline) -> dict[str, np.ndarray] | None:
    """The primary label's mask, and masks of other labels named after them (``frame_gland.png``)."""
    gts = {}
    primary = _read_mask(mask_file, shape, f"ground-truth mask ({pipe.primary_label})")
    if primary is not None:
        gts[pipe.primary_label] = primary
    for f in more_files or []:
        stem = _path_of(f).stem.lower()
        label = next((lb for lb in pipe.labels if stem.endswith(lb.lower())), None)
        if label is None:
            raise gr.Error(
                f"{_path_of(f).name}: name ground-truth masks after a label of the model "
                f"({', '.join(pipe.labels)}), e.g. frame_{pipe.labels[0]}.png"
            )
        gts[label] = _read_mask(f, shape, f"ground-truth mask ({label})")
    return gts or None


# PNG settings for the pictures the app returns: zlib level 1 with the SUB filter, lossless and several times faster
# to write than PIL's defaults (BENCHMARKS.md).
_PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


def _save_png(array: np.ndarray, cache_dir: str, stem: str, kind: str) -> str:
    """Write an output as a lossless PNG straight into the app's Gradio cache and return its path. A file already in
    the cache is served as is (Gradio neither hashes nor copies it) and `delete_cache` removes it with the rest."""
    out = Path(cache_dir) / "trus-hf" / uuid.uuid4().hex[:12] / f"{Path(stem).stem}_{kind}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    if not cv2.imwrite(str(out), img, _PNG_FAST):
        raise gr.Error(f"could not write {out.name}")
    return str(out)


def make_examples(n: int = 3) -> list[list[str]]:
    """Synthetic frames with their lesion and gland masks, written once to a temporary folder (never the working
    dir): the picture, its lesion mask, its gland mask."""
    folder = Path(tempfile.gettempdir()) / "trus-hf-examples-v2"
    rows = []
    for seed in (3, 11, 17, 23, 31)[:n]:
        img, les, gl = (folder / f"phantom_{seed}{s}.png" for s in ("", "_lesion", "_gland"))
        if not (img.is_file() and les.is_file() and gl.is_file()):
            ph = generate_phantom(seed, (384, 480), "clean")
            write_png(img, ph.image)
            write_png(les, ph.lesion_mask * 255)
            write_png(gl, ph.gland_mask * 255)
        rows.append([str(img), str(les), str(gl)])
    return rows


def _metric(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _view(fn, numbers: tuple[int, ...]):
    """The page's version of an action: its number outputs (at positions ``numbers``) are shown once computed and
    hidden while there is none, never a "0" that means nothing. API clients call the action itself and get plain
    numbers."""

    @functools.wraps(fn)
    def view(*args, **kwargs):
        out = list(fn(*args, **kwargs))
        for i in numbers:
            out[i] = gr.update(value=out[i], visible=out[i] is not None)
        return tuple(out)

    return view


def _wire(button: gr.Button, fn, inputs: list, outputs: list, api_name: str, numbers: tuple[int, ...]) -> None:
    """``button`` runs the page's version of ``fn`` (`_view`); API clients get ``fn`` itself under ``api_name``
    (a button that is never shown)."""
    button.click(_view(fn, numbers), inputs, outputs, api_name=False)
    gr.Button(visible=False).click(fn, inputs, outputs, api_name=api_name)


class Handlers:
    """The app's actions, one method each; ``out_dir`` is the Gradio cache folder the outputs are written into."""

    def __init__(self, cache: ModelCache, out_dir: str):
        self.cache, self.out_dir = cache, out_dir

    def _png(self, array: np.ndarray, stem: str, kind: str) -> str:
        return _save_png(array, self.out_dir, stem, kind)

    def _folder(self) -> Path:
        folder = Path(self.out_dir) / "trus-hf" / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def pipeline(
        self,
        choice: str,
        custom: str | None,
        backend: str,
        uncertainty: bool = False,
        within_gland: bool = False,
        threshold: float | None = None,
    ) -> SegmentationPipeline:
        """The cached pipeline of a model choice, with this request's options (a shallow copy: the cached one is
        never changed by a request). A threshold of 0 or None is the model's tuned one."""
        threshold = float(threshold) if threshold else None
        source = choice if choice in DEMO_CHOICES else (custom or "").strip()
        if choice in DEMO_CHOICES and choice not in self.cache.bundled:
            raise gr.Error(f"{choice} is not installed: run `trus-hf demo-models` first")
        if not source:
            raise gr.Error("Enter a Hub model ID (org/name) or a local model folder in the text box")
        try:
            pipe = self.cache.get(source, BACKENDS.get(backend, "torch"))
        except ModelSourceError as exc:
            raise gr.Error(f"Cannot load model {source!r}: {exc}") from exc
        if not uncertainty and not within_gland and threshold is None:
            return pipe
        if within_gland and not {"gland", "lesion"} <= set(pipe.labels):
            raise gr.Error(
                f"'Lesion within gland' needs a model with gland and lesion labels; this one predicts "
                f"{', '.join(pipe.labels)}"
            )
        return SegmentationPipeline(
            pipe.models,
            pipe.processor,
            threshold=threshold,
            min_component_fraction=pipe.min_component_fraction,
            tta_flip=uncertainty,
            uncertainty=uncertainty,
            lesion_within_gland=within_gland,
            device="cpu",
        )

    # -------------------------------------------------------------------------------------------- preview
    def preview(self, image_file):
        """The uploaded frame as the server decoded it (DICOM and 16-bit TIFF too), and its size."""
        if _path_of(image_file) is None:
            return None, ""
        image, name = _read_upload(image_file, "image")
        h, w = image.shape[:2]
        return self._png(to_rgb8(image), name, "preview"), f"**{name}**: {w} x {h} pixels"

    # -------------------------------------------------------------------------------------------- segment
    def run_model(
        self,
        image_file,
        mask_file,
        choice,
        custom,
        backend,
        threshold,
        uncertainty=False,
        within_gland=False,
        more_masks=None,
    ):
        """The one prediction path behind /predict and /segment: image, name, ground truths, result, numbers."""
        image, name = _read_upload(image_file, "image")
        pipe = self.pipeline(choice, custom, backend, bool(uncertainty), bool(within_gland), threshold)
        gts = _ground_truth(mask_file, more_masks, image.shape[:2], pipe)
        try:
            result = pipe(image, ground_truth=gts)
        except ValueError as exc:
            raise _error(f"{name}: {exc}") from exc
        t = result.timings_ms
        info = {
            "image": name,
            "size": f"{image.shape[1]}x{image.shape[0]}",
            "model": choice if choice in DEMO_CHOICES else custom,
            "backend": backend,
            "ensemble_members": len(pipe.models),  # a k-fold run's folder or Hub repo: its fold models
            "threshold": {lb: pipe.processor.threshold_for(lb, pipe.threshold) for lb in pipe.labels},
            "labels": pipe.labels,
            "lesion_pixels": int(result.masks["lesion"].sum()) if "lesion" in result.masks else None,
            **{f"{lb}_pixels": int(m.sum()) for lb, m in result.masks.items()},
            "scores": {
                lb: {"iou": _metric(m["iou"]), "dice": _metric(m["dice"])} for lb, m in result.label_metrics.items()
            },
            "preprocess_ms": round(t["preprocess"], 1),
            "inference_ms": round(t["inference"], 1),
            "postprocess_ms": round(t["postprocess"], 1),
        }
        masks = [self._png(m * 255, name, f"mask_{lb}") for lb, m in result.masks.items()]
        numbers = (masks, _metric(result.iou), _metric(result.dice), info)
        return image, name, gts, result, numbers

    def predict(
        self,
        image_file,
        mask_file,
        choice,
        custom,
        backend,
        threshold,
        uncertainty=False,
        within_gland=False,
        more_masks=None,
        opacity=0.45,
    ):
        image, name, gts, result, numbers = self.run_model(
            image_file, mask_file, choice, custom, backend, threshold, uncertainty, within_gland, more_masks
        )
        layers, _ = annotations(result.masks, gts)
        picture = self._png(overlay(image, result.masks, gts, alpha=float(opacity)), name, "overlay")
        original = self._png(to_rgb8(image), name, "original")
        spread = None
        if result.uncertainty is not None:
            spread = self._png(heatmap(result.uncertainty / 0.5), name, "uncertainty")  # std of a probability <= .5
        state = {
            "image": original,
            "name": name,
            "masks": {lb: m.astype(bool) for lb, m in result.masks.items()},
            "gts": gts,
        }
        return (
            (original, [(m, lb) for m, lb in layers]),
            picture,
            (original, picture),
            self._png(heatmap(result.probabilities), name, "probability"),
            spread,
            *numbers,
            state,
        )

    def segment(
        self,
        image_file,
        mask_file,
        choice,
        custom,
        backend,
        threshold,
        uncertainty=False,
        within_gland=False,
        more_masks=None,
    ):
        """For API clients: the mask PNGs and the numbers, without the pictures."""
        return self.run_model(
            image_file, mask_file, choice, custom, backend, threshold, uncertainty, within_gland, more_masks
        )[-1]

    def repaint(self, state, opacity):
        """The overlay again at another opacity, from the last result (no new inference)."""
        if not state:
            return None
        image = read_image(state["image"])
        return self._png(overlay(image, state["masks"], state["gts"], alpha=float(opacity)), state["name"], "overlay")

    # -------------------------------------------------------------------------------------------- compare
    def compare(self, image_file, mask_file, choice_a, custom_a, backend_a, choice_b, custom_b, backend_b, threshold):
        image, name = _read_upload(image_file, "image")
        sides = []
        for choice, custom, backend in ((choice_a, custom_a, backend_a), (choice_b, custom_b, backend_b)):
            pipe = self.pipeline(choice, custom, backend, threshold=threshold)
            gt = _read_mask(mask_file, image.shape[:2], f"ground-truth mask ({pipe.primary_label})")
            t0 = time.perf_counter()
            r = pipe(image, ground_truth=gt)
            ms = round((time.perf_counter() - t0) * 1000, 1)
            sides.append((r, gt, ms, choice if choice in DEMO_CHOICES else custom))
        outputs = []
        for r, gt, ms, _ in sides:
            outputs += [
                self._png(overlay(image, r.masks, gt), name, f"model_{len(outputs)}"),
                _metric(r.iou),
                _metric(r.dice),
                ms,
            ]
        a, b = sides[0][0].mask, sides[1][0].mask
        agreement = binary_metrics(a, b)["iou"]
        diff = self._png(disagreement(image, a, b), name, "disagreement")
        return (*outputs, diff, round(agreement, 4))

    # -------------------------------------------------------------------------------------------- batch
    def batch(self, files, mask_files, choice, custom, backend, threshold, progress=gr.Progress()):
        paths = [_path_of(f) for f in files or []]
        if not paths:
            raise gr.Error("Upload frames (images, DICOM files or a zip of them) first")
        pipe = self.pipeline(choice, custom, backend, threshold=threshold)
        try:
            items, problems = gather_batch(
                paths, [_path_of(f) for f in mask_files or []], BATCH_LIMITS, pipe.labels, pipe.primary_label
            )
        except ValueError as exc:
            raise _error(exc) from exc
        if not items:
            raise _error("no readable frame in the upload: " + "; ".join(problems[:5]))
        progress(0, desc="segmenting")
        results, rows = segment_batch(pipe, items, lambda done, total: progress(done / total, desc="segmenting"))
        folder = self._folder()
        zip_path, csv_path = write_batch_outputs(folder, items, results, rows)
        summary = summarize_batch(rows)
        by_name = {it.name: (it, r) for it, r in zip(items, results)}
        order = summary["worst"] or [it.name for it in items]
        gallery = [
            (self._png(overlay(by_name[f][0].image, by_name[f][1].masks, by_name[f][0].mask), f, "overlay"), f)
            for f in list(dict.fromkeys(order))[:12]
        ]
        lines = [f"**{len(items)} frames** segmented ({pipe.labels and ', '.join(pipe.labels)})."]
        for label, s in summary["labels"].items():
            lines.append(
                f"- {label}: IoU {s['iou']['mean']:.3f} (95% CI {s['iou']['ci95'][0]:.3f}-"
                f"{s['iou']['ci95'][1]:.3f}), Dice {s['dice']['mean']:.3f} (95% CI {s['dice']['ci95'][0]:.3f}-"
                f"{s['dice']['ci95'][1]:.3f}) on {s['n']} frames with a ground truth"
            )
        if problems:
            lines.append("\n**Not used:** " + "; ".join(safe_message(p) for p in problems[:20]))
        return "\n".join(lines), gallery, str(zip_path), str(csv_path), summary

    # -------------------------------------------------------------------------------------------- cine
    def cine(self, video_file, choice, custom, backend, threshold, progress=gr.Progress()):
        path = _path_of(video_file)
        if path is None:
            raise gr.Error("Upload a cine loop (mp4, avi, webm or a multi-frame DICOM) first")
        if path.stat().st_size > MAX_FILE_BYTES * 4:
            raise gr.Error(f"{path.name}: larger than the {MAX_FILE_BYTES * 4 // 2**20} MB limit")
        t0 = time.perf_counter()
        try:
            clip = read_cine(
                path, max_frames=CINE_MAX_FRAMES, max_seconds=CINE_MAX_SECONDS, max_pixels=SERVED_MAX_PIXELS
            )
        except ValueError as exc:
            raise _error(str(exc).replace(str(path), path.name)) from exc
        decode_ms = (time.perf_counter() - t0) * 1000 / len(clip.frames)
        pipe = self.pipeline(choice, custom, backend, threshold=threshold)
        t1 = time.perf_counter()
        frames, areas, spent = segment_cine(
            pipe, clip.frames, lambda done, total: progress(done / total, desc="segmenting frames")
        )
        seg_s = time.perf_counter() - t1
        video = write_video(self._folder() / f"{Path(clip.source).stem}_overlay.webm", frames, clip.fps)
        import pandas as pd

        table = pd.DataFrame(
            [{"frame": i, "label": lb, "pixels": v} for lb, vals in areas.items() for i, v in enumerate(vals)]
        )
        info = {
            "file": clip.source,
            "frames": len(clip.frames),
            "fps_of_the_clip": round(clip.fps, 2),
            "frames_per_second_segmented": round(len(clip.frames) / seg_s, 1),
            "ms_per_frame": {"decode": round(decode_ms, 1), **{k: round(v, 1) for k, v in spent.items()}},
            "frames_with_lesion": int(np.count_nonzero(areas["lesion"])) if "lesion" in areas else None,
        }
        return str(video), table, info

    # -------------------------------------------------------------------------------------------- correct
    def edit(self, image_file, choice, custom, backend, threshold):
        """The frame with the predicted primary-label mask as an editable layer."""
        image, name = _read_upload(image_file, "image")
        pipe = self.pipeline(choice, custom, backend, threshold=threshold)
        r = pipe(image)
        rgba = np.zeros((*r.mask.shape, 4), np.uint8)
        rgba[r.mask.astype(bool)] = (255, 60, 60, 160)
        mask_png = self._png(r.mask * 255, name, "prediction")
        layer = _save_rgba(rgba, self._folder() / f"{Path(name).stem}_layer.png")
        editor = {"background": self._png(to_rgb8(image), name, "background"), "layers": [layer], "composite": None}
        return editor, mask_png

    def correct(self, editor, prediction_file, image_file):
        """The edited layer as a binary PNG at the frame's size (the file name of the frame, for ``masks/``), and
        how much the correction changed the prediction."""
        if not editor or not editor.get("layers"):
            raise gr.Error("Open the prediction in the editor first (Edit the mask)")
        layer = editor["layers"][0]
        arr = read_image(layer, keep_alpha=True) if isinstance(layer, (str, Path)) else np.asarray(layer)
        alpha = arr[..., 3] if arr.ndim == 3 and arr.shape[-1] == 4 else (arr[..., 0] if arr.ndim == 3 else arr)
        corrected = (alpha > 0).astype(np.uint8)
        prediction = mask_to_binary(read_image(_path_of(prediction_file))) if _path_of(prediction_file) else None
        if prediction is not None and prediction.shape != corrected.shape:
            corrected = cv2.resize(corrected, prediction.shape[::-1], interpolation=cv2.INTER_NEAREST)
        name = _path_of(image_file).name if _path_of(image_file) else "frame.png"
        out = self._folder() / f"{Path(name).stem}.png"
        write_png(out, corrected * 255)
        change = binary_metrics(prediction, corrected)["iou"] if prediction is not None else None
        return str(out), _metric(change), int(corrected.sum())


def _save_rgba(rgba: np.ndarray, path: Path) -> str:
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), _PNG_FAST)
    return str(path)


# ------------------------------------------------------------------------------------------------ layout
def _model_picker(suffix: str, default: str) -> tuple[gr.Dropdown, gr.Textbox, gr.Radio]:
    choice = gr.Dropdown([*DEMO_CHOICES, CUSTOM], value=default, label="Model", elem_id=f"model{suffix}")
    custom = gr.Textbox(
        label="Hub ID or local folder (PyTorch or ONNX export)",
        placeholder="org/trus-fpn",
        elem_id=f"custom_model{suffix}",
    )
    backend = gr.Radio(list(BACKENDS), value="PyTorch", label="Backend", elem_id=f"backend{suffix}")
    return choice, custom, backend


def build_demo(cache: ModelCache | None = None) -> gr.Blocks:
    cache = cache or make_cache()
    # delete_cache: uploads and outputs (written into this cache) older than an hour are removed hourly.
    with gr.Blocks(title="trus-hf: TRUS segmentation", delete_cache=(3600, 3600)) as demo:
        app = Handlers(cache, demo.GRADIO_CACHE)
        state = gr.State()
        gr.Markdown(
            "# trus-hf: prostate gland and lesion segmentation on TRUS\nUpload a transrectal ultrasound frame "
            "(PNG, JPG, BMP, TIFF or DICOM) and, optionally, its ground truth. **Research software, not a "
            "medical device.** The bundled models learned from phantoms and breast ultrasound, never from "
            "real TRUS frames."
        )
        with gr.Row():
            choice, custom, backend = _model_picker("", "Demo FPN")
            threshold = gr.Slider(
                0.0,
                0.95,
                value=0.0,
                step=0.05,
                label="Threshold (0: the model's own, tuned on validation data)",
                elem_id="threshold",
            )
        with gr.Row():
            with gr.Column(scale=1):
                image_file = gr.File(label="TRUS image", file_types=IMAGE_TYPES, elem_id="image_file")
                mask_file = gr.File(
                    label="Ground truth of the lesion (optional)", file_types=MASK_TYPES, elem_id="mask_file"
                )
                more_masks = gr.File(
                    label="Ground truths of other labels (optional; e.g. frame_gland.png)",
                    file_types=MASK_TYPES,
                    file_count="multiple",
                    elem_id="more_masks",
                )
            with gr.Column(scale=1):
                preview = gr.Image(
                    label="Uploaded frame", type="filepath", interactive=False, elem_id="preview", height=300
                )
                size_info = gr.Markdown(elem_id="size_info")
        image_file.change(app.preview, image_file, [preview, size_info], api_name="preview")

        with gr.Tab("Segment"):
            with gr.Row():
                uncertainty = gr.Checkbox(label="Uncertainty (flip TTA)", value=False, elem_id="uncertainty")
                within_gland = gr.Checkbox(label="Lesion within gland", value=False, elem_id="within_gland")
                opacity = gr.Slider(0.0, 1.0, value=0.45, step=0.05, label="Overlay opacity", elem_id="opacity")
            run = gr.Button("Segment", variant="primary", elem_id="segment")
            with gr.Row():
                annotated = gr.AnnotatedImage(
                    label="Prediction and ground truth (hover the legend)", elem_id="annotated"
                )
                overlay_out = gr.Image(
                    label="Overlay (fill: prediction, green outline: ground truth)",
                    format="png",
                    type="filepath",
                    elem_id="overlay",
                    interactive=False,
                )
            with gr.Row():
                slider = gr.ImageSlider(label="Before / after", type="filepath", elem_id="before_after")
                heat_out = gr.Image(
                    label="Probability (primary label)",
                    format="png",
                    type="filepath",
                    elem_id="heatmap",
                    interactive=False,
                )
                spread_out = gr.Image(
                    label="Uncertainty (spread over the flipped views)",
                    format="png",
                    type="filepath",
                    elem_id="uncertainty_map",
                    interactive=False,
                )
            with gr.Row():
                iou_out = gr.Number(label="IoU", visible=False, elem_id="iou", interactive=False)
                dice_out = gr.Number(label="Dice", visible=False, elem_id="dice", interactive=False)
                masks_out = gr.File(
                    label="Masks (lossless PNG, one per label)", file_count="multiple", elem_id="mask_download"
                )
            info_out = gr.JSON(label="Details, scores per label and timings", elem_id="details")
            inputs = [image_file, mask_file, choice, custom, backend, threshold, uncertainty, within_gland, more_masks]
            predict_outputs = [
                annotated,
                overlay_out,
                slider,
                heat_out,
                spread_out,
                masks_out,
                iou_out,
                dice_out,
                info_out,
                state,
            ]
            _wire(run, app.predict, [*inputs, opacity], predict_outputs, "predict", numbers=(6, 7))
            opacity.release(app.repaint, [state, opacity], overlay_out, api_name=False)
            # API only (the button is never shown): the same prediction without the pictures.
            gr.Button(visible=False).click(
                app.segment, inputs, [masks_out, iou_out, dice_out, info_out], api_name="segment"
            )

        with gr.Tab("Compare two models"):
            gr.Markdown("Model A is the one picked above; pick model B here (a bundled model, a Hub ID or a folder).")
            with gr.Row():
                choice_b, custom_b, backend_b = _model_picker("_b", "Demo Segformer")
            run_cmp = gr.Button("Compare", variant="primary", elem_id="compare")
            with gr.Row():
                img_a = gr.Image(label="Model A", format="png", type="filepath", interactive=False, elem_id="img_a")
                img_b = gr.Image(label="Model B", format="png", type="filepath", interactive=False, elem_id="img_b")
                diff_img = gr.Image(
                    label="Disagreement (orange: A only, cyan: B only)",
                    format="png",
                    type="filepath",
                    interactive=False,
                    elem_id="disagreement",
                )
            with gr.Row():
                iou_a = gr.Number(label="A: IoU", visible=False, elem_id="iou_a", interactive=False)
                dice_a = gr.Number(label="A: Dice", visible=False, elem_id="dice_a", interactive=False)
                ms_a = gr.Number(label="A: time (ms)", visible=False, elem_id="ms_a", interactive=False)
                iou_b = gr.Number(label="B: IoU", visible=False, elem_id="iou_b", interactive=False)
                dice_b = gr.Number(label="B: Dice", visible=False, elem_id="dice_b", interactive=False)
                ms_b = gr.Number(label="B: time (ms)", visible=False, elem_id="ms_b", interactive=False)
                agree = gr.Number(label="A-B agreement (IoU)", visible=False, elem_id="agreement", interactive=False)
            compare_in = [image_file, mask_file, choice, custom, backend, choice_b, custom_b, backend_b, threshold]
            compare_out = [img_a, iou_a, dice_a, ms_a, img_b, iou_b, dice_b, ms_b, diff_img, agree]
            _wire(run_cmp, app.compare, compare_in, compare_out, "compare", numbers=(1, 2, 3, 5, 6, 7, 9))

        with gr.Tab("Batch"):
            gr.Markdown(
                f"Many frames at once: images, DICOM files or zip archives of them (at most "
                f"{BATCH_LIMITS.max_frames} frames, {BATCH_LIMITS.max_bytes // 2**20} MB); masks paired by file "
                f"name (`frame7.png` with `frame7.png` or `frame7_mask.png`)."
            )
            with gr.Row():
                batch_files = gr.File(
                    label="Frames or zip",
                    file_count="multiple",
                    elem_id="batch_files",
                    file_types=[*IMAGE_TYPES, ".zip"],
                )
                batch_masks = gr.File(
                    label="Masks or zip (optional)",
                    file_count="multiple",
                    elem_id="batch_masks",
                    file_types=[*MASK_TYPES, ".zip"],
                )
            run_batch = gr.Button("Segment all", variant="primary", elem_id="run_batch")
            batch_summary = gr.Markdown(elem_id="batch_summary")
            batch_gallery = gr.Gallery(label="Worst frames first", columns=4, elem_id="batch_gallery")
            with gr.Row():
                batch_zip = gr.File(label="Masks and overlays (zip)", elem_id="batch_zip")
                batch_csv = gr.File(label="Per-image metrics (CSV)", elem_id="batch_csv")
            batch_json = gr.JSON(label="Summary", elem_id="batch_json", visible=False)
            run_batch.click(
                app.batch,
                [batch_files, batch_masks, choice, custom, backend, threshold],
                [batch_summary, batch_gallery, batch_zip, batch_csv, batch_json],
                api_name="batch",
            )

        with gr.Tab("Cine loop"):
            gr.Markdown(
                f"A short video (mp4, avi, webm) or a multi-frame DICOM, at most {CINE_MAX_FRAMES} frames and "
                f"{CINE_MAX_SECONDS:g} s: every frame segmented (ONNX Runtime is the fast backend)."
            )
            cine_file = gr.File(
                label="Cine loop", file_types=[".mp4", ".avi", ".webm", ".mov", ".mkv", ".dcm"], elem_id="cine_file"
            )
            run_cine = gr.Button("Segment the loop", variant="primary", elem_id="run_cine")
            with gr.Row():
                cine_video = gr.Video(label="Overlay video", elem_id="cine_video", interactive=False)
                cine_plot = gr.LinePlot(
                    x="frame", y="pixels", color="label", title="Area per frame (pixels)", elem_id="cine_plot"
                )
            cine_info = gr.JSON(label="Frames per second and where the time goes", elem_id="cine_info")
            run_cine.click(
                app.cine,
                [cine_file, choice, custom, backend, threshold],
                [cine_video, cine_plot, cine_info],
                api_name="cine",
            )

        with gr.Tab("Correct and keep"):
            gr.Markdown(
                "Open the predicted mask over the frame, paint or erase, then save: the corrected mask is a "
                "binary PNG at the frame's size, named like the frame, ready for the `masks/` folder that "
                "`trus-hf import-labels` and `--data` read."
            )
            open_editor = gr.Button("Edit the mask", elem_id="open_editor")
            editor = gr.ImageEditor(
                label="Mask editor (brush: add, eraser: remove)",
                type="filepath",
                elem_id="editor",
                layers=False,
                brush=gr.Brush(colors=["#ff3c3c"], default_size=12, color_mode="fixed"),
            )
            predicted = gr.File(label="Prediction", elem_id="predicted_mask", visible=True, interactive=False)
            save = gr.Button("Save the correction", variant="primary", elem_id="save_correction")
            with gr.Row():
                corrected = gr.File(label="Corrected mask (binary PNG)", elem_id="corrected_mask")
                change = gr.Number(
                    label="IoU between prediction and correction", visible=False, elem_id="change", interactive=False
                )
                pixels = gr.Number(label="Mask pixels", visible=False, elem_id="mask_pixels", interactive=False)
            open_editor.click(
                app.edit, [image_file, choice, custom, backend, threshold], [editor, predicted], api_name="edit"
            )
            _wire(save, app.correct, [editor, predicted, image_file], [corrected, change, pixels], "correct", (1, 2))

        examples = [[img, lesion, [gland], img] for img, lesion, gland in make_examples()]
        gr.Examples(
            examples,
            inputs=[image_file, mask_file, more_masks, preview],
            label="Synthetic TRUS frames with their lesion and gland masks (click one)",
        )
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
    """Load the bundled models before the first request, so that the app is ready when it starts serving."""
    for name in cache.bundled:
        cache.get(name, "torch")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    t0 = time.time()
    model_cache = make_cache()
    warm_up(model_cache)
    app = build_demo(model_cache)
    logger.info("ready in %.1f s", time.time() - t0)
    app.launch(theme=THEME, max_file_size=MAX_FILE_BYTES, show_error=True)
