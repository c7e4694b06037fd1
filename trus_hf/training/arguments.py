"""`TrainingArguments`: data, preprocessing and optimisation settings of a run (the model itself is a
`TrusSegConfig`); both are parsed from the command line by one `HfArgumentParser`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..configuration import TrusSegConfig
from ..data.loading import parse_label_map, parse_missing_labels
from ..image_processing import TrusImageProcessor

__all__ = [
    "MIXED_PRECISIONS",
    "TrainingArguments",
    "build_parser",
    "native_bf16",
    "parse_args",
    "resolve_mixed_precision",
]

MIXED_PRECISIONS = ("no", "bf16", "fp16", "auto")


def native_bf16() -> bool:
    """Whether this machine computes in bfloat16 natively: a CUDA GPU that supports it or, without one, a CPU with
    AVX512-BF16 or AMX (elsewhere PyTorch emulates bf16 on the CPU, slower than fp32)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # torch has no public query for the CPU's bf16 instructions; these private ones exist in torch 2.x (a torch
    # without them counts as not native)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_mixed_precision(value: str) -> str:
    """``auto`` -> ``bf16`` where it runs natively, else ``no``; the other values as given."""
    if value not in MIXED_PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {', '.join(MIXED_PRECISIONS)}, got {value!r}")
    if value == "auto":
        return "bf16" if native_bf16() else "no"
    return value


