"""The bundled demo models: `trus-hf demo-models` trains them, deterministically, on synthetic phantoms.

A light FPN (mobilenet_v2 encoder; ``train_fpn.py`` trains the full resnet152) and a Segformer-b0, both at 256x256,
stored as fp16 safetensors in ``trus_hf/demo_models/{fpn,segformer}``. Each card reports IoU and Dice on held-out
phantoms and says that these models have never seen a real TRUS frame.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .configuration import TrusSegConfig
from .data import synthetic_dataset

__all__ = ["DEMO_MODELS_DIR", "demo_model_paths", "train_demo_models"]

DEMO_MODELS_DIR = Path(__file__).parent / "demo_models"
DEMO_CONFIGS = {
    "fpn": TrusSegConfig(
        architecture="fpn", encoder_name="mobilenet_v2", decoder_pyramid_channels=128, decoder_segmentation_channels=64
    ),
    "segformer": TrusSegConfig(architecture="segformer", segformer_size="b0"),
}
NOTE = (
    "demo model trained on synthetic phantoms only{}; it has never seen a real TRUS frame. "
    "Use train_fpn.py / train_segformer.py on your data for real use."
)


def demo_model_paths(root: str | Path = DEMO_MODELS_DIR) -> dict[str, Path]:
    """The demo model folders that exist under ``root``."""
    return {name: Path(root) / name for name in DEMO_CONFIGS if (Path(root) / name / "config.json").is_file()}


def train_demo_models(
    out: str | Path = DEMO_MODELS_DIR,
    epochs: int = 20,
    seed: int = 0,
    n_train: int = 160,
    image_size: int = 256,
    minutes: float | None = None,
) -> list[Path]:
    """Train both demo models (fixed epochs and seeds: the same command gives the same models on the same machine).

    ``minutes`` optionally caps each run's wall time (then the result depends on the machine's speed)."""
    from .training import TrainingArguments, train

    torch.use_deterministic_algorithms(True, warn_only=True)
    out = Path(out)
    train_ds = synthetic_dataset(n_train, 384, seed)
    val_ds = synthetic_dataset(24, 384, seed + 10_000)
    test_ds = synthetic_dataset(40, 384, seed + 20_000)
    paths = []
    for name, config in DEMO_CONFIGS.items():
        run_dir = out.parent / ".demo_runs" / name
        args = TrainingArguments(
            output_dir=str(run_dir),
            image_size=image_size,
            epochs=epochs,
            batch_size=8,
            learning_rate=2e-3 if name == "fpn" else 1e-3,
            lr_patience=3,
            seed=seed,
            diffusion_iterations=5,
            save_dtype="float16",
            tensorboard=False,
            dataset_name="synthetic TRUS phantoms (trus-hf)",
            max_train_minutes=minutes or 0.0,
        )
        summary = train(config, args, train_ds, val_ds, test_ds)
        model_dir = Path(summary["model_dir"])
        target = out / name
        from .models import load_model

        model, processor = load_model(model_dir)
        card = (model_dir / "README.md").read_text()
        note = NOTE.format(
            " (lighter mobilenet_v2 encoder; train_fpn.py trains the full resnet152)" if name == "fpn" else ""
        )
        card = card.replace("## Model\n", f"## Model\n\n> {note[0].upper() + note[1:]}\n", 1)
        model.save_pretrained(target, processor=processor, card=card, dtype=torch.float16)
        paths.append(target)
    return paths
