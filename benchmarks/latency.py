"""Inference latency, PyTorch eager vs ONNX Runtime (fp32 and INT8), measured side by side in one process, and INT8's
mask agreement with fp32 on TRAINED models.

    python benchmarks/latency.py [--runs 7] [--models fpn-resnet152 segformer-b0] [--size 768] [--variants]

Batch 1 at 768x768 with 2 threads, median of --runs after two warm-up runs; every figure is also given as a ratio to
PyTorch eager fp32 of the same model in the same run. Issue 13's targets (2-core machine): FPN-resnet152 ORT INT8
<= 0.20x PyTorch, Segformer-b0 ORT <= 0.20x PyTorch, INT8 mask IoU agreement >= 0.95 against fp32 on held-out frames
(mean and minimum reported), pre + post <= 10% of end-to-end time.

What each column is:
- ``torch``: the model as trained (transformers / smp modules), eager; ``torch CL``: channels_last;
  ``torch folded``: the model's `inference_module()` (Segformer's decode head folded, exact), eager.
- ``ORT fp32``: `export_onnx`'s graph (the inference module at the default opset); ``ORT old``: the graph as the
  previous release exported it (the model's forward at opset 18), for the record.
- ``ORT int8``: `quantize_int8` with the defaults (MinMax calibration on phantoms of every preset, QDQ, per-channel
  weights, first and last node in fp32). Loaded as `load_model` does, with the session setting its export measured
  faster (ONNX Runtime's QDQ propagation on or off, `trus_hf.export.QDQ_PROPAGATION`); both are also timed here,
  alternately (in blocks after a pause: `_paired_ms`). ``ORT int8 conv + head`` (a transformer only): the export's
  third candidate, only the convolutions and the decode head quantized (``scope="conv_head"``).
  PyTorch and ONNX Runtime are timed one after the other, not alternately: between ONNX Runtime runs
  (whose threads spin on for a while after each run) PyTorch eager FPN-resnet152 took 1,664 ms against 1,488 ms
  on its own in the same run.
  The export also times the INT8 file with its weights' zero points offset to -1 (`offset_weight_zero_points`:
  ONNX Runtime's integer GEMM kernels, with AMX where the CPU has it, instead of its symmetric convolution ones)
  and keeps the faster; both of its times are printed.
  ``--variants`` adds the other quantizer settings (entropy and percentile calibration, QOperator, nothing
  excluded) and session options (spinning off, IO binding), each timed in this run.

PyTorch eager's time depends on how the process allocates: each forward at 768x768 takes over a gigabyte of fresh
temporaries from the OS, and the minor page faults per forward are printed. So PyTorch eager is also timed in a
second process with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (huge pages: ~30x fewer faults; the same model, seed
and input), right after this process's figures, and every ONNX Runtime figure is given against both denominators.

Agreement is measured on the bundled demo models (trained, gland + lesion), for every setting ``export-onnx --int8
auto`` tries, with the one it keeps: there is no trained FPN-resnet152 here
(no ImageNet weights to start from and no GPU to train one), so the resnet152 row is timed on random weights, whose
latency equals a trained one's, and agreement comes from the trained models.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import torch

from trus_hf import (
    SegmentationPipeline,
    TrusImageProcessor,
    TrusSegConfig,
    TrusSegmentationModel,
    create_model,
    load_model,
)
from trus_hf.export import (
    QDQ_PROPAGATION,
    _has_layer_norm,
    _paired_ms,
    _phantom_frames,
    _torch_export,
    auto_int8_candidates,
    export_onnx,
    mask_agreement,
    quantize_int8,
)
from trus_hf.models.onnx_runtime import OnnxSegmentationModel
from trus_hf.synthetic import generate_phantom

MODELS = {
    "fpn-resnet152": TrusSegConfig(architecture="fpn", encoder_name="resnet152"),
    "segformer-b0": TrusSegConfig(architecture="segformer", segformer_size="b0"),
    "segformer-b2": TrusSegConfig(architecture="segformer", segformer_size="b2"),
}


def median_ms(fn, runs: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Forward(torch.nn.Module):
    """The model's own forward, as the previous release exported it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values).logits

    def inference_module(self):
        return self


