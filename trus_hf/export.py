"""ONNX export (dynamic batch, height, width), parity against PyTorch, and static INT8 (QDQ) quantization.

The output folder is self-contained: ``model.onnx`` (and ``model_int8.onnx``), ``config.json``,
``preprocessor_config.json``, ``README.md`` and ``parity.json``. `load_model(folder, backend="onnx")` and
``SegmentationPipeline.from_pretrained(folder, backend="onnx")`` use it with the same pre- and post-processing.

Known traps handled here: the dynamo exporter freezes a dimension that equals 1 in the example, so the example batch
is 2; FPN needs height and width divisible by 32 (the processor pads, and the exported height/width are declared as
multiples of 32).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .fileio import atomic_dir
from .image_processing import TrusImageProcessor
from .metrics import binary_metrics
from .modelcard import render_model_card
from .models.onnx_runtime import EXPORT_INFO, OnnxSegmentationModel
from .onnx_graph import fuse_multihead_attention, offset_weight_zero_points

__all__ = [
    "DEFAULT_OPSET",
    "check_parity",
    "auto_int8_candidates",
    "ensure_onnx",
    "export_kfold",
    "export_onnx",
    "mask_agreement",
    "quantize_int8",
]

logger = logging.getLogger(__name__)


def _parity_frames(n: int = 3) -> list[np.ndarray]:
    from .synthetic import generate_phantom

    # Odd sizes on purpose: none is a multiple of 32.
    sizes = [(301, 397), (250, 250), (333, 270)]
    return [generate_phantom(100 + i, sizes[i % len(sizes)]).image for i in range(n)]


def _torch_export(model: nn.Module, path: Path, example: torch.Tensor, opset: int) -> str:
    wrapper = model.inference_module().eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    h = 32 * torch.export.Dim("h32", min=1, max=128)
    w = 32 * torch.export.Dim("w32", min=1, max=128)
    try:
        prog = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["pixel_values"],
            output_names=["logits"],
            dynamic_shapes={"pixel_values": {0: batch, 2: h, 3: w}},
            external_data=False,
            optimize=True,
        )
        prog.save(str(path), external_data=False)
        return "dynamo"
    except Exception as exc:  # fall back to the TorchScript exporter, which handles dynamic axes for both models
        logger.warning("dynamo export failed (%s); using the TorchScript exporter", exc)
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["pixel_values"],
            output_names=["logits"],
            dynamic_axes={
                "pixel_values": {0: "batch", 2: "height", 3: "width"},
                "logits": {0: "batch", 2: "height", 3: "width"},
            },
        )
        return "torchscript"


def check_parity(
    torch_model: nn.Module, onnx_path: str | Path, processor: TrusImageProcessor, frames: list[np.ndarray] | None = None
) -> dict[str, float]:
    """Max |logit difference| and thresholded-mask IoU agreement between PyTorch and ONNX Runtime, through the same
    prediction pipeline, on frames whose sizes are not multiples of 32; plus a second canvas size (dynamic H/W)."""
    from .pipeline import SegmentationPipeline

    frames = frames or _parity_frames()
    ort_model = OnnxSegmentationModel(onnx_path, torch_model.config)
    pt = SegmentationPipeline(torch_model, processor, device="cpu", batch_size=len(frames))
    ox = SegmentationPipeline(ort_model, processor, batch_size=len(frames))
    batch = processor(frames)
    with torch.inference_mode():
        a = torch_model(batch["pixel_values"]).logits.numpy()
    b = ort_model(batch["pixel_values"]).logits.numpy()
    max_diff = float(np.abs(a - b).max())
    agreement = [binary_metrics(r1.mask, r2.mask)["iou"] for r1, r2 in zip(pt.predict(frames), ox.predict(frames))]
    # A different canvas (multiple of 32, not the processor's) exercises the dynamic height/width.
    other = torch.randn(
        1,
        torch_model.config.num_channels,
        batch["pixel_values"].shape[2] + 32,
        batch["pixel_values"].shape[3] - 32 if batch["pixel_values"].shape[3] > 32 else 64,
    )
    with torch.inference_mode():
        c = torch_model(other).logits.numpy()
    d = ort_model(other).logits.numpy()
    return {
        "max_abs_logit_diff": max_diff,
        "max_abs_logit_diff_other_size": float(np.abs(c - d).max()),
        "min_mask_iou_agreement": float(min(agreement)),
        "frames": len(frames),
    }


#: Opset 23 has ``Attention`` and ``Gelu``: Segformer's attention and MLP export as single nodes that ONNX Runtime
#: runs with fused kernels (benchmarks/latency.py measures the difference).
DEFAULT_OPSET = 23
#: INT8 is preferred over fp32 only when every label's mean mask IoU agreement reaches this on held-out phantoms
#: and it runs at most ``INT8_MAX_TIME_RATIO`` of fp32's time.
INT8_AGREEMENT_TARGET = 0.95
INT8_MAX_TIME_RATIO = 0.9
#: Settings `export_onnx(int8="auto")` tries when none are given, keeping the fastest that qualifies. All calibrate
#: with MinMax (small memory at any size); keeping the first and the last node in fp32 protects the FPN's agreement;
#: a transformer (Segformer) runs faster with only its convolutions and decode head in INT8 (``scope="conv_head"``:
#: 0.85x fp32 at 768x768, where every node quantized runs at ~1.0x: BENCHMARKS.md). The last candidate is tried
#: only on graphs with layer normalization, as elsewhere it equals the second.
AUTO_INT8_CANDIDATES = ({"exclude": "ends"}, {"exclude": None}, {"exclude": None, "scope": "conv_head"})
INT8_SCOPES = ("all", "conv_head")
#: ONNX Runtime's QDQ propagation moves the QuantizeLinear that follows a MaxPool in front of it, so the MaxPool runs
#: on uint8 in plain NCHW: for FPN-resnet152 at 768x768, 25 ms instead of 6 ms in fp32 in the blocked layout, the
#: whole INT8 model 0.79-0.99x its time with the transformer off. For the mobilenet_v2 demo FPN and Segformer it is
#: the other way round (1.03x), so the export times both and records the faster for the INT8 file; the logits are
#: the same either way (a maximum commutes with the monotonic quantization).
QDQ_PROPAGATION = ("QDQPropagationTransformer",)
_PRESETS = ("default", "hard", "shifted")


class _CalibrationReader:
    def __init__(self, arrays: list[np.ndarray]):
        self.items = iter([{"pixel_values": a[None]} for a in arrays])

    def get_next(self):
        return next(self.items, None)


def _phantom_frames(first_seed: int, n: int) -> list[np.ndarray]:
    """Realistic frames for calibration and agreement: phantoms of every preset (in-range, hard and shifted
    settings), so that activation ranges cover what deployment sees, not one setting."""
    from .synthetic import generate_phantom

    return [generate_phantom(first_seed + i, (384, 384), _PRESETS[i % len(_PRESETS)]).image for i in range(n)]


def _calibration_arrays(processor: TrusImageProcessor, data: str | None, n: int) -> list[np.ndarray]:
    if data is None:
        images = _phantom_frames(5000, n)
    else:
        from .data import load_dataset

        split = load_dataset(data)["train"]
        images = [np.asarray(split[i]["image"]) for i in range(min(n, len(split)))]
    return [processor(im, return_tensors="np")["pixel_values"][0] for im in images]


def _excluded_nodes(path: Path, exclude: str | list[str] | None) -> list[str]:
    """``"ends"``: the first and the last quantizable node (the one reading the image, the one writing the logits),
    where INT8 costs the most agreement for the least time (BENCHMARKS.md); or explicit node names."""
    if exclude is None:
        return []
    if not isinstance(exclude, str):
        return list(exclude)
    if exclude != "ends":
        raise ValueError(f"exclude must be 'ends', a list of node names or None, got {exclude!r}")
    import onnx

    nodes = [n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    return sorted({nodes[0], nodes[-1]}) if nodes else []


def _has_layer_norm(path: str | Path) -> bool:
    import onnx

    return any(n.op_type == "LayerNormalization" for n in onnx.load(str(path)).graph.node)


def auto_int8_candidates(path: str | Path) -> list[dict[str, Any]]:
    """The settings `export_onnx(int8="auto")` tries on the graph at ``path``: `AUTO_INT8_CANDIDATES`, less the
    ``conv_head`` scope on a graph without layer normalization (where it would quantize what "every node" does)."""
    layer_norm = _has_layer_norm(path)
    return [dict(c) for c in AUTO_INT8_CANDIDATES if layer_norm or c.get("scope", "all") == "all"]


def _scoped_nodes(path: Path, scope: str) -> list[str] | None:
    """The nodes to quantize (None: every quantizable one). ``"conv_head"``: every convolution, and every node
    after the graph's last LayerNormalization (a transformer's decode head: its projections, upsamplings, sums and
    classifier, whose 256-channel maps at a quarter of the input's resolution then move as uint8). Attention,
    MatMul and the layer normalizations stay fp32: wrapped in QuantizeLinear / DequantizeLinear pairs they cost
    more than INT8 saves (Segformer-b0 at 768x768, every node quantized: ~1.0x fp32's time)."""
    if scope == "all":
        return None
    import onnx

    nodes = list(onnx.load(str(path)).graph.node)
    norms = [i for i, n in enumerate(nodes) if n.op_type == "LayerNormalization"]
    head = nodes[norms[-1] + 1 :] if norms else []
    return [n.name for n in nodes if n.op_type == "Conv"] + [n.name for n in head if n.op_type != "Conv"]


def quantize_int8(
    onnx_path: str | Path,
    out_path: str | Path,
    processor: TrusImageProcessor,
    calibration_data: str | None = None,
    calibration_size: int = 16,
    method: str = "minmax",
    quant_format: str = "qdq",
    exclude: str | list[str] | None = "ends",
    per_channel: bool = True,
    scope: str = "all",
) -> Path:
    """Static INT8 quantization (ONNX Runtime's quantizer after its ``quant_pre_process``) calibrated on processed
    frames: phantoms of every preset by default, else the ``train`` split of ``calibration_data``.

    ``method``: ``minmax``, ``entropy`` or ``percentile`` calibration; ``quant_format``: ``qdq`` (QuantizeLinear /
    DequantizeLinear pairs that ONNX Runtime fuses into integer kernels) or ``qoperator`` (QLinearConv...);
    ``exclude``: nodes kept in fp32 (see `_excluded_nodes`); ``scope``: ``all`` quantizable nodes or ``conv_head``
    (see `_scoped_nodes`); weights per channel by default. Dynamic quantization is not offered: it turns
    convolutions into ConvInteger, slower than fp32 on CPU (BENCHMARKS.md).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    formats = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
    if method not in methods:
        raise ValueError(f"method must be one of {sorted(methods)}, got {method!r}")
    if quant_format not in formats:
        raise ValueError(f"quant_format must be one of {sorted(formats)}, got {quant_format!r}")
    if scope not in INT8_SCOPES:
        raise ValueError(f"scope must be one of {list(INT8_SCOPES)}, got {scope!r}")
    out_path = Path(out_path)
    pre = out_path.with_suffix(".pre.onnx")
    # Without ONNX Runtime's graph optimization here (the exporter's optimizer already folded the graph): it inlines
    # each GroupNormalization (FPN's decoder) into ~10 primitive nodes, which the quantizer then wraps in their own
    # QuantizeLinear / DequantizeLinear pairs, 28 of them dequantizing a whole map only to read its shape. Kept whole,
    # a GroupNormalization runs in fp32 between one DequantizeLinear and the next QuantizeLinear: FPN-resnet152's
    # INT8 graph at 768x768 0.945x the time; Segformer's graph comes out the same (BENCHMARKS.md).
    quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True, skip_optimization=True)
    try:
        quantize_static(
            str(pre),
            str(out_path),
            _CalibrationReader(_calibration_arrays(processor, calibration_data, calibration_size)),
            quant_format=formats[quant_format],
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            # MinMax keeps only per-tensor ReduceMin/ReduceMax outputs, so memory stays small without
            # CalibMaxIntermediateOutputs (which, in ONNX Runtime 1.32, drops the MinMax data it collected).
            nodes_to_exclude=_excluded_nodes(pre, exclude),
            nodes_to_quantize=_scoped_nodes(pre, scope),
        )
    finally:
        pre.unlink(missing_ok=True)
    return out_path


def mask_agreement(reference: Any, candidate: Any, processor: TrusImageProcessor, frames: list[np.ndarray]) -> dict:
    """Per label, the mean and minimum IoU between two models' masks through the prediction pipeline (a frame
    where both masks are empty agrees fully), plus the worst label's figures."""
    from .pipeline import SegmentationPipeline

    a = SegmentationPipeline(reference, processor).predict(frames)
    b = SegmentationPipeline(candidate, processor).predict(frames)
    labels = {}
    for label in reference.config.labels:
        ious = [binary_metrics(x.masks[label], y.masks[label])["iou"] for x, y in zip(a, b)]  # both empty: 1.0
        labels[label] = {"mean": float(np.mean(ious)), "min": float(np.min(ious))}
    return {
        "frames": len(frames),
        "labels": labels,
        "mean": min(v["mean"] for v in labels.values()),
        "min": min(v["min"] for v in labels.values()),
    }


