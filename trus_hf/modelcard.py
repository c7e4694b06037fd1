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

__all__ = ["MODEL_CARD_TEMPLATE", "MODEL_ID_PLACEHOLDER", "render_model_card", "results_from_metrics"]

MODEL_CARD_TEMPLATE = Path(__file__).parent / "model_card.md"
#: Cards rendered before the repo is known use this ID; `trus_hf.hub.push_model` replaces it with the real one.
MODEL_ID_PLACEHOLDER = "path/to/model"


def results_from_metrics(
    metrics: dict[str, Any], config: TrusSegConfig, dataset_name: str, split: str
) -> list[dict[str, Any]]:
    """Card result rows (one per label) from a metrics summary: per-label figures under ``labels`` when present,
    else the top-level figures as the primary label's."""
    per_label = metrics.get("labels") or {config.primary_label: metrics}
    return [
        {
            "dataset": dataset_name,
            "split": split,
            "label": label,
            "n_images": m.get("n_images"),
            "mean_iou": float(m["mean_iou"]),
            "mean_dice": float(m["mean_dice"]),
        }
        for label, m in per_label.items()
        if "mean_iou" in m
    ]


def render_model_card(
    config: TrusSegConfig,
    processor: Any = None,
    metrics: dict[str, Any] | None = None,
    dataset_name: str = "unspecified",
    eval_split: str = "test",
    repo_id: str = MODEL_ID_PLACEHOLDER,
    training: dict[str, Any] | None = None,
    fold_summary: dict[str, float] | None = None,
    note: str | None = None,
    license: str = "apache-2.0",
    results: list[dict[str, Any]] | None = None,
    sections: str | None = None,
) -> str:
    """Fill the model card template: YAML front matter (with a model-index carrying the results, one per dataset and
    label) and the body.

    ``metrics`` is one evaluation's summary (``mean_iou``, ``mean_dice``, ``n_images``, and ``labels`` with the same
    per label); ``results`` lists result rows directly (``dataset``, ``split``, ``label``, ``n_images``,
    ``mean_iou``, ``mean_dice``), e.g. several held-out sets. ``sections`` is extra Markdown placed before the
    usage section (data credits, what a model was trained on). ``processor`` is the model's `TrusImageProcessor`
    (or anything with ``to_dict()``); without it the card describes the default processor.
    """
    if processor is None:
        from .image_processing import TrusImageProcessor

        processor = TrusImageProcessor()
    results = list(results or [])
    if metrics:
        results = results_from_metrics(metrics, config, dataset_name, eval_split) + results
    eval_results = [
        EvalResult(
            task_type="image-segmentation",
            dataset_type=r["dataset"],
            dataset_name=r["dataset"],
            dataset_split=r["split"],
            metric_type=key if config.num_labels == 1 else f"{r['label']}_{key}",
            metric_name=name if config.num_labels == 1 else f"{r['label']} {name}",
            metric_value=round(float(r[key]), 4),
        )
        for r in results
        for key, name in (("mean_iou", "IoU"), ("mean_dice", "Dice"))
    ] or None
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
        labels=config.labels,
        primary_label=config.primary_label,
        config=config,
        results=results,
        dataset_name=dataset_name,
        training=training,
        fold_summary=fold_summary,
        note=note,
        sections=sections,
        processor=processor.to_dict(),
    )
    return str(card)
