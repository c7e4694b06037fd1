"""Model cards: `render_model_card` fills the template ``model_card.md`` (Jinja, beside this file) from a model's
configuration, its processor settings and the metrics measured for it.

It depends on the configuration alone, so models write their card on `save_pretrained` without knowing the Hub.

Example:
    >>> from trus_hf import TrusSegConfig
    >>> from trus_hf.modelcard import render_model_card
    >>> "model-index" in render_model_card(TrusSegConfig(), metrics={"mean_iou": 0.5, "mean_dice": 0.6, "n_images": 4})
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration import TrusSegConfig

__all__ = ["MODEL_CARD_TEMPLATE", "MODEL_ID_PLACEHOLDER", "render_model_card"]

MODEL_CARD_TEMPLATE = Path(__file__).parent / "model_card.md"
#: Cards rendered before the repo is known use this ID; `trus_hf.hub.push_model` replaces it with the real one.
MODEL_ID_PLACEHOLDER = "path/to/model"


def render_model_card(
    config: TrusSegConfig,
    processor: Any = None,
    metrics: dict[str, float] | None = None,
    dataset_name: str = "unspecified",
    eval_split: str = "test",
    repo_id: str = MODEL_ID_PLACEHOLDER,
    training: dict[str, Any] | None = None,
    fold_summary: dict[str, float] | None = None,
    note: str | None = None,
    license: str = "apache-2.0",
) -> str:
    """Fill the model card template: YAML front matter (with a model-index carrying ``metrics``) and the body.

    ``processor`` is the model's `TrusImageProcessor` (or anything with ``to_dict()``); without it the card describes
    the default processor.
    """
    if processor is None:
        from .image_processing import TrusImageProcessor

        processor = TrusImageProcessor()
    eval_results = None
    if metrics:
        eval_results = [
            EvalResult(
                task_type="image-segmentation",
                dataset_type=dataset_name,
                dataset_name=dataset_name,
                dataset_split=eval_split,
                metric_type=key,
                metric_name=name,
                metric_value=round(float(metrics[key]), 4),
            )
            for key, name in (("mean_iou", "IoU"), ("mean_dice", "Dice"))
            if key in metrics
        ]
    model_name = repo_id.split("/")[-1] if repo_id != MODEL_ID_PLACEHOLDER else f"trus-hf-{config.architecture}"
    data = ModelCardData(
        license=license,
        library_name="trus-hf",
        pipeline_tag="image-segmentation",
        tags=["medical-imaging", "ultrasound", "trus", "prostate", "segmentation", config.architecture],
        datasets=[dataset_name] if dataset_name != "unspecified" else None,
        model_name=model_name,
        eval_results=eval_results,
    )
    card = ModelCard.from_template(
        data,
        template_path=str(MODEL_CARD_TEMPLATE),
        model_name=model_name,
        repo_id=repo_id,
        description=config.description,
        architecture=config.architecture,
        label=config.label,
        config=config,
        metrics=metrics,
        dataset_name=dataset_name,
        eval_split=eval_split,
        training=training,
        fold_summary=fold_summary,
        note=note,
        processor=processor.to_dict(),
    )
    return str(card)
