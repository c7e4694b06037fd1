"""The one model contract both architectures follow.

``forward(pixel_values, labels=None)`` returns a `SemanticSegmenterOutput` whose ``logits`` are (N, 1, H, W) at the
input resolution and whose ``loss`` (Dice + BCE, weights from the config) is set when labels are given.

A saved model is a folder: ``config.json`` (the architecture's native config plus a ``_trus_hf`` block naming the
architecture), ``model.safetensors``, ``preprocessor_config.json`` and a ``README.md`` card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.modeling_outputs import SemanticSegmenterOutput

from ..configuration import TrusSegConfig
from ..fileio import atomic_dir
from ..losses import DiceBCELoss
from ..modelcard import render_model_card

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "TrusSegmentationModel", "safe_open_keys"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def safe_open_keys(path: str | Path) -> list[str]:
    """The tensor names of a safetensors file (read from its header, no tensor is loaded)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return list(f.keys())


class _LogitsOf(nn.Module):
    def __init__(self, model: TrusSegmentationModel):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model._logits(pixel_values)


class TrusSegmentationModel(nn.Module):
    """Base class: subclasses set ``architecture`` and implement the four architecture hooks below."""

    architecture: ClassVar[str] = ""

    def __init__(self, config: TrusSegConfig, native_config: dict[str, Any] | None = None):
        super().__init__()
        if config.architecture != self.architecture:
            raise ValueError(
                f"{type(self).__name__} needs architecture {self.architecture!r}, got {config.architecture!r}"
            )
        self.config = config
        self.net = self._build(config, native_config)
        self.loss_fn = DiceBCELoss.from_config(config)

    # ---- architecture hooks
    def _build(self, config: TrusSegConfig, native_config: dict[str, Any] | None) -> nn.Module:
        raise NotImplementedError

    def _logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def native_config(self) -> dict[str, Any]:
        """The config.json that the architecture's own library reads (without the ``_trus_hf`` block)."""
        raise NotImplementedError

    def encoder(self) -> nn.Module:
        """The pretrained-able feature extractor (frozen first, or trained at a lower rate, when fine-tuning)."""
        raise NotImplementedError

    def _native_with_labels(self, labels: list[str]) -> dict[str, Any]:
        """The native config of the same network with another label set (a new output head)."""
        raise NotImplementedError

    def inference_module(self) -> nn.Module:
        """A module mapping ``pixel_values`` to the logits of `forward`, for export: the same function, possibly
        rewritten for speed (exact up to float rounding). The default is the model's own ``_logits``."""
        return _LogitsOf(self)

    def with_labels(self, labels: list[str], primary_label: str | None = None) -> TrusSegmentationModel:
        """The same network predicting ``labels``: every weight is kept except the output head's, which is new when
        the number of labels changes (fine-tuning a binary start for gland + lesion, say)."""
        import dataclasses

        if list(labels) == self.config.labels and primary_label in (None, self.config.primary_label):
            return self
        config = dataclasses.replace(self.config, labels=list(labels), primary_label=primary_label)
        new = type(self)(config, native_config=self._native_with_labels(config.labels))
        own = self.net.state_dict()
        target = new.net.state_dict()
        kept = {k: v for k, v in own.items() if k in target and tuple(v.shape) == tuple(target[k].shape)}
        new.net.load_state_dict({**target, **kept})
        new.reinitialised = sorted(set(target) - set(kept))
        return new

    # ---- the contract
    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> SemanticSegmenterOutput:
        """Segment a processed batch.

        Args:
            pixel_values: (N, ``num_channels``, H, W) float, as `TrusImageProcessor` makes it (H and W multiples of
                32 for FPN).
            labels: optional 0/1 targets (N, L, H, W) with one channel per label (pixels equal to
                `trus_hf.losses.IGNORE` left out), or (N, H, W) for a one-label model; then ``loss`` (Dice + BCE) is
                set.

        Returns:
            `SemanticSegmenterOutput` with ``logits`` (N, L, H, W), one channel per label in ``config.labels``, at the
            input resolution, and ``loss`` or None.

        Example:
            >>> import torch
            >>> from trus_hf import TrusSegConfig, create_model
            >>> model = create_model(TrusSegConfig(architecture="segformer"))
            >>> out = model(torch.zeros(1, 3, 64, 64), labels=torch.zeros(1, 64, 64))
            >>> tuple(out.logits.shape), out.loss is not None
            ((1, 1, 64, 64), True)
        """
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values must be (N, {self.config.num_channels}, H, W), got {tuple(pixel_values.shape)}"
            )
        logits = self._logits(pixel_values)
        loss = self.loss_fn(logits, labels) if labels is not None else None
        return SemanticSegmenterOutput(loss=loss, logits=logits)

    def config_dict(self) -> dict[str, Any]:
        return {**self.native_config(), "_trus_hf": self.config.to_dict()}

    def save_pretrained(
        self,
        save_directory: str | Path,
        processor: Any = None,
        card: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Path:
        """Write config.json, model.safetensors (optionally cast to ``dtype``, e.g. float16), the processor's
        preprocessor_config.json and a README.md card, atomically (the folder appears complete or not at all)."""
        save_directory = Path(save_directory)
        with atomic_dir(save_directory) as tmp:
            (tmp / CONFIG_NAME).write_text(json.dumps(self.config_dict(), indent=2, sort_keys=True) + "\n")
            state = {
                k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
                for k, v in self.net.state_dict().items()
            }
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            if processor is not None:
                processor.save_pretrained(tmp)
            if card is None:
                card = render_model_card(self.config, processor)
            (tmp / "README.md").write_text(card)
            # Keep extra files (ONNX export, training logs) that a previous save left in the folder.
            if save_directory.is_dir():
                for extra in save_directory.iterdir():
                    if not (tmp / extra.name).exists() and extra.is_file():
                        (tmp / extra.name).write_bytes(extra.read_bytes())
        return save_directory

    def load_weights(self, path: str | Path, allow_pickle: bool = False) -> None:
        """Load ``model.safetensors``; pickle files only with ``allow_pickle=True`` (then ``weights_only=True``)."""
        path = Path(path)
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        elif not allow_pickle:
            raise ValueError(
                f"{path}: refusing to load pickle weights (arbitrary code execution risk); convert to "
                f"safetensors or pass allow_pickle=True if you trust the file"
            )
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        reference = self.net.state_dict()
        missing = sorted(set(reference) - set(state))
        unexpected = sorted(set(state) - set(reference))
        if missing or unexpected:
            raise ValueError(
                f"{path}: weights do not match the {self.config.description} in config.json: "
                f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                f"(e.g. {unexpected[:3]})"
            )
        bad = [k for k in reference if tuple(reference[k].shape) != tuple(state[k].shape)]
        if bad:
            raise ValueError(f"{path}: tensor shapes differ from config.json for {bad[:3]}")
        self.net.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()})
