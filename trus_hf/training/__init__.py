"""The training engine behind ``train_fpn.py``, ``train_segformer.py`` and ``trus-hf train``.

One module per concept: `arguments` (``TrainingArguments`` and the command line, parsed together with
`TrusSegConfig` by ``HfArgumentParser``), `dataset` (the split, the preprocessing cache, augmentation), `loop`
(`train`: accelerate, validation through the pipeline, best checkpoint), `checkpoints` (atomic, resumable after a
crash or ``kill -9``), `reporting` (logs, curves, cards, the final model), `kfold` (`train_kfold`).

Preprocessing (crop, resize, diffusion) runs once per image and is cached with ``datasets.map`` beside the output
folder; augmentation and normalisation run per step.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from .arguments import TrainingArguments, build_parser, parse_args
from .dataset import cached_preprocess
from .kfold import train_kfold
from .loop import train

__all__ = ["TrainingArguments", "cached_preprocess", "main_train", "parse_args", "train", "train_kfold"]


def main_train(architecture: str, argv: Sequence[str] | None = None, prog: str | None = None) -> dict[str, Any]:
    """Parse `TrusSegConfig` + `TrainingArguments` from the command line and train; the body of both scripts. Wrong
    options, wrong values and data that cannot be used end with the usage line and the reason (exit code 2)."""
    parser = build_parser(architecture, prog)
    config, args = parse_args(architecture, argv, parser=parser)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(levelname)s %(message)s")
    try:
        summary = train_kfold(config, args) if args.folds else train(config, args)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        parser.error(str(exc))
    print(json.dumps(summary, indent=1, default=float))
    return summary