#: Seconds to wait before each timed block of `_paired_ms`: ONNX Runtime's idle worker threads spin for 2**20
#: pause instructions after a run (~20 ms on AMD EPYC, ~60 ms on cores with a 140-cycle pause) before they sleep.
_SPIN_SETTLE_S = 0.1


def _paired_ms(
    a: Any, b: Any, x: np.ndarray, runs: int = 10, min_seconds: float = 0.5, blocks: int = 5
) -> tuple[float, float]:
    """Median milliseconds of ``a(x)`` and ``b(x)``, timed in ``blocks`` alternating blocks each (this VM's speed
    drifts, so both must see the same machine state); each block starts after a pause and an untimed run. At least
    ``runs`` timed runs per model, more for fast models: as many as fill ``min_seconds`` (at most 200), since the
    medians of ten ~10 ms runs moved by 10-20% from one export to the next.

    Why the pause and the untimed run: ONNX Runtime's worker threads spin on after a run, and a run of the other
    session meanwhile competes with them for the two cores. Alternating run by run, two sessions of the same
    Segformer-b0 graph at 768x768 took 149-150 ms each against 119.5 ms timed one after the other, and the demo
    Segformer at 256x256 16.2 ms against 8.4 (its INT8 file 13.0 against 6.5): every time gained about a constant,
    which pulled each ratio toward 1 (BENCHMARKS.md). With the pause, 8.3 and 6.8 ms."""
    import math

    first = []
    for model in (a, b):  # untimed: a warm-up, and how long one run takes
        t = time.perf_counter()
        model(x)
        first.append(time.perf_counter() - t)
    runs = max(runs, min(200, math.ceil(min_seconds / max(*first, 1e-4))))
    per_block = math.ceil(runs / blocks)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(blocks):
        for model, spent in ((a, times[0]), (b, times[1])):
            time.sleep(_SPIN_SETTLE_S)  # the other session's threads stop spinning
            model(x)  # untimed: caches and the session's own threads warm again
            for _ in range(per_block):
                t = time.perf_counter()
                model(x)
                spent.append((time.perf_counter() - t) * 1000)
    return float(np.median(times[0])), float(np.median(times[1]))


