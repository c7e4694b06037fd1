"""`SegmentationPipeline`: the one prediction path (PyTorch or ONNX Runtime backend).

Any input (path, PIL image, numpy array, or a list of them) -> processor -> model -> post-processing -> mask at the
original size, probability map, and IoU/Dice when a ground truth is given. Training validation, evaluation, ONNX
parity checks, the CLI and the app all call this.

Example:
    >>> from trus_hf import SegmentationPipeline, TrusImageProcessor, TrusSegConfig, create_model
    >>> from trus_hf.synthetic import generate_phantom
    >>> model = create_model(TrusSegConfig(architecture="segformer"))
    >>> pipe = SegmentationPipeline(model, TrusImageProcessor(size={"height": 64, "width": 64}))
    >>> ph = generate_phantom(1, (120, 160))
    >>> result = pipe(ph.image, ground_truth=ph.lesion_mask)
    >>> result.mask.shape, 0.0 <= result.iou <= 1.0
    ((120, 160), True)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .arrays import mask_to_binary
from .fileio import read_image, read_mask
from .image_processing import TrusImageProcessor
from .metrics import binary_metrics

__all__ = ["KFOLD_SUMMARY", "SegmentationPipeline", "SegmentationResult", "kfold_members", "largest_component"]

#: What a k-fold run (`train_kfold`, ``--folds K``) writes at the top of its output folder, beside ``fold_<i>/model``.
KFOLD_SUMMARY = "kfold_summary.json"


@dataclass
class SegmentationResult:
    """One image's prediction, at the original size: ``masks`` (uint8 0/1) and ``label_probabilities`` (float32)
    per label; ``mask`` and ``probabilities`` are those of the model's primary label (the only one of a binary
    model), ``metrics`` its scores against the ground truth and ``label_metrics`` every scored label's."""

    mask: np.ndarray
    probabilities: np.ndarray
    metrics: dict[str, float] | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    source: str | None = None
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    label_probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    label_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    #: With ``uncertainty=True``: per-pixel standard deviation of the probability over the views (flip TTA,
    #: ensemble members), of the primary label and of every label.
    uncertainty: np.ndarray | None = None
    label_uncertainty: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return list(self.masks)

    @property
    def iou(self) -> float | None:
        return None if self.metrics is None else self.metrics["iou"]

    @property
    def dice(self) -> float | None:
        return None if self.metrics is None else self.metrics["dice"]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 8-connected foreground component of a 0/1 mask."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask.astype(np.uint8)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == best).astype(np.uint8)


