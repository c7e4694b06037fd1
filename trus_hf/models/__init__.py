"""Model registry and the single loader: `create_model(config)` and `load_model(path_or_hub_id)`.

Example:
    >>> from trus_hf import TrusSegConfig, create_model
    >>> model = create_model(TrusSegConfig(architecture="fpn", encoder_name="resnet18"))
    >>> type(model).__name__
    'TrusFPN'
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from ..configuration import ARCHITECTURES, SEGFORMER_SIZES, TrusSegConfig
from ..image_processing import TrusImageProcessor
from .base import CONFIG_NAME, WEIGHTS_NAME, TrusSegmentationModel
from .fpn import TrusFPN
from .segformer import TrusSegformer

__all__ = [
    "MODEL_CLASSES",
    "TrusFPN",
    "TrusSegformer",
    "TrusSegmentationModel",
    "create_model",
    "load_model",
    "resolve_model_dir",
]

logger = logging.getLogger(__name__)

MODEL_CLASSES: dict[str, type[TrusSegmentationModel]] = {"fpn": TrusFPN, "segformer": TrusSegformer}
_PICKLE_NAMES = ("pytorch_model.bin", "model.pt", "model.pth", "model.ckpt")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def create_model(config: TrusSegConfig) -> TrusSegmentationModel:
    """A new, randomly initialised model (or with ImageNet/MiT weights when the config asks and you are online)."""
    return MODEL_CLASSES[config.architecture](config)


def resolve_model_dir(path_or_hub_id: str | Path, revision: str | None = None, token: str | None = None) -> Path:
    """A local folder as is, or a Hub repo downloaded (``revision`` pins a branch, tag or commit)."""
    path = Path(path_or_hub_id)
    if path.is_dir():
        return path
    name = str(path_or_hub_id)
    if path.exists():
        raise ValueError(f"{name}: expected a model folder, got a file")
    if not _REPO_ID.match(name) or name.count("/") > 1:
        raise ValueError(f"{name!r} is neither an existing folder nor a valid Hub model ID (like 'org/name')")
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                name, revision=revision, token=token, allow_patterns=["*.json", "*.safetensors", "*.onnx", "*.md"]
            )
        )
    except Exception as exc:
        raise ValueError(
            f"cannot load model {name!r}"
            f"{f' at revision {revision!r}' if revision else ''} from the Hub: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc


def _trus_config(native: dict[str, Any], source: Path) -> TrusSegConfig:
    block = native.get("_trus_hf")
    if block is not None:
        if not isinstance(block, dict):
            raise ValueError(f"{source}: '_trus_hf' in config.json must be an object")
        arch = block.get("architecture")
        if arch not in ARCHITECTURES:
            raise ValueError(
                f"{source}: unknown architecture {arch!r} in config.json; valid: {', '.join(ARCHITECTURES)}"
            )
        try:
            return TrusSegConfig.from_dict(block)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: invalid '_trus_hf' block in config.json: {exc}") from exc
    # A plain smp or transformers checkpoint without our block: infer what we can.
    if native.get("_model_class") == "FPN":
        classes = int(native.get("classes", 1))
        return TrusSegConfig(
            architecture="fpn",
            encoder_name=native.get("encoder_name", "resnet34"),
            decoder_pyramid_channels=int(native.get("decoder_pyramid_channels", 256)),
            decoder_segmentation_channels=int(native.get("decoder_segmentation_channels", 128)),
            num_channels=native.get("in_channels", 3),
            labels=["lesion"] if classes == 1 else [f"label_{i}" for i in range(classes)],
        )
    if native.get("model_type") == "segformer":
        id2label = native.get("id2label") or {"0": "lesion"}
        labels = [str(id2label[k]) for k in sorted(id2label, key=int)]
        shape = {"hidden_sizes": native.get("hidden_sizes"), "depths": native.get("depths")}
        size = next((name for name, s in SEGFORMER_SIZES.items() if {k: s[k] for k in shape} == shape), "b0")
        return TrusSegConfig(
            architecture="segformer", segformer_size=size, num_channels=native.get("num_channels", 3), labels=labels
        )
    found = native.get("_model_class") or native.get("model_type") or native.get("architecture")
    raise ValueError(
        f"{source}: cannot tell the architecture from config.json (found {found!r}); valid: {', '.join(ARCHITECTURES)}"
    )


def load_model(
    path_or_hub_id: str | Path,
    revision: str | None = None,
    backend: str = "torch",
    allow_pickle: bool = False,
    token: str | None = None,
    onnx_file: str | None = None,
    providers: list[str] | None = None,
) -> tuple[Any, TrusImageProcessor]:
    """Load a model and its processor from a folder or a Hub ID.

    ``backend="torch"`` returns a `TrusSegmentationModel` in eval mode from ``model.safetensors``;
    ``backend="onnx"`` an `OnnxSegmentationModel` over ``onnx_file`` (default: the file the export recommends,
    INT8 where it agreed with fp32 and ran faster) with the same forward contract. A folder that
    holds only an ONNX export loads with either. Pickle weights are refused unless ``allow_pickle=True``.
    Remote code is never executed.
    """
    if backend not in ("torch", "onnx"):
        raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    folder = resolve_model_dir(path_or_hub_id, revision=revision, token=token)
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.is_file():
        raise ValueError(
            f"{folder}: no config.json; a trus-hf model folder holds config.json, model.safetensors, "
            f"preprocessor_config.json and README.md"
        )
    try:
        native = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{cfg_path}: invalid JSON ({exc})") from exc
    config = _trus_config(native, folder)
    if (folder / "preprocessor_config.json").is_file():
        processor = TrusImageProcessor.from_pretrained(str(folder))
    else:
        logger.warning("%s has no preprocessor_config.json; using the default TrusImageProcessor", folder)
        processor = TrusImageProcessor()

    weights = folder / WEIGHTS_NAME
    if onnx_file is None:
        from .onnx_runtime import preferred_onnx_file

        onnx_file = preferred_onnx_file(folder)
    if backend == "onnx" or (not weights.is_file() and (folder / onnx_file).is_file()):
        from .onnx_runtime import OnnxSegmentationModel, export_runtime_options

        if not (folder / onnx_file).is_file():
            raise ValueError(f"{folder}: no {onnx_file}; export one with `trus-hf export-onnx --model {folder}`")
        options = export_runtime_options(folder, onnx_file)
        return OnnxSegmentationModel(folder / onnx_file, config, providers=providers, **options), processor

    model = MODEL_CLASSES[config.architecture](config, native_config=native)
    if weights.is_file():
        model.load_weights(weights)
    else:
        pickles = [folder / n for n in _PICKLE_NAMES if (folder / n).is_file()]
        if not pickles:
            raise ValueError(f"{folder}: no {WEIGHTS_NAME} (nor {onnx_file})")
        model.load_weights(pickles[0], allow_pickle=allow_pickle)
    model.eval()
    return model, processor