def _int8_report(
    fp32: OnnxSegmentationModel,
    int8_path: Path,
    processor: TrusImageProcessor,
    frames: list[np.ndarray],
    x: np.ndarray,
) -> dict[str, Any]:
    """Agreement of INT8 with fp32 on ``frames`` (held-out phantoms: other seeds than calibration) and their latency
    on ``x`` (the first frame, processed), measured side by side."""
    int8 = OnnxSegmentationModel(int8_path, fp32.config)
    report = mask_agreement(fp32, int8, processor, frames)
    report["fp32_ms"], report["int8_ms"] = _paired_ms(fp32, int8, x)
    report["time_ratio"] = report["int8_ms"] / report["fp32_ms"]
    return report


def _runtime_choice(int8_path: Path, config: Any, x: np.ndarray) -> tuple[list[str], dict[str, float]]:
    """Times the INT8 file on ``x`` with and without `QDQ_PROPAGATION`, side by side: the optimizers the faster
    disables, and both times."""
    on = OnnxSegmentationModel(int8_path, config)
    off = OnnxSegmentationModel(int8_path, config, disabled_optimizers=QDQ_PROPAGATION)
    on_ms, off_ms = _paired_ms(on, off, x)
    return list(QDQ_PROPAGATION) if off_ms < on_ms else [], {"on": round(on_ms, 2), "off": round(off_ms, 2)}


