"""Dice + BCE for one sigmoid channel per label (smp's DiceLoss and torch's BCE with logits), weighted per label,
with pixels marked `IGNORE` (a label not annotated on an image) left out of both terms. The Dice term is smp's,
pooled over the batch (``dice_mode="batch"``), per image (``"image"``) or pooled with each image weighted by one over
its lesion area (``"balanced"``).

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
from .configuration import DICE_MODES, check_dice_mode

__all__ = ["BALANCED_DICE_FLOOR", "DICE_MODES", "IGNORE", "DiceBCELoss"]

#: ``balanced`` Dice: an image's weight is one over max(its lesion area, this share of its annotated pixels), so a
#: lesion-free image weighs as much as one holding a lesion of this size (0.5% of the frame: a small phantom lesion)
BALANCED_DICE_FLOOR = 0.005


class DiceBCELoss(nn.Module):
    """``sum_c w_c (dice_weight * Dice_c + bce_weight * BCE_c) / sum_c w_c`` over the label channels ``c`` of logits
    (N, C, H, W) against 0/1 labels (N, C, H, W), or (N, H, W) for one channel; `IGNORE` pixels are left out. A
    channel without any annotated pixel in the batch contributes nothing.

    ``dice_mode``: ``batch`` is smp's Dice, pooled over every pixel of the batch (a lesion of 10% of the frame
    decides over one of 0.5%). ``image`` computes Dice per image and averages it over the images where the label
    is present, so small and large lesions weigh the same; images without the label are left to BCE, as smp leaves
    a batch without it. ``balanced`` pools over the batch with each image's pixels weighted by one over its lesion
    area (at least `BALANCED_DICE_FLOOR` of its annotated pixels): each lesion weighs about the same, as per image,
    and a false mark on a lesion-free image still counts against the Dice, as pooled. smp's DiceLoss has neither
    mode (it pools over the batch in binary mode), hence the few lines below."""

    def __init__(
        self,
        dice_weight: float = 1.0,
        bce_weight: float = 1.0,
        label_weights: Sequence[float] | None = None,
        dice_mode: str = "batch",
    ):
        super().__init__()
        self.dice_weight, self.bce_weight = dice_weight, bce_weight
        self.dice_mode = check_dice_mode(dice_mode)
        self.label_weights = list(label_weights) if label_weights is not None else None
        self.dice = DiceLoss(mode="binary", from_logits=True, ignore_index=IGNORE)

    @classmethod
    def from_config(cls, config: Any) -> DiceBCELoss:
        """The loss a `TrusSegConfig` describes (its dice/bce weights, label weights and Dice mode)."""
        return cls(config.dice_weight, config.bce_weight, config.label_weights, config.dice_mode)

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
                dice = self._dice(x, target, valid)
            total = total + w * (self.dice_weight * dice + self.bce_weight * bce)
            norm += w
        return total / norm if norm else logits.sum() * 0.0

    def _dice(self, x: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.dice_mode == "image":
            return _dice_per_image(x, target, valid)
        if self.dice_mode == "balanced":
            return _dice_balanced(x, target, valid)
        return self.dice(x, target)


_EPS = 1e-7  # smp's DiceLoss eps (its smoothing is 0)


def _dice_sums(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor):
    """Per image of (N, 1, H, W): soft intersection, soft prediction + target, and lesion area (annotated pixels
    only), and the number of annotated pixels."""
    p = torch.sigmoid(logits.float()) * valid
    t = (target == 1).float() * valid
    dims = (1, 2, 3)
    return (p * t).sum(dims), (p + t).sum(dims), t.sum(dims), valid.sum(dims)


def _dice_per_image(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean soft Dice loss over the images whose target holds the label; smp's smoothing and eps."""
    inter, total, area, _ = _dice_sums(logits, target, valid)
    present = area > 0
    if not bool(present.any()):
        return logits.sum() * 0.0
    score = 2 * inter / total.clamp_min(_EPS)
    return (1 - score[present]).mean()


def _dice_balanced(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss pooled over the batch, image i's pixels weighted by
    1 / max(lesion area_i, BALANCED_DICE_FLOOR * annotated pixels_i); 0 for a batch without the label, as smp."""
    inter, total, area, annotated = _dice_sums(logits, target, valid)
    if not bool((area > 0).any()):
        return logits.sum() * 0.0
    weight = 1.0 / torch.maximum(area, BALANCED_DICE_FLOOR * annotated).clamp_min(1.0)
    return 1 - 2 * (weight * inter).sum() / (weight * total).sum().clamp_min(_EPS)