@dataclass
class TrainingArguments:
    """Data, preprocessing and optimisation settings. Defaults follow the original recipe."""

    output_dir: str = field(default="runs/model", metadata={"help": "where checkpoints, logs and the model go"})
    data: str = field(default="synthetic:64:512", metadata={"help": "dataset: folder, COCO json, Hub ID, synthetic:N"})
    data_format: str = field(default="auto", metadata={"help": "dataset format (see trus_hf.data.FORMATS)"})
    mask_suffix: str = field(default="", metadata={"help": "mask file suffix in folder datasets, e.g. _mask"})
    label_map: str | None = field(
        default=None,
        metadata={"help": "categories of each label in COCO/Roboflow/YOLO exports: gland=prostate;lesion=tumor,pca"},
    )
    missing_labels: str = field(
        default="error",
        metadata={
            "help": "a label not annotated on an image: error, ignore, empty, or per label: lesion=empty,gland=ignore"
        },
    )
    skip_invalid: bool = field(default=False, metadata={"help": "skip invalid pairs (listed) instead of failing"})
    test_fold: str | None = field(default=None, metadata={"help": "value of --fold-column held out as test set"})
    fold_column: str | None = field(default=None, metadata={"help": "dataset column with fold ids (e.g. kFold)"})
    folds: int = field(default=0, metadata={"help": "k-fold cross-validation with K folds (0 = single run)"})
    val_fraction: float = field(default=0.2, metadata={"help": "group-aware validation fraction without a split"})
    image_size: int = field(default=768, metadata={"help": "model input size (square)"})
    interpolation: str = field(default="area", metadata={"help": "image interpolation: area, bilinear, bicubic"})
    diffusion_iterations: int = field(default=10, metadata={"help": "isotropic diffusion iterations (0 = off)"})
    standardize: bool = field(
        default=False,
        metadata={
            "help": "standardise each frame's echo levels (the processor's do_standardize): blind to the gain and "
            "dynamic range of the scanner; with --init_from it switches the start's processor to it"
        },
    )
    init_from: str | None = field(
        default=None,
        metadata={"help": "start from a trained model: trus-hf folder or Hub ID, smp FPN folder, Segformer checkpoint"},
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision of --init_from (branch, tag, commit)"})
    freeze_encoder_epochs: int = field(default=0, metadata={"help": "keep the encoder frozen for the first N epochs"})
    encoder_lr_factor: float = field(default=1.0, metadata={"help": "encoder learning rate = this x learning_rate"})
    tune_input_sizes: list[int] = field(
        default_factory=list,
        metadata={
            "help": "after training, choose the model input side among these (and the trained one) on validation "
            "frames, out of fold for --folds, and save it with the model(s), e.g. 224 256 288 320"
        },
    )
    tune_multiscale: bool = field(
        default=False,
        metadata={
            "help": "with --tune_input_sizes, also try averaging the predictions of all those sides (multi-scale "
            "inference: one forward pass per side)"
        },
    )
    epochs: int = field(default=50, metadata={"help": "maximum epochs"})
    batch_size: int = field(default=4, metadata={"help": "per-device batch size"})
    learning_rate: float = field(default=1e-4, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay"})
    lr_patience: int = field(default=5, metadata={"help": "ReduceLROnPlateau patience (epochs)"})
    lr_factor: float = field(default=0.5, metadata={"help": "ReduceLROnPlateau factor"})
    early_stopping: int = field(default=0, metadata={"help": "stop after N epochs without improvement (0 = off)"})
    augment: bool = field(default=True, metadata={"help": "use the training augmentations"})
    augment_strength: float = field(
        default=1.0,
        metadata={"help": "scale of the augmentation ranges; above 1 adds grain and speckle-noise randomisation"},
    )
    seed: int = field(default=42, metadata={"help": "random seed"})
    num_workers: int = field(default=0, metadata={"help": "data loader workers"})
    mixed_precision: str = field(
        default="no",
        metadata={
            "help": "no, bf16 (GPUs, and CPUs with AVX512-BF16 or AMX: faster steps, see benchmarks/train_speed.py), "
            "fp16 (GPU), or auto (bf16 where the hardware runs it natively, else no)"
        },
    )
    resume: bool = field(default=False, metadata={"help": "continue from <output_dir>/checkpoints/last"})
    checkpoint_every: int = field(default=1, metadata={"help": "write the resumable checkpoint every N epochs"})
    max_train_minutes: float = field(default=0.0, metadata={"help": "stop after this wall time (0 = no limit)"})
    max_steps_per_epoch: int = field(default=0, metadata={"help": "cap optimizer steps per epoch (0 = all)"})
    preview_augmentations: int = field(default=0, metadata={"help": "write a grid of N augmented samples and exit"})
    push_to_hub: str | None = field(default=None, metadata={"help": "Hub repo ID to push the best model to"})
    dataset_name: str | None = field(default=None, metadata={"help": "dataset name for the model card"})
    save_dtype: str = field(default="float32", metadata={"help": "dtype of saved weights: float32 or float16"})
    tensorboard: bool = field(default=True, metadata={"help": "write TensorBoard logs"})
    log_level: str = field(default="info", metadata={"help": "logging level: debug, info, warning, error"})
    log_every_seconds: float = field(
        default=30.0, metadata={"help": "away from a terminal, one progress line every this many seconds"}
    )

    def __post_init__(self) -> None:
        resolve_mixed_precision(self.mixed_precision)  # an unknown value fails here, when the arguments are parsed

    def label_map_dict(self) -> dict[str, list[str]] | None:
        """``--label_map gland=prostate;lesion=tumor,pca`` as {label: [categories]}."""
        return parse_label_map(self.label_map)

    def missing_dict(self) -> str | dict[str, str]:
        """``--missing_labels ignore`` or ``lesion=empty,gland=ignore``."""
        return parse_missing_labels(self.missing_labels)

    def processor(self) -> TrusImageProcessor:
        return TrusImageProcessor(
            size={"height": self.image_size, "width": self.image_size},
            interpolation=self.interpolation,
            do_diffusion=self.diffusion_iterations > 0,
            diffusion_iterations=max(self.diffusion_iterations, 0),
            do_standardize=self.standardize,
        )


def build_parser(architecture: str, prog: str | None = None):
    """The ``HfArgumentParser`` of a ``train_<architecture>.py`` command line (model config + training arguments)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(
        (TrusSegConfig, TrainingArguments),
        prog=prog,
        description=f"Train a trus-hf {architecture} model (runs under `accelerate launch`).",
    )
    parser.set_defaults(architecture=architecture)
    return parser


def parse_args(
    architecture: str, argv: Sequence[str] | None = None, prog: str | None = None, parser=None
) -> tuple[TrusSegConfig, TrainingArguments]:
    """The model config and the training arguments of a ``train_<architecture>.py`` command line. A wrong option or
    value exits with the usage line and the reason (exit code 2), as argparse does, never a traceback."""
    parser = parser or build_parser(architecture, prog)
    argv = None if argv is None else list(argv)
    try:
        config, args, unknown = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except ValueError as exc:  # a value the config or the arguments refuse (an unknown size, a bad weight...)
        parser.error(str(exc))
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if config.architecture != architecture:
        parser.error(
            f"this command trains {architecture!r}; for {config.architecture!r} use "
            f"train_{config.architecture}.py (or `trus-hf train {config.architecture}`)"
        )
    if args.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        parser.error(f"--log_level must be debug, info, warning or error, got {args.log_level!r}")
    return config, args