def _zero_point_choice(int8_path: Path, config: Any, x: np.ndarray) -> dict[str, Any]:
    """Times the INT8 file against its `offset_weight_zero_points` rewrite on ``x``, side by side, and keeps the
    rewrite in its place when it is faster and gives the same logits: ``{"kept": ..., "same_logits": ...,
    "zero_ms": ..., "offset_ms": ...}`` (``{"kept": False, "tensors": 0}`` when no weight could be rewritten).

    The rewrite is exact in arithmetic, but not on every CPU's kernels: without VNNI, MLAS's u8s8 integer GEMM
    multiplies with AVX2's ``vpmaddubsw``, which adds each pair of products in saturating 16 bits (ONNX Runtime's
    quantization notes warn of it), while the symmetric convolution kernels do not saturate; on such a CPU the two
    files' logits differ (a tiny FPN at 96x96 on an AVX2-only AMD EPYC: by up to 0.4) and the file stays as it
    was."""
    offset = int8_path.with_suffix(".offset.onnx")
    tensors = offset_weight_zero_points(int8_path, offset)
    if not tensors:
        offset.unlink()
        return {"kept": False, "tensors": 0}
    zero, shifted = OnnxSegmentationModel(int8_path, config), OnnxSegmentationModel(offset, config)
    same = np.allclose(zero(x).logits.numpy(), shifted(x).logits.numpy(), rtol=0, atol=1e-5)
    zero_ms, offset_ms = _paired_ms(zero, shifted, x)
    if not same:
        logger.info("INT8 logits change with weight zero points offset on this CPU's kernels; keeping zero points 0")
    kept = same and offset_ms < zero_ms
    del zero, shifted
    if kept:
        offset.replace(int8_path)
    else:
        offset.unlink()
    return {
        "kept": kept,
        "same_logits": same,
        "tensors": tensors,
        "zero_ms": round(zero_ms, 2),
        "offset_ms": round(offset_ms, 2),
    }


