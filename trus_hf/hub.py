"""Model cards and the Hugging Face Hub: render ``model_card.md``, push a model folder, push/load datasets.

Everything goes through `huggingface_hub` (``HF_ENDPOINT`` and ``HF_TOKEN`` are honoured), so the same code talks to
huggingface.co or to a local Hub-compatible server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from .configuration import TrusSegConfig

__all__ = ["MODEL_CARD_TEMPLATE", "MODEL_ID_PLACEHOLDER", "push_folder", "push_model", "render_model_card"]

MODEL_CARD_TEMPLATE = Path(__file__).parent / "model_card.md"
#: Cards rendered before the repo is known use this ID; `push_model` replaces it with the real one.
MODEL_ID_PLACEHOLDER = "path/to/model"


def render_model_card(config: TrusSegConfig, processor: Any = None, metrics: dict[str, float] | None = None,
                      dataset_name: str = "unspecified", eval_split: str = "test", repo_id: str = MODEL_ID_PLACEHOLDER,
                      training: dict[str, Any] | None = None, fold_summary: dict[str, float] | None = None,
                      note: str | None = None, license: str = "apache-2.0") -> str:
    """Fill the model card template: YAML front matter (with a model-index carrying ``metrics``) and the body."""
    from .image_processing import TrusImageProcessor

    processor = processor or TrusImageProcessor()
    eval_results = None
    if metrics:
        eval_results = [
            EvalResult(task_type="image-segmentation", dataset_type=dataset_name, dataset_name=dataset_name,
                       dataset_split=eval_split, metric_type=key, metric_name=name, metric_value=round(float(metrics[key]), 4))
            for key, name in (("mean_iou", "IoU"), ("mean_dice", "Dice")) if key in metrics
        ]
    model_name = repo_id.split("/")[-1] if repo_id != MODEL_ID_PLACEHOLDER else f"trus-hf-{config.architecture}"
    data = ModelCardData(
        license=license, library_name="trus-hf", pipeline_tag="image-segmentation",
        tags=["medical-imaging", "ultrasound", "trus", "prostate", "segmentation", config.architecture],
        datasets=[dataset_name] if dataset_name != "unspecified" else None,
        model_name=model_name, eval_results=eval_results,
    )
    card = ModelCard.from_template(
        data, template_path=str(MODEL_CARD_TEMPLATE), model_name=model_name, repo_id=repo_id,
        description=config.description, architecture=config.architecture, label=config.label, config=config,
        metrics=metrics, dataset_name=dataset_name, eval_split=eval_split, training=training,
        fold_summary=fold_summary, note=note, processor=processor.to_dict(),
    )
    return str(card)


def push_folder(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "Upload trus-hf model", revision: str | None = None) -> str:
    """Create ``repo_id`` if needed and upload every file of ``folder``; returns the commit URL or OID."""
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=commit_message,
                             revision=revision, ignore_patterns=[".*", "*.tmp", "checkpoints/*"])
    return str(getattr(info, "oid", info))


def push_model(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None,
               revision: str | None = None) -> str:
    """Validate a saved model folder (it must load), put the repo ID into its card, and upload it (model,
    processor, card, and ``model.onnx`` / ``model_int8.onnx`` when present)."""
    import shutil
    import tempfile

    from .models import load_model

    folder = Path(folder)
    load_model(folder, backend="onnx" if not (folder / "model.safetensors").is_file() else "torch")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model"
        shutil.copytree(folder, staged, ignore=shutil.ignore_patterns(".*", "*.tmp", "checkpoints"))
        card = staged / "README.md"
        if card.is_file():
            card.write_text(card.read_text().replace(MODEL_ID_PLACEHOLDER, repo_id))
        return push_folder(staged, repo_id, private=private, token=token, revision=revision)
