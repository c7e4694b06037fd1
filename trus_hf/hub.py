"""The Hugging Face Hub: push a model folder (validated, its card given the repo ID), a k-fold run's folder (its fold
models, loaded back by Hub ID as their ensemble) and any folder.

Everything goes through `huggingface_hub` (``HF_ENDPOINT`` and ``HF_TOKEN`` are honoured), so the same code talks to
huggingface.co or to a local Hub-compatible server. Loading by Hub ID is `trus_hf.load_model`; cards are rendered by
`trus_hf.modelcard`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, ModelCardData

from .configuration import TrusSegConfig
from .modelcard import MODEL_ID_PLACEHOLDER
from .models import load_model
from .pipeline import KFOLD_SUMMARY, kfold_members

__all__ = ["push_folder", "push_model"]


def push_folder(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload trus-hf model",
    revision: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload every file of ``folder``; returns the commit URL or OID."""
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        commit_message=commit_message,
        revision=revision,
        ignore_patterns=[".*", "*.tmp", "checkpoints/*"],
    )
    return str(getattr(info, "oid", info))


def _stage_model(folder: Path, staged: Path, repo_id: str) -> TrusSegConfig:
    """Copy a model folder that loads (model, processor, card, ONNX files) to ``staged``, its card given the repo
    ID; returns the model's configuration."""
    model, _ = load_model(folder, backend="onnx" if not (folder / "model.safetensors").is_file() else "torch")
    shutil.copytree(folder, staged, ignore=shutil.ignore_patterns(".*", "*.tmp", "checkpoints"))
    card = staged / "README.md"
    if card.is_file():
        card.write_text(card.read_text().replace(MODEL_ID_PLACEHOLDER, repo_id))
    return model.config


def _kfold_card(run: Path, config: TrusSegConfig, repo_id: str) -> str:
    """The card at the top of a pushed k-fold run (its fold models' ``config``): what the repo holds, how it loads,
    the cross-validation."""
    summary = json.loads((run / KFOLD_SUMMARY).read_text())
    data = ModelCardData(
        license="apache-2.0",
        library_name="trus-hf",
        pipeline_tag="image-segmentation",
        tags=["medical-imaging", "ultrasound", "trus", "segmentation", config.architecture, "ensemble"],
    )
    rows = "\n".join(
        f"| {f['fold']} | fold_{f['fold']}/model | {f['val_images']} | {f['val_iou']:.4f} | {f['val_dice']:.4f} |"
        for f in summary["folds"]
    )
    return (
        f"---\n{data.to_yaml()}\n---\n\n# {repo_id.split('/')[-1]}\n\n"
        f"A {summary['k']}-fold cross-validation run of trus-hf: {summary['k']} {config.description} models "
        f"(labels: {', '.join(config.labels)}), each trained on the other folds and validated on its own, "
        "that predict together: their logits are averaged.\n\n"
        "> **Research software, not a medical device.** It must not be used for diagnosis or treatment decisions.\n\n"
        "## How to use\n\n```python\nfrom trus_hf import SegmentationPipeline\n\n"
        f'pipe = SegmentationPipeline.from_pretrained("{repo_id}")  # the {summary["k"]} fold models as one ensemble\n'
        'result = pipe("frame.png")\n```\n\n'
        "Each fold model is a complete trus-hf model with its own card, loadable alone "
        f'(`SegmentationPipeline.from_pretrained("{repo_id}")` downloads them all).\n\n'
        "## Cross-validation\n\n| fold | folder | validation images | IoU | Dice |\n|---|---|---|---|---|\n"
        f"{rows}\n\nMean IoU {summary['iou_mean']:.4f} ± {summary['iou_std']:.4f}, Dice {summary['dice_mean']:.4f} "
        f"± {summary['dice_std']:.4f} (each fold model on its own validation fold).\n"
    )


def push_model(
    folder: str | Path, repo_id: str, private: bool = False, token: str | None = None, revision: str | None = None
) -> str:
    """Validate a saved model folder (it must load), put the repo ID into its card, and upload it (model,
    processor, card, and ``model.onnx`` / ``model_int8.onnx`` when present). A k-fold run's folder uploads as
    ``kfold_summary.json`` and its fold models (``fold_<i>/model``, each validated and with its card), under a card
    of the whole run: `SegmentationPipeline.from_pretrained(repo_id)` loads it as their ensemble."""
    folder = Path(folder)
    members = kfold_members(folder)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model"
        if members is None:
            _stage_model(folder, staged, repo_id)
        else:
            configs = [_stage_model(member, staged / member.relative_to(folder), repo_id) for member in members]
            for name in (KFOLD_SUMMARY, "kfold_metrics.csv"):
                if (folder / name).is_file():
                    shutil.copy(folder / name, staged / name)
            (staged / "README.md").write_text(_kfold_card(folder, configs[0], repo_id))
        return push_folder(staged, repo_id, private=private, token=token, revision=revision)
