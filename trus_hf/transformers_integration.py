"""trus-hf models where Hugging Face users already are: ``import trus_hf`` registers, through transformers' public
registration APIs (never ``trust_remote_code``), what ``transformers.pipeline("image-segmentation", model=...)`` needs
for a trus-hf folder or Hub ID:

- ``AutoImageProcessor`` knows `TrusImageProcessor` (the ``image_processor_type`` of every trus-hf folder);
- ``AutoConfig`` / ``AutoModelForSemanticSegmentation`` know the FPN (``model_type: trus_hf_fpn`` in its
  ``config.json``, which segmentation-models-pytorch ignores), as `TrusFPNForSemanticSegmentation`; the Segformer is
  transformers' own ``SegformerForSemanticSegmentation``;
- the ``image-segmentation`` task runs `TrusImageSegmentationPipeline`: for a model with a `TrusImageProcessor` the
  same pre- and post-processing as `trus_hf.SegmentationPipeline` (ROI crop, resize, diffusion, masks mapped back to
  the original size, one sigmoid channel per label, the sides of a ``multiscale`` processor averaged), for any
  other model exactly transformers' own pipeline.

Example:
    >>> import trus_hf  # registers
    >>> from transformers import AutoConfig
    >>> AutoConfig.for_model("trus_hf_fpn").model_type
    'trus_hf_fpn'
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoImageProcessor, AutoModelForSemanticSegmentation, PretrainedConfig
from transformers import PreTrainedModel as _PreTrainedModel
from transformers.modeling_outputs import SemanticSegmenterOutput
from transformers.pipelines import PIPELINE_REGISTRY, ImageSegmentationPipeline

from .image_processing import TrusImageProcessor

__all__ = [
    "FPN_MODEL_TYPE",
    "TrusFPNConfig",
    "TrusFPNForSemanticSegmentation",
    "TrusImageSegmentationPipeline",
    "register",
]

FPN_MODEL_TYPE = "trus_hf_fpn"
_FPN_ARGS = (
    "encoder_name",
    "encoder_depth",
    "encoder_weights",
    "decoder_pyramid_channels",
    "decoder_segmentation_channels",
    "decoder_merge_policy",
    "decoder_dropout",
    "decoder_interpolation",
    "in_channels",
    "classes",
    "activation",
    "upsampling",
    "aux_params",
)


class TrusFPNConfig(PretrainedConfig):
    """The FPN's ``config.json`` (segmentation-models-pytorch's constructor arguments) seen by transformers."""

    model_type = FPN_MODEL_TYPE


class TrusFPNForSemanticSegmentation(_PreTrainedModel):
    """segmentation-models-pytorch's FPN as a transformers model: the same modules under the same names, so the
    folder's ``model.safetensors`` loads as it is; ``logits`` (N, labels, H, W) at the input size."""

    config_class = TrusFPNConfig
    main_input_name = "pixel_values"

    def __init__(self, config: TrusFPNConfig):
        super().__init__(config)
        import segmentation_models_pytorch as smp

        kwargs = {k: getattr(config, k) for k in _FPN_ARGS if getattr(config, k, None) is not None}
        kwargs["encoder_weights"] = None  # the checkpoint's weights are loaded next; never download
        fpn = smp.FPN(**kwargs)
        self.encoder, self.decoder, self.segmentation_head = fpn.encoder, fpn.decoder, fpn.segmentation_head
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:  # smp initialised the modules already
        pass

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs
    ) -> SemanticSegmenterOutput:
        return SemanticSegmenterOutput(logits=self.segmentation_head(self.decoder(self.encoder(pixel_values))))


def _is_trus(image_processor: Any) -> bool:
    return isinstance(image_processor, TrusImageProcessor)


