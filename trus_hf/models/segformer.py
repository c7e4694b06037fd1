"""`SegformerForSemanticSegmentation` (transformers, MiT b0..b5) behind the trus-hf contract.

One sigmoid output channel per label (``id2label`` in the config); logits are upsampled bilinearly from 1/4
resolution to the input size. The saved
``config.json`` is a `SegformerConfig`, so ``SegformerForSemanticSegmentation.from_pretrained(folder)`` works
without trus-hf.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SegformerConfig, SegformerForSemanticSegmentation

from ..configuration import SEGFORMER_SIZES, TrusSegConfig
from .base import TrusSegmentationModel, safe_open_keys

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

    def encoder(self) -> nn.Module:
        return self.net.segformer

    def load_weights(self, path: str | Path, allow_pickle: bool = False) -> None:
        """Our own folders hold the network's state dict as is; checkpoints written by transformers'
        ``save_pretrained`` may use the library's on-disk key names, which its own loader maps (safetensors only,
        local files only, no remote code)."""
        path = Path(path)
        if path.suffix == ".safetensors" and set(safe_open_keys(path)) != set(self.net.state_dict()):
            loaded = SegformerForSemanticSegmentation.from_pretrained(
                str(path.parent), config=self.net.config, use_safetensors=True, local_files_only=True
            )
            self.net.load_state_dict(loaded.state_dict())
            return
        super().load_weights(path, allow_pickle=allow_pickle)

    def _native_with_labels(self, labels: list[str]) -> dict[str, Any]:
        return {
            **self.native_config(),
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)},
        }
