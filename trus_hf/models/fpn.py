"""FPN from segmentation-models-pytorch (default encoder resnet152) behind the trus-hf contract.

The saved ``config.json`` is smp's own (``_model_class: "FPN"`` plus constructor arguments), so
``segmentation_models_pytorch.from_pretrained(folder)`` loads our weights without trus-hf.
"""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

from ..configuration import TrusSegConfig
from .base import TrusSegmentationModel

__all__ = ["TrusFPN"]


class TrusFPN(TrusSegmentationModel):
    """segmentation-models-pytorch ``FPN`` (any smp encoder; resnet152 by default) behind the trus-hf contract.

    Example:
        >>> from trus_hf import TrusSegConfig
        >>> model = TrusFPN(TrusSegConfig(architecture="fpn", encoder_name="resnet18"))
        >>> model.native_config()["_model_class"]
        'FPN'
    """

    architecture = "fpn"

    def _build(self, config: TrusSegConfig, native_config: dict[str, Any] | None) -> nn.Module:
        if native_config is not None:
            kwargs = {k: v for k, v in native_config.items() if not k.startswith("_") and k != "model_type"}
            kwargs["encoder_weights"] = None  # the folder's own weights are loaded next; never download
        else:
            kwargs = dict(
                encoder_name=config.encoder_name,
                encoder_weights=config.encoder_weights,
                decoder_pyramid_channels=config.decoder_pyramid_channels,
                decoder_segmentation_channels=config.decoder_segmentation_channels,
                in_channels=config.num_channels,
                classes=config.num_labels,
            )
        return smp.FPN(**kwargs)

    def _logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values)

    def native_config(self) -> dict[str, Any]:
        cfg = {k: v for k, v in dict(self.net.config).items() if not k.startswith("_")}
        cfg["encoder_weights"] = None  # loading the folder must not try to download ImageNet weights
        # model_type lets transformers' Auto classes (registered by `import trus_hf`) find the model; smp ignores it.
        return {"_model_class": "FPN", "model_type": "trus_hf_fpn", **cfg}

    def encoder(self) -> nn.Module:
        return self.net.encoder

    def _native_with_labels(self, labels: list[str]) -> dict[str, Any]:
        return {**self.native_config(), "classes": len(labels)}