class TrusImageSegmentationPipeline(ImageSegmentationPipeline):
    """transformers' image-segmentation pipeline; for trus-hf models, the trus-hf prediction path. Returns, per image,
    one ``{"score": None, "label": <label>, "mask": PIL image (0/255, original size)}`` per label."""

    def check_model_type(self, supported_models):
        if isinstance(self.model, TrusFPNForSemanticSegmentation):
            return  # registered by trus-hf; transformers' list of image-segmentation models is fixed
        super().check_model_type(supported_models)

    def _sanitize_parameters(self, **kwargs):
        pre, fwd, post = super()._sanitize_parameters(**kwargs)
        if "mask_threshold" in kwargs:
            post["mask_threshold"] = kwargs["mask_threshold"]
        return pre, fwd, post

    def preprocess(self, image, subtask=None, timeout=None):
        if not _is_trus(self.image_processor):
            return super().preprocess(image, subtask=subtask, timeout=timeout)
        if isinstance(image, (str, Path)) and not str(image).startswith(("http://", "https://")):
            from .fileio import read_image

            image = read_image(image)  # DICOM and 16-bit TIFF too, as trus-hf reads them
        elif not isinstance(image, np.ndarray):
            from transformers.image_utils import load_image

            image = load_image(image, timeout=timeout)
        views = []  # one per input side: the processor's size, or each side of its ``multiscale``
        for processor in self.image_processor.scale_processors():
            batch = processor(image, return_tensors="pt")
            views.append({"pixel_values": batch["pixel_values"].to(self.dtype), "geometries": batch["geometries"]})
        return {"views": views}

    def _forward(self, model_inputs):
        if "views" not in model_inputs:
            return super()._forward(model_inputs)
        outputs = []
        for view in model_inputs["views"]:
            pixel_values = view["pixel_values"]
            logits = self.model(pixel_values=pixel_values).logits
            if logits.shape[-2:] != pixel_values.shape[-2:]:  # Segformer predicts at 1/4 resolution
                logits = F.interpolate(logits, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)
            outputs.append({"logits": logits, "geometries": view["geometries"]})
        return {"views": outputs}

    def postprocess(
        self, model_outputs, subtask=None, threshold=0.9, mask_threshold=None, overlap_mask_area_threshold=0.5
    ):
        """``mask_threshold`` None: for trus-hf models their tuned post-processing (as `SegmentationPipeline`), for
        others transformers' 0.5."""
        if "views" not in model_outputs:
            mask_threshold = 0.5 if mask_threshold is None else mask_threshold
            return super().postprocess(model_outputs, subtask, threshold, mask_threshold, overlap_mask_area_threshold)
        from PIL import Image

        # each side's probabilities at the original size, averaged there (as `SegmentationPipeline` does)
        probs = np.mean(
            [
                processor.post_process_logits(view["logits"].float(), view["geometries"])[0]
                for processor, view in zip(self.image_processor.scale_processors(), model_outputs["views"])
            ],
            axis=0,
        )
        stack = probs[None] if probs.ndim == 2 else probs
        id2label = getattr(self.model.config, "id2label", None) or {}
        trus = getattr(self.model.config, "_trus_hf", None) or {}
        labels = trus.get("labels") or [id2label.get(i, f"label_{i}") for i in range(stack.shape[0])]
        masks = self.image_processor.masks_from_probabilities(dict(zip(map(str, labels), stack)), mask_threshold)
        return [{"score": None, "label": label, "mask": Image.fromarray(m * 255)} for label, m in masks.items()]


@contextmanager
def _quiet(logger_name: str):
    """Silence one logger for the duration (the registry warns when a task is registered again)."""
    log = logging.getLogger(logger_name)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


_REGISTERED = False


def register() -> None:
    """Register the trus-hf classes with transformers (idempotent; ``import trus_hf`` calls it)."""
    global _REGISTERED
    if _REGISTERED:
        return
    AutoConfig.register(FPN_MODEL_TYPE, TrusFPNConfig, exist_ok=True)
    AutoModelForSemanticSegmentation.register(TrusFPNConfig, TrusFPNForSemanticSegmentation, exist_ok=True)
    # One class for either backend: its pixel work is OpenCV, neither PIL nor torchvision.
    AutoImageProcessor.register(
        TrusFPNConfig,
        image_processor_classes={"pil": TrusImageProcessor, "torchvision": TrusImageProcessor},
        exist_ok=True,
    )
    task = PIPELINE_REGISTRY.supported_tasks["image-segmentation"]
    with _quiet("transformers.pipelines.base"):
        PIPELINE_REGISTRY.register_pipeline(
            "image-segmentation",
            pipeline_class=TrusImageSegmentationPipeline,
            pt_model=task["pt"],
            default=task.get("default"),
            type=task.get("type"),
        )
    _REGISTERED = True