def kfold_members(folder: str | Path) -> list[Path] | None:
    """The fold models of a k-fold run's output folder (``fold_1/model`` ... ``fold_K/model``, K from its
    ``kfold_summary.json``), or None when ``folder`` is not one. A run with a fold model missing is an error naming
    it: an ensemble silently short of a fold would not be the one that was cross-validated."""
    from .models.base import CONFIG_NAME

    folder = Path(folder)
    summary = folder / KFOLD_SUMMARY
    if not summary.is_file() or (folder / CONFIG_NAME).is_file():
        return None
    try:
        k = int(json.loads(summary.read_text())["k"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{summary}: not a k-fold summary with its number of folds 'k' ({exc})") from exc
    members = [folder / f"fold_{i}" / "model" for i in range(1, k + 1)]
    missing = [str(m) for m in members if not (m / CONFIG_NAME).is_file()]
    if missing:
        raise ValueError(f"{folder}: a {k}-fold run, but fold model(s) missing: {', '.join(missing)}")
    return members


def _load_input(item: Any, max_pixels: int) -> tuple[Any, str | None]:
    if isinstance(item, (str, Path)):
        return read_image(item, max_pixels=max_pixels), str(item)
    return item, None


def _checked_threshold(threshold: float | None) -> float | None:
    if threshold is None:
        return None
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return threshold


def _channels_last(model: Any) -> bool:
    """Whether the model runs in channels_last memory format: the convolutional FPN on the PyTorch backend, where it
    is faster on CPU; Segformer is not (benchmarks/latency.py measures both, BENCHMARKS.md has the figures)."""
    return isinstance(model, torch.nn.Module) and getattr(getattr(model, "config", None), "architecture", "") == "fpn"


class SegmentationPipeline:
    """Predict one mask per label with a trus-hf model and its processor.

    Args:
        model: a `TrusSegmentationModel`, an `OnnxSegmentationModel`, or a list of either (an ensemble: the
            probabilities of the members are averaged, e.g. the K models of a cross-validation).
        processor: the model's `TrusImageProcessor`.
        threshold: probability above which a pixel is foreground, for every label; None (default): the model's
            tuned threshold per label (the processor's ``mask_threshold``, chosen on validation data), else 0.5.
        min_component_fraction: drop connected components smaller than this share of the image, for every label;
            None (default): the model's tuned ``min_mask_fraction`` per label (none dropped when untuned); 0 keeps
            every component.
        largest_component_only: keep only the largest connected component of each label's mask.
        lesion_within_gland: for a model with ``gland`` and ``lesion`` labels, keep only the lesion inside the
            predicted gland (cancer is judged inside the prostate).
        uncertainty: also return the per-pixel spread of the probability over the views (needs ``tta_flip`` or an
            ensemble): where the model is unsure.
        tta_flip: average the prediction with that of the horizontally flipped image.
        batch_size: images per forward pass when a list is given.
        device: torch device for PyTorch models (default: CUDA when available).
    """

    def __init__(
        self,
        model: Any,
        processor: TrusImageProcessor,
        threshold: float | None = None,
        largest_component_only: bool = False,
        tta_flip: bool = False,
        batch_size: int = 4,
        device: str | torch.device | None = None,
        lesion_within_gland: bool = False,
        uncertainty: bool = False,
        min_component_fraction: float | None = None,
    ):
        threshold = _checked_threshold(threshold)
        if min_component_fraction is not None and not 0.0 <= min_component_fraction <= 0.5:
            raise ValueError(f"min_component_fraction must be in [0, 0.5], got {min_component_fraction}")
        self.min_component_fraction = min_component_fraction
        self.models = list(model) if isinstance(model, (list, tuple)) else [model]
        if not self.models:
            raise ValueError("at least one model is needed")
        configs = [m.config for m in self.models]
        if any(c.labels != configs[0].labels for c in configs):
            raise ValueError(f"ensemble members predict different labels: {[c.labels for c in configs]}")
        self.labels: list[str] = list(configs[0].labels)
        self.primary_label: str = configs[0].primary_label
        if lesion_within_gland and not {"gland", "lesion"} <= set(self.labels):
            raise ValueError(f"lesion_within_gland needs a model with 'gland' and 'lesion' labels, got {self.labels}")
        self.lesion_within_gland = lesion_within_gland
        if uncertainty and len(self.models) * (2 if tta_flip else 1) * len(processor.scale_processors()) < 2:
            raise ValueError(
                "uncertainty needs several views: pass tta_flip=True, an ensemble of models or a processor with "
                "several input sizes (multiscale)"
            )
        self.uncertainty = uncertainty
        self.processor = processor
        self.threshold = threshold
        self.largest_component_only = largest_component_only
        self.tta_flip = tta_flip
        self.batch_size = max(1, int(batch_size))
        self.device = (
            torch.device(device)
            if device is not None
            else (torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
        )
        for m in self.models:
            if isinstance(m, torch.nn.Module):
                m.to(self.device).eval()
                if _channels_last(m):
                    m.to(memory_format=torch.channels_last)

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | Path | Sequence[str | Path],
        backend: str = "torch",
        revision: str | None = None,
        **kwargs,
    ) -> SegmentationPipeline:
        """Load one model (or several, as an ensemble sharing the first one's processor) by folder or Hub ID. A k-fold
        run's output folder (``--folds K``), or a Hub repo it was pushed to (`trus_hf.hub.push_model`), loads as the
        ensemble of its K fold models."""
        from .models import load_model, resolve_model_dir

        def members(source: str | Path) -> list:
            found = kfold_members(source)
            if found is None and not Path(source).exists():  # a Hub ID, downloaded once: a pushed k-fold run expands
                folder = resolve_model_dir(source, revision=revision)
                found = kfold_members(folder) or [folder]
            return found or [source]

        given = [path_or_hub_id] if isinstance(path_or_hub_id, (str, Path)) else list(path_or_hub_id)
        sources = [m for s in given for m in members(s)]
        loaded = [load_model(s, revision=revision, backend=backend) for s in sources]
        return cls([m for m, _ in loaded], loaded[0][1], **kwargs)

    @property
    def backend(self) -> str:
        return "torch" if isinstance(self.models[0], torch.nn.Module) else "onnx"

    @torch.inference_mode()
    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Mean logit of the ensemble (and of the flipped view when ``tta_flip``) for a processed batch."""
        outs = self.view_logits(pixel_values)
        return torch.stack(outs).mean(0) if len(outs) > 1 else outs[0]

    @torch.inference_mode()
    def view_logits(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """The logits of every view: each ensemble member, and its flipped view when ``tta_flip``."""
        outs = []
        for m in self.models:
            x = pixel_values.to(self.device) if isinstance(m, torch.nn.Module) else pixel_values
            if _channels_last(m):
                x = x.contiguous(memory_format=torch.channels_last)
            outs.append(m(x).logits.float().cpu())
            if self.tta_flip:
                outs.append(m(torch.flip(x, dims=[-1])).logits.float().cpu().flip(dims=[-1]))
        return outs

    def _ground_truths(self, gt: Any) -> dict[str, np.ndarray]:
        """One image's ground truth -> {label: 0/1 mask}: a single mask (file, array) is the primary label's; a dict
        names its labels (None entries are skipped)."""
        if gt is None:
            return {}
        items = gt.items() if isinstance(gt, dict) else [(self.primary_label, gt)]
        out = {}
        for label, mask in items:
            if label not in self.labels:
                raise ValueError(f"ground truth for unknown label {label!r}; the model predicts {self.labels}")
            if mask is not None:
                out[label] = (
                    read_mask(mask)
                    if isinstance(mask, (str, Path))
                    else mask_to_binary(mask, f"ground truth ({label})")
                )
        return out

    def postprocess(
        self,
        logits: Any,
        geometries: Sequence[Any],
        ground_truths: Sequence[Any] | None = None,
        threshold: float | None = None,
    ) -> list[SegmentationResult]:
        """Logits of a processed batch -> results at the original size: probabilities mapped back through each
        image's geometry, thresholded, optionally reduced to the largest component and the lesion to the gland,
        scored against the ground truth (entries may be None, a mask of the primary label or a dict per label).
        Training validation calls this too, so the checkpoint it keeps is chosen by the same masks and metrics that
        evaluation reports."""
        return self.results_from_probabilities(
            self.processor.post_process_logits(logits, geometries), ground_truths, threshold
        )

    def results_from_probabilities(
        self, probs: Sequence[np.ndarray], ground_truths: Sequence[Any] | None = None, threshold: float | None = None
    ) -> list[SegmentationResult]:
        """Probabilities at the original size ((H, W), or (labels, H, W)) -> results: thresholded, optionally
        reduced to the largest component and the lesion to the gland, scored against the ground truth."""
        threshold = self.threshold if threshold is None else _checked_threshold(threshold)
        if ground_truths is not None and len(ground_truths) != len(probs):
            raise ValueError(f"got {len(probs)} predictions but {len(ground_truths)} ground truths")
        results = []
        for i, p in enumerate(probs):
            stack = p[None] if p.ndim == 2 else p
            if stack.shape[0] != len(self.labels):
                raise ValueError(f"the model gave {stack.shape[0]} label channels for labels {self.labels}")
            label_probs = dict(zip(self.labels, stack))
            masks = self.processor.masks_from_probabilities(label_probs, threshold, self.min_component_fraction)
            if self.largest_component_only:
                masks = {label: largest_component(mask) for label, mask in masks.items()}
            if self.lesion_within_gland:
                masks["lesion"] = masks["lesion"] & masks["gland"]
                label_probs["lesion"] = label_probs["lesion"] * masks["gland"]
            gts = self._ground_truths(ground_truths[i] if ground_truths is not None else None)
            label_metrics = {}
            for label, gt in gts.items():
                if gt.shape != masks[label].shape:
                    raise ValueError(
                        f"ground truth size {gt.shape[1]}x{gt.shape[0]} differs from the image "
                        f"{masks[label].shape[1]}x{masks[label].shape[0]}"
                    )
                label_metrics[label] = binary_metrics(masks[label], gt)
            primary = self.primary_label
            results.append(
                SegmentationResult(
                    masks[primary],
                    label_probs[primary],
                    label_metrics.get(primary),
                    masks=masks,
                    label_probabilities=label_probs,
                    label_metrics=label_metrics,
                )
            )
        return results

    def predict(
        self, images: Sequence[Any], ground_truths: Sequence[Any] | None = None, threshold: float | None = None
    ) -> list[SegmentationResult]:
        """Predict a list of inputs; ``ground_truths`` (same length; entries may be None, a mask of the primary label
        or a dict per label) adds IoU/Dice.
        ``threshold`` overrides the pipeline's for this call only (the pipeline is never mutated)."""
        threshold = self.threshold if threshold is None else _checked_threshold(threshold)
        if ground_truths is not None and len(ground_truths) != len(images):
            raise ValueError(f"got {len(images)} images but {len(ground_truths)} ground truths")
        results = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            gts = ground_truths[start : start + len(chunk)] if ground_truths is not None else None
            t0 = time.perf_counter()
            loaded = [_load_input(x, self.processor.max_pixels) for x in chunk]
            arrays = [a for a, _ in loaded]
            if self.processor.multiscale:
                loading = time.perf_counter() - t0
                probs, spreads, pre, inference = self._scaled_probabilities(arrays)
                pre += loading
                chunk_results = self.results_from_probabilities(probs, gts, threshold)
            else:
                batch = self.processor(arrays)
                t1 = time.perf_counter()
                views = self.view_logits(batch["pixel_values"])
                logits = torch.stack(views).mean(0) if len(views) > 1 else views[0]
                t2 = time.perf_counter()
                pre, inference = t1 - t0, t2 - t1
                chunk_results = self.postprocess(logits, batch["geometries"], gts, threshold)
                if self.uncertainty:
                    spread = torch.stack([torch.sigmoid(v) for v in views]).std(0, unbiased=False)
                    spreads = self.processor.post_process_maps(spread, batch["geometries"])
            if self.uncertainty:
                for r, u in zip(chunk_results, spreads):
                    stack = u[None] if u.ndim == 2 else u
                    r.label_uncertainty = dict(zip(self.labels, stack))
                    r.uncertainty = r.label_uncertainty[self.primary_label]
            post = time.perf_counter() - t0 - pre - inference  # mapping back, thresholds, components, metrics
            n = len(chunk)
            for r, (_, source) in zip(chunk_results, loaded):
                r.timings_ms = {
                    "preprocess": pre * 1000 / n,
                    "inference": inference * 1000 / n,
                    "postprocess": post * 1000 / n,
                }
                r.source = source
            results += chunk_results
        return results

    def _scaled_probabilities(self, images: list[Any]) -> tuple[list[np.ndarray], list[np.ndarray], float, float]:
        """Multi-scale test-time augmentation (the processor's ``multiscale``): every view (ensemble members, flips)
        at every input side, each mapped back to the original size as probabilities and averaged there (logits of
        different input sizes meet only at one geometry). Returns per image the mean probability and the spread over
        the views, and the seconds spent in preprocessing and in the models."""
        maps, pre, inference = [], 0.0, 0.0
        for processor in self.processor.scale_processors():
            t0 = time.perf_counter()
            batch = processor(images)
            t1 = time.perf_counter()
            views = self.view_logits(batch["pixel_values"])
            pre, inference = pre + t1 - t0, inference + time.perf_counter() - t1
            maps += [processor.post_process_logits(v, batch["geometries"]) for v in views]
        stacks = [np.stack([m[i] for m in maps]) for i in range(len(images))]
        return [s.mean(0) for s in stacks], [s.std(0) for s in stacks], pre, inference

    def __call__(
        self, images: Any, ground_truth: Any = None, threshold: float | None = None
    ) -> SegmentationResult | list[SegmentationResult]:
        """One input -> one `SegmentationResult`; a list -> a list."""
        if isinstance(images, (list, tuple)):
            return self.predict(list(images), ground_truth, threshold)
        return self.predict([images], [ground_truth] if ground_truth is not None else None, threshold)[0]