def io_bound(session_model: OnnxSegmentationModel, x: np.ndarray):
    """A run with IO binding: the input bound in place, the output into a buffer allocated once."""
    import onnxruntime as ort

    s = session_model.session
    binding = s.io_binding()
    x = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x))
    out = ort.OrtValue.ortvalue_from_numpy(np.empty_like(s.run(None, {session_model.input_name: x.numpy()})[0]))
    binding.bind_ortvalue_input(session_model.input_name, x)
    binding.bind_ortvalue_output(s.get_outputs()[0].name, out)
    # the closure keeps both buffers alive for as long as the binding runs
    return lambda x=x, out=out: s.run_with_iobinding(binding)


def _model_and_input(name: str, size: int) -> tuple[torch.nn.Module, TrusImageProcessor, np.ndarray, torch.Tensor]:
    proc = TrusImageProcessor(size={"height": size, "width": size})
    frame = generate_phantom(1, (600, 800)).image
    torch.manual_seed(0)
    return create_model(MODELS[name]).eval(), proc, frame, proc(frame)["pixel_values"]


def eager_ms(model: torch.nn.Module, x: torch.Tensor, runs: int) -> tuple[float, int]:
    """PyTorch eager: median milliseconds and the minor page faults of one more forward."""
    with torch.inference_mode():
        ms = median_ms(lambda: model(x), runs)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        model(x)
        return ms, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def eager_with_huge_pages(name: str, size: int, runs: int) -> dict:
    """PyTorch eager of the same model and input in a fresh process with glibc's huge-page tunable."""
    env = {**os.environ, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    cmd = [sys.executable, __file__, "--eager-only", name, "--size", str(size), "--runs", str(runs)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def time_model(name: str, size: int, runs: int, variants: bool, tmp: Path) -> dict:
    model, proc, frame, x = _model_and_input(name, size)
    xn = x.numpy()
    row = {}
    row["torch"], row["_faults"] = eager_ms(model, x, runs)
    with torch.inference_mode():
        folded = model.inference_module()
        if type(model).inference_module is not TrusSegmentationModel.inference_module:  # a rewritten graph
            row["torch folded"] = median_ms(lambda: folded(x), runs)
        cl = model.to(memory_format=torch.channels_last)
        row["torch CL"] = median_ms(lambda: cl(x.contiguous(memory_format=torch.channels_last)), runs)
    model = model.to(memory_format=torch.contiguous_format)
    folder = tmp / name
    model.save_pretrained(folder / "pt", processor=proc)
    info = export_onnx(folder / "pt", folder / "onnx", int8=True, calibration_size=8, verify=False)
    onnx_dir = folder / "onnx"
    ort32 = OnnxSegmentationModel(onnx_dir / "model.onnx", model.config)
    ort8, _ = load_model(onnx_dir, backend="onnx", onnx_file="model_int8.onnx")  # with the export's runtime choice
    row["_runtime"] = ort8.disabled_optimizers
    row["_zero_points"] = info["int8"]["weight_zero_point_offset"]
    row["ORT fp32"] = median_ms(lambda: ort32(xn), runs)
    row["ORT int8"] = median_ms(lambda: ort8(xn), runs)
    if _has_layer_norm(onnx_dir / "model.onnx"):  # the export's third candidate on a transformer
        q = quantize_int8(
            onnx_dir / "model.onnx",
            folder / "conv_head.onnx",
            proc,
            calibration_size=8,
            exclude=None,
            scope="conv_head",
        )
        conv_head = OnnxSegmentationModel(q, model.config)
        row["ORT int8 conv + head"] = median_ms(lambda: conv_head(xn), runs)
        del conv_head
    # timed alternately (`_paired_ms`): the VM's speed drifts by more than the differences measured here; ort8 is
    # one of the two settings, a second session of the file the other
    chose_off = bool(ort8.disabled_optimizers)
    other = OnnxSegmentationModel(
        onnx_dir / "model_int8.onnx", model.config, disabled_optimizers=() if chose_off else QDQ_PROPAGATION
    )
    on, off = (other, ort8) if chose_off else (ort8, other)
    row["ORT int8 QDQ propagation on"], row["ORT int8 QDQ propagation off"] = _paired_ms(on, off, xn, runs)
    _torch_export(_Forward(model), folder / "old.onnx", torch.randn(2, 3, size, size), 18)
    old = OnnxSegmentationModel(folder / "old.onnx", model.config)
    row["ORT old"] = median_ms(lambda m=old: m(xn), runs)
    del old
    if variants:
        for tag, path in (("fp32", "model.onnx"), ("int8", "model_int8.onnx")):
            m = OnnxSegmentationModel(
                onnx_dir / path, model.config, session_config={"session.intra_op.allow_spinning": "0"}
            )
            row[f"ORT {tag} spinning off"] = median_ms(lambda m=m: m(xn), runs)
        row["ORT int8 IO binding"] = median_ms(io_bound(ort8, xn), runs)
        for label, options in (
            ("percentile", {"method": "percentile"}),
            ("entropy", {"method": "entropy"}),
            ("QOperator", {"quant_format": "qoperator"}),
            ("nothing excluded", {"exclude": None}),
        ):
            q = quantize_int8(onnx_dir / "model.onnx", folder / f"{label}.onnx", proc, calibration_size=4, **options)
            m = OnnxSegmentationModel(q, model.config)
            row[f"ORT int8 {label}"] = median_ms(lambda m=m: m(xn), runs)
    pipe = SegmentationPipeline(ort8 if name.startswith("fpn") else ort32, proc)
    splits = [pipe(frame).timings_ms for _ in range(max(3, runs // 2))]
    row["_split"] = {k: statistics.median(s[k] for s in splits) for k in ("preprocess", "inference", "postprocess")}
    return row


def _label(options: dict) -> str:
    scope = "convolutions + decode head" if options.get("scope") == "conv_head" else "every node"
    return f"{scope}, " + ("first + last node fp32" if options.get("exclude", "ends") == "ends" else "nothing excluded")


def trained_agreement(tmp: Path, variants: bool) -> list[str]:
    """INT8 vs fp32 on the bundled (trained) demo models: mask agreement per label on 24 held-out phantoms of every
    preset (seeds unseen by calibration and training) and the time ratio at their own canvas, for each setting
    `export-onnx --int8 auto` tries, and which one it keeps."""
    from trus_hf.demo import demo_model_paths

    lines = []
    paths = demo_model_paths()
    if not paths:
        return ["demo models not installed: run `trus-hf demo-models`"]
    frames = _phantom_frames(30_000, 24)
    for name, path in paths.items():
        out = tmp / f"demo_{name}"
        info = export_onnx(path, out, int8="auto", calibration_size=16)
        fp32, proc = load_model(out, backend="onnx", onnx_file="model.onnx")
        kept = info["int8"]["settings"] if info["preferred"] != "model.onnx" else None
        candidates = auto_int8_candidates(out / "model.onnx")
        if variants:
            candidates += [{"method": "percentile"}]
        x = proc(frames[0])["pixel_values"].numpy()
        t32 = median_ms(lambda m=fp32, x=x: m(x), 20)
        for i, options in enumerate(candidates):
            file = quantize_int8(out / "model.onnx", out / f"candidate_{i}.onnx", proc, calibration_size=16, **options)
            int8 = OnnxSegmentationModel(file, fp32.config)
            agree = mask_agreement(fp32, int8, proc, frames)
            t8 = median_ms(lambda m=int8, x=x: m(x), 20)
            per_label = ", ".join(f"{k} {v['mean']:.4f} (min {v['min']:.4f})" for k, v in agree["labels"].items())
            label = _label(options) + (f", {options['method']}" if "method" in options else "")
            lines.append(
                f"demo {name} ({fp32.config.encoder_name if name == 'fpn' else 'mit-b0'}, "
                f"{proc.canvas_size[0]}x{proc.canvas_size[1]}), INT8 {label}: mask IoU agreement with fp32 "
                f"{per_label}; {t8:.1f} ms vs {t32:.1f} ms ({t8 / t32:.2f}x)"
            )
        lines.append(
            f"demo {name}: `export-onnx --int8 auto` keeps "
            + (f"INT8 {_label(kept)} ({info['int8']['time_ratio']:.2f}x fp32 in its check)" if kept else "fp32")
        )
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--models", nargs="+", default=["fpn-resnet152", "segformer-b0"], choices=list(MODELS))
    ap.add_argument("--variants", action="store_true", help="also time the other quantizer and session settings")
    ap.add_argument("--eager-only", choices=list(MODELS), help=argparse.SUPPRESS)  # the huge-page process
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    if a.eager_only:
        model, _, _, x = _model_and_input(a.eager_only, a.size)
        ms, faults = eager_ms(model, x, a.runs)
        print(json.dumps({"ms": ms, "faults": faults}))
        return
    tmp = Path(tempfile.mkdtemp())
    rows = {}
    for name in a.models:
        rows[name] = time_model(name, a.size, a.runs, a.variants, tmp)
        rows[name]["_huge_pages"] = eager_with_huge_pages(name, a.size, a.runs)
        print(f"measured {name}: {rows[name]}", flush=True)
    print(
        f"\nbatch 1, {a.size}x{a.size}, {os.environ['OMP_NUM_THREADS']} threads, median of {a.runs}: ms "
        f"(ratio to PyTorch eager fp32 of the same model)"
    )
    for name, row in rows.items():
        base = row["torch"]
        print(f"\n{name}")
        for key, ms in row.items():
            if not key.startswith("_"):
                print(f"  {key:28} {ms:9.1f} ms  {ms / base:6.3f}x")
        print(f"  ORT int8 as exported: QDQ propagation {'off' if row['_runtime'] else 'on'} (the faster in its check)")
        zp = row["_zero_points"]
        if zp.get("tensors"):
            print(
                f"  ORT int8 weight zero points, timed side by side in its export: 0 (symmetric conv kernels) "
                f"{zp['zero_ms']:.1f} ms, -1 (integer GEMM kernels) {zp['offset_ms']:.1f} ms "
                f"({zp['offset_ms'] / zp['zero_ms']:.3f}x); kept: {'-1' if zp['kept'] else '0'}"
            )
        print(f"  PyTorch eager: {row['_faults']:,} minor page faults per forward")
        huge = row["_huge_pages"]
        print(
            f"  PyTorch eager in a process with huge pages: {huge['ms']:.1f} ms ({huge['faults']:,} minor page "
            f"faults per forward); against it: "
            + ", ".join(
                f"{k} {row[k] / huge['ms']:.3f}x" for k in ("ORT fp32", "ORT int8", "ORT int8 conv + head") if k in row
            )
        )
        s = row["_split"]
        total = sum(s.values())
        print(
            f"  pipeline split: pre {s['preprocess']:.1f} ms, inference {s['inference']:.1f} ms, post "
            f"{s['postprocess']:.1f} ms: pre + post {100 * (s['preprocess'] + s['postprocess']) / total:.1f}%"
        )
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    print(f"\nGLIBC_TUNABLES={tunables!r} (glibc.malloc.hugetlb=1: huge pages, fewer page faults)")
    print(f"\npeak memory (RSS) of this process: {peak_rss_mb():.0f} MB")
    for line in trained_agreement(tmp, a.variants):
        print(line)


if __name__ == "__main__":
    main()
