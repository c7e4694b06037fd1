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

__all__ = ["SummedFPN", "TrusFPN"]


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

    def inference_module(self) -> nn.Module:
        """`SummedFPN` (the decoder's branches summed pairwise) where the decoder merges by addition."""
        if self.net.decoder.merge.policy != "add":
            return super().inference_module()
        return SummedFPN(self.net).eval()

    def native_config(self) -> dict[str, Any]:
        cfg = {k: v for k, v in dict(self.net.config).items() if not k.startswith("_")}
        cfg["encoder_weights"] = None  # loading the folder must not try to download ImageNet weights
        # model_type lets transformers' Auto classes (registered by `import trus_hf`) find the model; smp ignores it.
        return {"_model_class": "FPN", "model_type": "trus_hf_fpn", **cfg}

    def encoder(self) -> nn.Module:
        return self.net.encoder

    def _native_with_labels(self, labels: list[str]) -> dict[str, Any]:
        return {**self.native_config(), "classes": len(labels)}


class SummedFPN(nn.Module):
    """smp's FPN logits with the decoder's four branches summed by three additions instead of smp's
    ``torch.stack(branches).sum(0)``: the same function (float rounding aside) without the stacked 4x-wide tensor at
    1/4 resolution. In the INT8 graph that stack was a concatenation, a dequantization of the concatenated map and a
    reduction in fp32: ~29 ms of FPN-resnet152's ~440 ms at 768x768 (BENCHMARKS.md)."""

    def __init__(self, net: smp.FPN):
        super().__init__()
        if net.classification_head is not None:
            raise ValueError("SummedFPN computes the masks only; this FPN also has a classification head")
        self.net = net

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        decoder = self.net.decoder
        c2, c3, c4, c5 = self.net.encoder(pixel_values)[-4:]
        p5 = decoder.p5(c5)
        p4 = decoder.p4(p5, c4)
        p3 = decoder.p3(p4, c3)
        p2 = decoder.p2(p3, c2)
        blocks = decoder.seg_blocks
        summed = blocks[0](p5) + blocks[1](p4) + blocks[2](p3) + blocks[3](p2)
        return self.net.segmentation_head(decoder.dropout(summed))
