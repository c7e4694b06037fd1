"""The resumable checkpoint (``checkpoints/last``): model weights (safetensors), optimizer and scheduler state and
trainer state, written atomically so that a killed run resumes from the last complete one. Tensors are
loaded with ``weights_only=True``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..fileio import atomic_dir

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(path: Path, model, optimizer, scheduler, trainer_state: dict[str, Any]) -> None:
    with atomic_dir(path) as tmp:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()},
            str(tmp / "model.safetensors"),
        )
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            },
            tmp / "training_state.pt",
        )
        (tmp / "trainer_state.json").write_text(json.dumps(trainer_state))


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict[str, Any]:
    """Restore model, optimizer and scheduler state in place; returns the trainer state (epoch, history...). Random
    draws need no state: the training loop seeds each epoch from the run's seed and the epoch number."""
    state = json.loads((path / "trainer_state.json").read_text())
    model.net.load_state_dict(load_file(str(path / "model.safetensors")))
    extra = torch.load(path / "training_state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    state.pop("rng", None)  # written by versions that restored the RNG instead
    return state
