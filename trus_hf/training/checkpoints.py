"""The resumable checkpoint (``checkpoints/last``): model weights (safetensors), optimizer and scheduler state, RNG
state and trainer state, written atomically so that a killed run resumes from the last complete one. Tensors are
loaded with ``weights_only=True``."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..fileio import atomic_dir

__all__ = ["load_checkpoint", "save_checkpoint"]


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {"python": random.getstate()[1], "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}


def _set_rng_state(state: dict[str, Any], torch_state: torch.Tensor | None) -> None:
    random.setstate((3, tuple(state["python"]), None))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, np.uint32), pos, has_gauss, cached))
    if torch_state is not None:
        torch.set_rng_state(torch_state)


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
                "torch_rng": torch.get_rng_state(),
            },
            tmp / "training_state.pt",
        )
        (tmp / "trainer_state.json").write_text(json.dumps({**trainer_state, "rng": _rng_state()}))


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNG state in place; returns the trainer state (epoch, history...)."""
    state = json.loads((path / "trainer_state.json").read_text())
    model.net.load_state_dict(load_file(str(path / "model.safetensors")))
    extra = torch.load(path / "training_state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    _set_rng_state(state.pop("rng"), extra["torch_rng"])
    return state
