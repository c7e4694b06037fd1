"""`TrusSegConfig`: the data-only description of a trus-hf model (no torch imports).

It is stored as the ``_trus_hf`` block inside the native ``config.json`` of each architecture, so a saved folder is at
the same time a plain segmentation-models-pytorch (FPN) or transformers (Segformer) checkpoint. Keys starting with an
underscore are ignored by smp, and transformers keeps unknown keys as attributes.

Example:
    >>> from trus_hf import TrusSegConfig
    >>> TrusSegConfig(architecture="segformer", segformer_size="b2").architecture
    'segformer'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["ARCHITECTURES", "DICE_MODES", "SEGFORMER_SIZES", "TrusSegConfig", "check_dice_mode"]

ARCHITECTURES = ("fpn", "segformer")
#: Dice pooling modes (`trus_hf.losses.DiceBCELoss`) and how the model cards name them after "Dice"
DICE_MODES = {
    "batch": "",
    "image": " per image",
    "balanced": " (pooled over the batch, each image weighted by one over its lesion area)",
}


def check_dice_mode(mode: str) -> str:
    """``mode`` if it is one of `DICE_MODES`, else a `ValueError` naming the valid ones."""
    if mode not in DICE_MODES:
        raise ValueError(f"unknown dice_mode {mode!r}; valid: {', '.join(DICE_MODES)}")
    return mode


#: Mix Transformer (MiT) encoder shapes of the published Segformer b0..b5 checkpoints.
SEGFORMER_SIZES: dict[str, dict[str, Any]] = {
    "b0": {"hidden_sizes": [32, 64, 160, 256], "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b1": {"hidden_sizes": [64, 128, 320, 512], "depths": [2, 2, 2, 2], "decoder_hidden_size": 256},
    "b2": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 4, 6, 3], "decoder_hidden_size": 768},
    "b3": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 4, 18, 3], "decoder_hidden_size": 768},
    "b4": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 8, 27, 3], "decoder_hidden_size": 768},
    "b5": {"hidden_sizes": [64, 128, 320, 512], "depths": [3, 6, 40, 3], "decoder_hidden_size": 768},
}


@dataclass
class TrusSegConfig:
    """What a trus-hf model is. JSON-safe values only.

    Args:
        architecture: ``"fpn"`` (segmentation-models-pytorch) or ``"segformer"`` (transformers).
        encoder_name: FPN encoder (any smp encoder; the recipe uses ``resnet152``).
        encoder_weights: FPN encoder initialisation: ``None`` offline, ``"imagenet"`` downloads when online.
        decoder_pyramid_channels, decoder_segmentation_channels: FPN decoder widths.
        segformer_size: ``b0`` .. ``b5``.
        pretrained_backbone: Segformer only: a Hub ID of an MiT checkpoint (e.g. ``nvidia/mit-b0``) to start from.
        num_channels: input channels (the processor replicates grayscale to this many).
        dice_weight, bce_weight: loss = dice_weight * Dice + bce_weight * BCE.
        dice_mode: how the Dice term pools the batch (`DICE_MODES`): ``batch`` (smp's Dice over every pixel of the
            batch, where a few large lesions outweigh many small ones), ``image`` (per image, averaged over the
            images that hold the label) or ``balanced`` (over the batch, each image's pixels weighted by one over
            its lesion area, so each lesion weighs about the same and a false mark on a lesion-free image still
            counts; the bundled FPN's).
        labels: the label names, one sigmoid output channel each (labels may overlap, e.g. ``["gland", "lesion"]``);
            one label (``["lesion"]``) is a binary model.
        label_weights: per-label weights of the loss (default: all 1).
        primary_label: the label a single mask stands for (`SegmentationResult.mask`, a single ground truth);
            default ``lesion`` when present, else the first label.
    """

    architecture: str = field(default="fpn", metadata={"help": "fpn (segmentation-models-pytorch) or segformer"})
    encoder_name: str = field(default="resnet152", metadata={"help": "FPN encoder (smp name)"})
    encoder_weights: str | None = field(
        default=None, metadata={"help": "FPN encoder init: 'imagenet' (online) or none"}
    )
    decoder_pyramid_channels: int = field(default=256, metadata={"help": "FPN decoder pyramid channels"})
    decoder_segmentation_channels: int = field(default=128, metadata={"help": "FPN segmentation channels (x32)"})
    segformer_size: str = field(default="b0", metadata={"help": "Segformer size: b0..b5"})
    pretrained_backbone: str | None = field(default=None, metadata={"help": "Segformer: Hub ID of an MiT encoder"})
    num_channels: int = field(default=3, metadata={"help": "input channels (gray is replicated to this many)"})
    dice_weight: float = field(default=1.0, metadata={"help": "weight of the Dice loss"})
    bce_weight: float = field(default=1.0, metadata={"help": "weight of the BCE loss"})
    dice_mode: str = field(
        default="batch",
        metadata={"help": "Dice pooling: batch (smp), image (per image) or balanced (batch, lesions weighed equally)"},
    )
    labels: list[str] = field(
        default_factory=lambda: ["lesion"],
        metadata={"help": "label names, one sigmoid channel each, e.g. gland lesion"},
    )
    label_weights: list[float] | None = field(default=None, metadata={"help": "per-label loss weights"})
    primary_label: str | None = field(default=None, metadata={"help": "the label a single mask stands for"})

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; valid: {', '.join(ARCHITECTURES)}")
        if self.segformer_size not in SEGFORMER_SIZES:
            raise ValueError(f"unknown segformer_size {self.segformer_size!r}; valid: {', '.join(SEGFORMER_SIZES)}")
        if self.dice_weight < 0 or self.bce_weight < 0 or self.dice_weight + self.bce_weight == 0:
            raise ValueError(
                f"loss weights must be >= 0 and not both 0, got dice={self.dice_weight}, bce={self.bce_weight}"
            )
        check_dice_mode(self.dice_mode)

        self.labels = [str(label) for label in self.labels]
        if not self.labels or len(set(self.labels)) != len(self.labels) or not all(self.labels):
            raise ValueError(f"labels must be distinct non-empty names, got {self.labels}")
        if self.label_weights is not None:
            self.label_weights = [float(w) for w in self.label_weights]
            if len(self.label_weights) != len(self.labels) or min(self.label_weights) < 0:
                raise ValueError(
                    f"label_weights needs one weight >= 0 per label {self.labels}, got {self.label_weights}"
                )
        if self.primary_label is None:
            self.primary_label = "lesion" if "lesion" in self.labels else self.labels[0]
        if self.primary_label not in self.labels:
            raise ValueError(f"primary_label {self.primary_label!r} is not one of the labels {self.labels}")

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def label(self) -> str:
        """The primary label (what a binary model segments)."""
        return self.primary_label

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrusSegConfig:
        """From `to_dict` output; configs saved before labels were a list (``"label": "gland"``) or with the
        ``dice_per_image`` flag still load."""
        data = dict(data)
        if "label" in data:
            old = data.pop("label")
            data.setdefault("labels", [old])
            data.setdefault("primary_label", old)
        if "dice_per_image" in data:  # configs of 2026-12-02 (a bool before the third mode)
            data.setdefault("dice_mode", "image" if data.pop("dice_per_image") else "batch")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrusSegConfig keys {unknown}; valid: {sorted(known)}")
        return cls(**data)

    @property
    def dice_description(self) -> str:
        """What follows "Dice" in the model cards' loss line (empty for smp's batch Dice)."""
        return DICE_MODES[self.dice_mode]

    @property
    def description(self) -> str:
        if self.architecture == "fpn":
            return f"FPN ({self.encoder_name} encoder)"
        return f"Segformer-{self.segformer_size}"
