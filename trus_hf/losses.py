"""Dice + BCE for one sigmoid channel per label (smp's DiceLoss and torch's BCE with logits), weighted per label,
with pixels marked `IGNORE` (a label not annotated on an image) left out of both terms. The Dice term is smp's,
pooled over the batch, or per image (`DiceBCELoss(per_image=True)`).

Example:
    >>> import torch
    >>> from trus_hf.losses import IGNORE, DiceBCELoss
    >>> logits = torch.zeros(1, 2, 4, 4)
    >>> labels = torch.zeros(1, 2, 4, 4, dtype=torch.long)
    >>> labels[:, 0] = IGNORE  # the first label is not annotated on this image
    >>> float(DiceBCELoss()(logits, labels)) > 0
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss
from torch import nn

from .arrays import IGNORE

__all__ = ["IGNORE", "DiceBCELoss"]


class DiceBCELoss(nn.Module):
    """``sum_c w_c (dice_weight * Dice_c + bce_weight * BCE_c) / sum_c w_c`` over the label channels ``c`` of logits
    (N, C, H, W) against 0/1 labels (N, C, H, W), or (N, H, W) for one channel; `IGNORE` pixels are left out. A
    channel without any annotated pixel in the batch contributes nothing.

    ``per_image``: Dice is computed per image and averaged over the images where the label is present, so that a
    lesion of 0.5% of the frame weighs as much as one of 10% (pooled over the batch, the large one decides). Images
    without the label are left to BCE, as smp leaves a batch without it. smp's DiceLoss has no per-image mode
    (it pools over the batch in binary mode), hence the few lines below."""

    def __init__(
        self,
        dice_weight: float = 1.0,
        bce_weight: float = 1.0,
        label_weights: Sequence[float] | None = None,
        per_image: bool = False,
    ):
        super().__init__()
        self.dice_weight, self.bce_weight, self.per_image = dice_weight, bce_weight, per_image
        self.label_weights = list(label_weights) if label_weights is not None else None
        self.dice = DiceLoss(mode="binary", from_logits=True, ignore_index=IGNORE)

    @classmethod
    def from_config(cls, config: Any) -> DiceBCELoss:
        """The loss a `TrusSegConfig` describes (its dice/bce weights, label weights and Dice mode)."""
        return cls(config.dice_weight, config.bce_weight, config.label_weights, config.dice_per_image)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if labels.ndim == 3:
            labels = labels[:, None]
        if labels.shape != logits.shape:
            raise ValueError(f"labels shape {tuple(labels.shape)} does not match logits {tuple(logits.shape)}")
        weights = self.label_weights or [1.0] * logits.shape[1]
        total = logits.new_zeros(())
        norm = 0.0
        for c, w in enumerate(weights):
            if w == 0:
                continue
            target = labels[:, c : c + 1]
            valid = target != IGNORE
            if not bool(valid.any()):
                continue
            x = logits[:, c : c + 1]
            bce = F.binary_cross_entropy_with_logits(x[valid], target[valid].to(x.dtype))
            if not self.dice_weight:
                dice = x.new_zeros(())
            else:
                dice = _dice_per_image(x, target, valid) if self.per_image else self.dice(x, target)
            total = total + w * (self.dice_weight * dice + self.bce_weight * bce)
            norm += w
        return total / norm if norm else logits.sum() * 0.0


def _dice_per_image(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Mean soft Dice loss over the images (N, 1, H, W) whose target holds the label; smp's smoothing (0) and eps."""
    p = torch.sigmoid(logits.float()) * valid
    t = (target == 1).float() * valid
    dims = (1, 2, 3)
    present = t.sum(dims) > 0
    if not bool(present.any()):
        return logits.sum() * 0.0
    score = 2 * (p * t).sum(dims) / (p + t).sum(dims).clamp_min(eps)
    return (1 - score[present]).mean()