def _qualifies(report: dict[str, Any]) -> bool:
    return report["mean"] >= INT8_AGREEMENT_TARGET and report["time_ratio"] <= INT8_MAX_TIME_RATIO


def _choose_int8(
    folder: Path,
    config: Any,
    processor: TrusImageProcessor,
    int8: bool | str,
    calibration: tuple[str | None, int],
    quantization: dict[str, Any],
) -> tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Quantize with each candidate setting, measure each, keep the fastest that qualifies as ``model_int8.onnx``:
    (preferred file, the kept or best report, every candidate's report, the kept file's runtime settings for
    ``parity.json``: ``{"model_int8.onnx": {"disabled_optimizers": [...]}}`` when it runs faster so, else empty)."""
    given = bool(quantization) or int8 is True
    candidates = [quantization] if given else auto_int8_candidates(folder / "model.onnx")
    fp32 = OnnxSegmentationModel(folder / "model.onnx", config)
    frames = _phantom_frames(30_000, 24)  # the same held-out frames for every candidate
    x = processor(frames[0])["pixel_values"].numpy()  # and the same input for every timing
    reports = []
    for i, options in enumerate(candidates):
        q = quantize_int8(folder / "model.onnx", folder / f"model_int8.{i}.onnx", processor, *calibration, **options)
        report = _int8_report(fp32, q, processor, frames, x)
        report["size_mb"] = round(q.stat().st_size / 2**20, 2)
        report["settings"] = {"method": "minmax", "quant_format": "qdq", "exclude": "ends", "scope": "all", **options}
        report["file"] = q
        reports.append(report)
    good = [r for r in reports if _qualifies(r)]
    # ratios, not milliseconds: each candidate is timed against fp32 side by side, the candidates one after another
    keep = min(good, key=lambda r: r["time_ratio"]) if good else (reports[0] if int8 is True else None)
    for r in reports:
        path = r.pop("file")
        if r is keep:
            path.replace(folder / "model_int8.onnx")
        else:
            path.unlink()
    runtime = {}
    if keep is not None:
        keep["weight_zero_point_offset"] = _zero_point_choice(folder / "model_int8.onnx", config, x)
        off, keep["qdq_propagation_ms"] = _runtime_choice(folder / "model_int8.onnx", config, x)
        if off:  # load_model applies it (`export_runtime_options`)
            runtime = {"model_int8.onnx": {"disabled_optimizers": off}}
    chosen = keep if keep is not None else max(reports, key=lambda r: r["mean"])
    if keep is None:
        chosen["removed"] = True
    preferred = "model_int8.onnx" if keep is not None and _qualifies(keep) else "model.onnx"
    return preferred, chosen, reports, runtime


def export_onnx(
    model: str | Path | Any,
    out_dir: str | Path,
    processor: TrusImageProcessor | None = None,
    opset: int | None = None,
    int8: bool | str = False,
    calibration_data: str | None = None,
    calibration_size: int = 16,
    verify: bool = True,
    tolerance: float = 1e-3,
    **quantization: Any,
) -> dict[str, Any]:
    """Export a model (folder, Hub ID, or a loaded model + ``processor``) to a self-contained ONNX folder.

    The graph is the model's `inference_module` (for Segformer, its decode head folded). With ``verify`` (default)
    the export is checked against PyTorch (`check_parity`); raises `ValueError` when the ONNX model disagrees with
    PyTorch beyond ``tolerance`` or when masks agree below IoU 0.999.

    ``int8``: ``"auto"`` (the CLI's default) quantizes with each of `AUTO_INT8_CANDIDATES` (or the settings given in
    ``quantization``, see `quantize_int8`), measures each one's agreement and speed against fp32 (`_int8_report`)
    and keeps the fastest that meets `INT8_AGREEMENT_TARGET` and `INT8_MAX_TIME_RATIO` as ``model_int8.onnx``, the
    folder's preferred file; none qualifying, no INT8 file is kept. ``True`` quantizes once (the given or default
    settings) and keeps the file, preferred on the same terms; ``False`` (default) skips quantization. The preferred
    file is recorded in ``parity.json`` and loaded by ``load_model(folder, backend="onnx")``.
    """
    import onnx

    from .models import load_model

    opset = opset or DEFAULT_OPSET
    if int8 not in (True, False, "auto"):
        raise ValueError(f"int8 must be True, False or 'auto', got {int8!r}")
    source_dir = None
    if isinstance(model, (str, Path)):
        source_dir = Path(model) if Path(model).is_dir() else None
        model, processor = load_model(model)
    if processor is None:
        raise ValueError("pass the model's processor when exporting a model object")
    model = model.float().eval()
    out_dir = Path(out_dir)
    example = torch.randn(2, model.config.num_channels, *processor.canvas_size)
    info: dict[str, Any] = {"opset": opset}
    with atomic_dir(out_dir) as tmp:
        t0 = time.perf_counter()
        info["exporter"] = _torch_export(model, tmp / "model.onnx", example, opset)
        info["fused_attention"] = fuse_multihead_attention(tmp / "model.onnx")
        info["export_seconds"] = round(time.perf_counter() - t0, 1)
        onnx.checker.check_model(str(tmp / "model.onnx"))
        (tmp / "config.json").write_text(json.dumps(model.config_dict(), indent=2, sort_keys=True) + "\n")
        processor.save_pretrained(tmp)
        card_src = source_dir / "README.md" if source_dir is not None else None
        if card_src is not None and card_src.is_file():
            shutil.copy(card_src, tmp / "README.md")
        else:
            (tmp / "README.md").write_text(render_model_card(model.config, processor))
        info["size_mb"] = round((tmp / "model.onnx").stat().st_size / 2**20, 2)
        if verify:
            parity = check_parity(model, tmp / "model.onnx", processor)
            info["parity"] = parity
            if (
                parity["max_abs_logit_diff"] > tolerance
                or parity["max_abs_logit_diff_other_size"] > tolerance
                or parity["min_mask_iou_agreement"] < 0.999
            ):
                raise ValueError(f"ONNX export disagrees with PyTorch: {parity}")
        info["preferred"] = "model.onnx"
        if int8:
            preferred, report, tried, runtime = _choose_int8(
                tmp, model.config, processor, int8, (calibration_data, calibration_size), quantization
            )
            info["preferred"], info["int8"] = preferred, report
            if len(tried) > 1:
                info["int8_candidates"] = tried
            if runtime:
                info["runtime"] = runtime
            logger.info(
                "INT8 (%s): agreement mean %.4f (min %.4f), %.2fx fp32 time: %s",
                report["settings"],
                report["mean"],
                report["min"],
                report["time_ratio"],
                "preferred" if preferred != "model.onnx" else ("removed" if report.get("removed") else "kept"),
            )
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=1))
    info["out_dir"] = str(out_dir)
    return info


def export_kfold(run: str | Path, out_dir: str | Path, **kwargs: Any) -> list[dict[str, Any]]:
    """Export every fold model of a k-fold run's folder (`trus_hf.pipeline.kfold_members`) with `export_onnx`
    (``kwargs`` as there: each fold checked, quantized and its INT8 decided on its own) into the same layout,
    ``out_dir/fold_<i>/model``, with the run's ``kfold_summary.json``; so ``SegmentationPipeline.from_pretrained(
    out_dir, backend="onnx")``, the CLI and the app load the exports as the run's ensemble. All or nothing: the
    folder appears once every fold is exported. Returns each fold's export report."""
    from .pipeline import KFOLD_SUMMARY, kfold_members

    run = Path(run)
    members = kfold_members(run)
    if members is None:
        raise ValueError(f"{run}: not a k-fold run's folder (no {KFOLD_SUMMARY} beside fold_<i>/model folders)")
    infos = []
    with atomic_dir(Path(out_dir)) as tmp:
        shutil.copy(run / KFOLD_SUMMARY, tmp / KFOLD_SUMMARY)
        for member in members:
            target = tmp / member.relative_to(run)
            target.parent.mkdir(parents=True)
            logger.info("exporting %s", member.relative_to(run))
            info = export_onnx(member, target, **kwargs)
            info["out_dir"] = str(Path(out_dir) / member.relative_to(run))
            infos.append(info)
    return infos


