"""`SegformerForSemanticSegmentation` (transformers, MiT b0..b5) behind the trus-hf contract.

One sigmoid output channel per label (``id2label`` in the config); logits are upsampled bilinearly from 1/4
resolution to the input size. The saved
``config.json`` is a `SegformerConfig`, so ``SegformerForSemanticSegmentation.from_pretrained(folder)`` works
without trus-hf.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SegformerConfig, SegformerForSemanticSegmentation

from ..configuration import SEGFORMER_SIZES, TrusSegConfig
from .base import TrusSegmentationModel

__all__ = ["TrusSegformer"]


class TrusSegformer(TrusSegmentationModel):
    """transformers ``SegformerForSemanticSegmentation`` (MiT b0..b5) behind the trus-hf contract; its 1/4-resolution
    logits are upsampled to the input size.

    Example:
        >>> from trus_hf import TrusSegConfig
        >>> model = TrusSegformer(TrusSegConfig(architecture="segformer", segformer_size="b0"))
        >>> model.native_config()["model_type"]
        'segformer'
    """

    architecture = "segformer"

    def _build(self, config: TrusSegConfig, native_config: dict[str, Any] | None) -> nn.Module:
        if native_config is not None:
            native = {k: v for k, v in native_config.items() if not k.startswith("_")}
            return SegformerForSemanticSegmentation(SegformerConfig(**native))
        labels = {
            "num_labels": config.num_labels,
            "id2label": config.id2label,
            "label2id": {name: i for i, name in config.id2label.items()},
        }
        if config.pretrained_backbone:
            # Online path: start from a published MiT encoder (e.g. "nvidia/mit-b0"); the head is new.
            return SegformerForSemanticSegmentation.from_pretrained(
                config.pretrained_backbone, ignore_mismatched_sizes=True, **labels
            )
        return SegformerForSemanticSegmentation(
            SegformerConfig(num_channels=config.num_channels, **labels, **SEGFORMER_SIZES[config.segformer_size])
        )

    def _logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        logits = self.net(pixel_values=pixel_values).logits
        return F.interpolate(logits, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)

    def native_config(self) -> dict[str, Any]:
        cfg = self.net.config.to_dict()
        cfg.pop("_trus_hf", None)
        return cfg
