"""Shared fixtures: tiny real models (small encoders, small images) so the suite runs fast on 2 CPU cores."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download; the Hub tests point HF_ENDPOINT at a local server
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest
import torch

from trus_hf import TrusImageProcessor, TrusSegConfig, create_model

torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parent.parent
BUSBRA = ROOT.parent / "shared" / "data" / "busbra"

TINY_FPN = dict(architecture="fpn", encoder_name="resnet18", decoder_pyramid_channels=64, decoder_segmentation_channels=32)
TINY_SEGFORMER = dict(architecture="segformer", segformer_size="b0")


def tiny_processor(size: int = 64, **kw) -> TrusImageProcessor:
    return TrusImageProcessor(size={"height": size, "width": size}, **kw)


def tiny_model(arch: str, seed: int = 0):
    torch.manual_seed(seed)
    return create_model(TrusSegConfig(**(TINY_FPN if arch == "fpn" else TINY_SEGFORMER))).eval()


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory) -> dict[str, Path]:
    """One saved tiny model folder per architecture (random weights, real files)."""
    out = {}
    for arch in ("fpn", "segformer"):
        path = tmp_path_factory.mktemp(f"model_{arch}")
        tiny_model(arch).save_pretrained(path, processor=tiny_processor())
        out[arch] = path
    return out
