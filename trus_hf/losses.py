"""Dice + BCE loss for binary segmentation logits (smp's DiceLoss and torch's BCEWithLogitsLoss, weighted)."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.losses import DiceLoss
from torch import nn

__all__ = ["DiceBCELoss"]


class DiceBCELoss(nn.Module):
    """``dice_weight * Dice + bce_weight * BCE`` on logits (N, 1, H, W) against labels (N, H, W) or (N, 1, H, W)."""

    def __init__(self, dice_weight: float = 1.0, bce_weight: float = 1.0):
        super().__init__()
        self.dice_weight, self.bce_weight = dice_weight, bce_weight
        self.dice = DiceLoss(mode="binary", from_logits=True)
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if labels.ndim == 3:
            labels = labels[:, None]
        if labels.shape != logits.shape:
            raise ValueError(f"labels shape {tuple(labels.shape)} does not match logits {tuple(logits.shape)}")
        target = labels.to(logits.dtype)
        return self.dice_weight * self.dice(logits, target) + self.bce_weight * self.bce(logits, target)
