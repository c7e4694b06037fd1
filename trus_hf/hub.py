"""Model cards and the Hugging Face Hub: render ``model_card.md``, push a model folder, push/load datasets.

Everything goes through `huggingface_hub` (``HF_ENDPOINT`` and ``HF_TOKEN`` are honoured), so the same code talks to
huggingface.co or to a local Hub-compatible server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from .configuration import TrusSegConfig

__all__ = ["MODEL_CARD_TEMPLATE", "push_folder", "render_model_card"]

MODEL_CARD_TEMPLATE = Path(__file__).parent / "model_card.md"


def render_model_card(config: TrusSegConfig, processor: Any = None, metrics: dict[str, float] | None = None,
                      dataset_name: str = "unspecified", eval_split: str = "test", repo_id: str = "path/to/model",
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
    data = ModelCardData(
        license=license, library_name="trus-hf", pipeline_tag="image-segmentation",
        tags=["medical-imaging", "ultrasound", "trus", "prostate", "segmentation", config.architecture],
        datasets=[dataset_name] if dataset_name != "unspecified" else None,
        model_name=repo_id.split("/")[-1], eval_results=eval_results,
    )
    card = ModelCard.from_template(
        data, template_path=str(MODEL_CARD_TEMPLATE), model_name=repo_id.split("/")[-1], repo_id=repo_id,
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
