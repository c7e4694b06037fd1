"""Where a run starts: a new model from the config, or a trained one (``--init_from``): a trus-hf model folder or
Hub ID, a plain segmentation-models-pytorch FPN folder, or a transformers Segformer checkpoint.

A trained start brings its architecture, encoder, decoder and processor; an option that contradicts them is an
error naming both values. Its labels are kept unless ``--labels`` names others: then the output head is new and
every other weight is kept (a binary lesion start fine-tuned for gland + lesion, say).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ..configuration import TrusSegConfig
from ..image_processing import TrusImageProcessor
from ..models import TrusSegmentationModel, create_model, load_model
from .arguments import TrainingArguments

__all__ = ["initial_model"]

logger = logging.getLogger(__name__)

# Options of the model that a trained start fixes.
_MODEL_FIELDS = (
    "encoder_name",
    "decoder_pyramid_channels",
    "decoder_segmentation_channels",
    "segformer_size",
    "num_channels",
)
# Training options that set the processor, and the processor attribute each one fixes.
_PROCESSOR_FIELDS = {
    "image_size": lambda p: p.size["height"],
    "interpolation": lambda p: p.interpolation,
    "diffusion_iterations": lambda p: p.diffusion_iterations if p.do_diffusion else 0,
}


def _defaults(cls) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _contradictions(
    config: TrusSegConfig, args: TrainingArguments, start: TrusSegmentationModel, processor: TrusImageProcessor
) -> list[str]:
    """Options set away from their defaults that disagree with the start."""
    problems = []
    model_defaults, arg_defaults = _defaults(TrusSegConfig), _defaults(TrainingArguments)
    for name in _MODEL_FIELDS:
        mine, theirs = getattr(config, name), getattr(start.config, name)
        if mine != model_defaults[name] and mine != theirs:
            problems.append(f"--{name} {mine} (the start has {theirs})")
    for name, read in _PROCESSOR_FIELDS.items():
        mine, theirs = getattr(args, name), read(processor)
        if mine != arg_defaults[name] and mine != theirs:
            problems.append(f"--{name} {mine} (the start's processor has {theirs})")
    return problems


def initial_model(
    config: TrusSegConfig, args: TrainingArguments
) -> tuple[TrusSegmentationModel, TrusImageProcessor, TrusSegConfig]:
    """The model a run starts from, its processor and the run's effective config."""
    if not args.init_from:
        return create_model(config), args.processor(), config
    source = args.init_from + (f"@{args.revision}" if args.revision else "")
    try:
        start, processor = load_model(args.init_from, revision=args.revision)
    except ValueError as exc:
        raise ValueError(f"--init_from {source}: {exc}") from exc
    # an input size chosen after training belongs to the start's inference: the run trains at the start's trained size
    processor.set_input_size()
    if start.config.architecture != config.architecture:
        raise ValueError(
            f"--init_from {source} is a {start.config.architecture} model; this run trains "
            f"{config.architecture} (use train_{start.config.architecture}.py)"
        )
    problems = _contradictions(config, args, start, processor)
    if problems:
        raise ValueError(
            f"--init_from {source}: these options contradict the start model: {'; '.join(problems)}. "
            f"Leave them out: the architecture, encoder and processor come from the start."
        )
    labels = start.config.labels if config.labels == _defaults(TrusSegConfig)["labels"] else config.labels
    primary = config.primary_label if labels == config.labels else start.config.primary_label
    model = start.with_labels(labels, primary)
    if model is not start:
        logger.info(
            "--init_from %s: new output head for labels %s (was %s; re-initialised: %s)",
            source,
            labels,
            start.config.labels,
            ", ".join(model.reinitialised),
        )
    effective = dataclasses.replace(
        model.config,
        dice_weight=config.dice_weight,
        bce_weight=config.bce_weight,
        dice_mode=config.dice_mode,
        label_weights=config.label_weights if labels == config.labels else None,
    )
    model.config = effective
    model.loss_fn = type(model.loss_fn).from_config(effective)
    model.train()
    if args.standardize:  # the start's weights adapt to standardised frames during this run
        processor.do_standardize = True
    # the start's tuned thresholds belong to its weights: the new model is tuned (or not) on its own validation data
    processor.set_postprocessing()
    return model, processor, effective
