"""`OnnxSegmentationModel`: an ONNX Runtime session with the same forward contract as the PyTorch models."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers.modeling_outputs import SemanticSegmenterOutput

from ..configuration import TrusSegConfig

__all__ = ["EXPORT_INFO", "OnnxSegmentationModel", "export_runtime_options", "preferred_onnx_file"]

#: What `trus_hf.export.export_onnx` measured, and the file it recommends (``preferred``).
EXPORT_INFO = "parity.json"


class OnnxSegmentationModel:
    """Runs ``model.onnx`` (input ``pixel_values``, output ``logits``) with onnxruntime on the CPU by default."""

    def __init__(
        self,
        path: str | Path,
        config: TrusSegConfig,
        providers: list[str] | None = None,
        intra_op_num_threads: int | None = None,
        session_config: dict[str, str] | None = None,
        disabled_optimizers: Sequence[str] | None = None,
    ):
        """``intra_op_num_threads`` defaults to ``$OMP_NUM_THREADS`` (else ONNX Runtime's choice, one per core);
        ``session_config`` entries go to ``SessionOptions.add_session_config_entry`` (e.g.
        ``{"session.intra_op.allow_spinning": "0"}`` to free the cores between requests at some latency);
        ``disabled_optimizers`` names ONNX Runtime graph transformers not to run (what an export measured faster:
        `export_runtime_options`)."""
        import onnxruntime as ort

        self.path = Path(path)
        self.config = config
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = intra_op_num_threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        if threads:
            opts.intra_op_num_threads = threads
        for key, value in (session_config or {}).items():
            opts.add_session_config_entry(key, str(value))
        self.disabled_optimizers = list(disabled_optimizers or [])
        extra = {"disabled_optimizers": self.disabled_optimizers} if self.disabled_optimizers else {}
        try:
            self.session = ort.InferenceSession(
                str(self.path), opts, providers=providers or ["CPUExecutionProvider"], **extra
            )
        except Exception as exc:
            raise ValueError(f"{self.path}: ONNX Runtime cannot load this model ({exc})") from exc
        self.input_name = self.session.get_inputs()[0].name

    def eval(self) -> OnnxSegmentationModel:
        return self

    def __call__(self, pixel_values, labels=None) -> SemanticSegmenterOutput:
        x = pixel_values.detach().cpu().numpy() if isinstance(pixel_values, torch.Tensor) else pixel_values
        logits = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]
        return SemanticSegmenterOutput(logits=torch.from_numpy(logits))

    forward = __call__


def _export_info(folder: str | Path) -> dict:
    path = Path(folder) / EXPORT_INFO
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


def preferred_onnx_file(folder: str | Path) -> str:
    """The ONNX file an export folder recommends (``parity.json``'s ``preferred``), else ``model.onnx``."""
    name = _export_info(folder).get("preferred")
    if name and (Path(folder) / name).is_file():
        return name
    return "model.onnx"


def export_runtime_options(folder: str | Path, onnx_file: str) -> dict[str, list[str]]:
    """The session settings an export measured faster for one of its files (``parity.json``'s ``runtime``), as
    `OnnxSegmentationModel` keywords: ``{"disabled_optimizers": [...]}`` or nothing."""
    runtime = _export_info(folder).get("runtime", {})
    entry = runtime.get(onnx_file, {}) if isinstance(runtime, dict) else runtime
    names = entry.get("disabled_optimizers", []) if isinstance(entry, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"{Path(folder) / EXPORT_INFO}: runtime settings of {onnx_file} must be "
            f'{{"disabled_optimizers": [names]}}, got {entry!r}'
        )
    return {"disabled_optimizers": names} if names else {}