def default_onnx_cache() -> Path:
    """Where `ensure_onnx` keeps exports: ``$TRUS_HF_CACHE/onnx``, else ``<temp dir>/trus-hf-cache/onnx``."""
    import os
    import tempfile

    return Path(os.environ.get("TRUS_HF_CACHE", Path(tempfile.gettempdir()) / "trus-hf-cache")) / "onnx"


def ensure_onnx(source: str | Path, cache_dir: str | Path | None = None, revision: str | None = None) -> Path:
    """A folder with ``model.onnx`` for ``source`` (a local folder or a Hub ID, downloaded once): the folder itself
    when it holds an export, else an export made once into ``cache_dir`` (keyed by the hash of the weights and the
    configs) and reused."""
    import hashlib

    from .models import resolve_model_dir

    folder = resolve_model_dir(source, revision=revision)
    if (folder / "model.onnx").is_file():
        return folder
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"{source}: neither model.onnx nor model.safetensors to export from")
    digest = hashlib.sha256(weights.read_bytes())
    for name in ("config.json", "preprocessor_config.json"):  # tuned post-processing lives there: a new export
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    key = digest.hexdigest()[:16]
    target = Path(cache_dir or default_onnx_cache()) / key
    if not (target / "model.onnx").is_file():
        # fp32 only: quantizing and measuring would delay the first request by tens of seconds.
        export_onnx(folder, target, verify=False, int8=False)
    return target
