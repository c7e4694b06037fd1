"""``trus-hf`` command line: each subcommand is a few lines over the library. ``trus-hf <command> --help``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

THRESHOLD_HELP = "mask threshold for every label (default: the model's tuned threshold per label, else 0.5)"
logger = logging.getLogger("trus_hf")


def _list_inputs(path: Path) -> list[Path]:
    from .fileio import DICOM_EXTENSIONS, IMAGE_EXTENSIONS

    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"{path}: no such file or folder")
    files = sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS + DICOM_EXTENSIONS
    )
    if not files:
        raise ValueError(f"{path}: no image files ({', '.join(IMAGE_EXTENSIONS + DICOM_EXTENSIONS)})")
    return files


# ------------------------------------------------------------------------------------------------ commands
def cmd_synth(a: argparse.Namespace) -> None:
    from .synthetic import PRESETS, write_phantom_dataset

    config = PRESETS[a.preset]
    if a.lesion_contrast is not None:
        config = config.replace(lesion_contrast=tuple(a.lesion_contrast))
    out = write_phantom_dataset(
        a.out,
        a.n,
        (a.size, a.size),
        seed=a.seed,
        config=config,
        target=a.target,
        overwrite=a.overwrite,
    )
    print(f"wrote {a.n} phantoms to {out} (images/, masks/, metadata.jsonl)")


def cmd_predict(a: argparse.Namespace) -> None:
    import numpy as np
    from accelerate import PartialState

    from .fileio import read_image, write_csv, write_png
    from .pipeline import SegmentationPipeline
    from .progress import progress
    from .visualization import overlay

    state = PartialState()
    pipe = SegmentationPipeline.from_pretrained(
        a.model,
        backend=a.backend,
        revision=a.revision,
        threshold=a.threshold,
        largest_component_only=a.largest_component,
        tta_flip=a.tta,
        batch_size=a.batch_size,
        device=state.device if a.backend == "torch" else None,
    )
    files = _list_inputs(Path(a.input))
    out = Path(a.out)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    rows, failures = [], []
    with state.split_between_processes(files) as mine:
        for start in progress(
            range(0, len(mine), a.batch_size), desc="predicting", unit="batch", enabled=state.is_local_main_process
        ):
            chunk = mine[start : start + a.batch_size]
            images = []
            for f in chunk:
                try:
                    images.append((f, read_image(f)))
                except ValueError as exc:
                    failures.append((str(f), str(exc)))
            if not images:
                continue
            for (f, img), res in zip(images, pipe.predict([im for _, im in images])):
                rel = f.relative_to(a.input).with_suffix(".png") if Path(a.input).is_dir() else Path(f.stem + ".png")
                write_png(out / "masks" / rel, res.mask * 255)
                write_png(out / "overlays" / rel, overlay(img, res.mask))
                rows.append(
                    {
                        "file": str(f),
                        "mask": str(out / "masks" / rel),
                        "foreground_pixels": int(res.mask.sum()),
                        "max_probability": float(np.max(res.probabilities)),
                        **{f"{k}_ms": round(v, 2) for k, v in res.timings_ms.items()},
                    }
                )
    suffix = f".{state.process_index}" if state.num_processes > 1 else ""
    if rows:
        write_csv(out / f"predictions{suffix}.csv", rows)
    for f, why in failures:
        print(f"skipped {f}: {why}", file=sys.stderr)
    print(f"{len(rows)} masks written to {out / 'masks'}; {len(failures)} file(s) skipped")


def cmd_train(a: argparse.Namespace, rest: Sequence[str]) -> None:
    from .training import main_train

    main_train(a.architecture, rest, prog=f"trus-hf train {a.architecture}")


def cmd_evaluate(a: argparse.Namespace) -> None:
    from .data import load_dataset
    from .evaluation import evaluate_models
    from .pipeline import SegmentationPipeline

    names = a.name or []
    if names and len(names) != len(a.model):
        raise ValueError(f"give one --name per --model ({len(a.model)} models, {len(names)} names)")
    names = names or [Path(m).name if Path(m).exists() else m for m in a.model]
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names, 1)]
    pipes = {
        n: SegmentationPipeline.from_pretrained(m, backend=a.backend, threshold=a.threshold, tta_flip=a.tta)
        for n, m in zip(names, a.model)
    }
    # phantoms know every label: a synthetic source is scored on all the models' labels unless told otherwise
    labels = a.labels or (next(iter(pipes.values())).labels if str(a.data).startswith("synthetic:") else None)
    dsd = load_dataset(a.data, strict=not a.skip_invalid, labels=labels)
    split = a.split or ("test" if "test" in dsd else "train")
    if split not in dsd:
        raise ValueError(f"split {split!r} not in dataset; available: {list(dsd)}")
    summary = evaluate_models(pipes, dsd[split], a.out)
    for n in names:
        s = summary["models"][n]
        print(
            f"{n}: IoU {s['iou']['mean']:.4f} [{s['iou']['ci95'][0]:.4f}, {s['iou']['ci95'][1]:.4f}]  "
            f"Dice {s['dice']['mean']:.4f}"
        )
    for pair, comp in summary.get("comparisons", {}).items():
        c = comp["iou"]
        print(
            f"{pair}: IoU difference {c['mean_difference']:+.4f}, Wilcoxon p={c['wilcoxon_p']:.3g}, "
            f"wins {c['wins_a']}/{c['wins_b']}"
        )
    print(f"report: {summary['report']}")


def cmd_tune_postprocessing(a: argparse.Namespace) -> None:
    from .data import load_dataset
    from .evaluation import describe_input_size, describe_postprocessing, tune_input_size, tune_postprocessing
    from .pipeline import SegmentationPipeline, kfold_members

    folder = Path(a.model)
    members = kfold_members(folder) or [folder]  # a k-fold run: its ensemble is tuned, every fold model written
    for member in members:
        if not (member / "preprocessor_config.json").is_file():
            raise ValueError(
                f"{member}: not a local model folder with a preprocessor_config.json (the tuned settings are "
                "written there; download a Hub model with `huggingface-cli download` first)"
            )
    pipe = SegmentationPipeline.from_pretrained(members, device="cpu")
    labels = pipe.labels if str(a.data).startswith("synthetic:") else None
    dsd = load_dataset(a.data, strict=True, labels=labels)
    if a.split not in dsd:
        raise ValueError(f"split {a.split!r} not in dataset; available: {list(dsd)}")
    processor = pipe.processor
    if a.input_sizes:  # first the size, at the model's current thresholds; then the thresholds at that size
        sized = tune_input_size(
            [(pipe, dsd[a.split])], a.input_sizes, on=f"{a.split!r} frames of {a.data}", multiscale=a.multiscale
        )
        print(describe_input_size(sized))
        processor.set_input_size(sized)
    tuned = tune_postprocessing(pipe, dsd[a.split], group_column=a.group_column, max_missed=a.max_missed)
    print("\n".join(describe_postprocessing(tuned)))
    processor.set_postprocessing(tuned["mask_threshold"], tuned["min_mask_fraction"])
    for member in members:
        processor.save_pretrained(member)
        print(f"written to {member / 'preprocessor_config.json'}")


def _quantization_options(a: argparse.Namespace) -> dict:
    """The quantizer settings given on the command line (none given: `export_onnx` tries its candidates)."""
    options = {}
    if a.calibration_method:
        options["method"] = a.calibration_method
    if a.quant_format:
        options["quant_format"] = a.quant_format
    if a.exclude:
        options["exclude"] = None if a.exclude == ["none"] else ("ends" if a.exclude == ["ends"] else a.exclude)
    if a.int8_scope:
        options["scope"] = a.int8_scope
    return options


def cmd_export_onnx(a: argparse.Namespace) -> None:
    from .export import export_kfold, export_onnx
    from .pipeline import kfold_members

    options = dict(
        opset=a.opset,
        int8={"auto": "auto", "yes": True, "no": False}[a.int8],
        calibration_data=a.calibration_data,
        calibration_size=a.calibration_size,
        verify=not a.no_check,
        **_quantization_options(a),
    )
    if Path(a.model).is_dir() and kfold_members(a.model) is not None:  # a k-fold run: every fold model
        for info in export_kfold(a.model, a.out, **options):
            _print_export(info)
        print(f"k-fold run exported to {a.out}: load it as one ensemble with SegmentationPipeline.from_pretrained")
        return
    _print_export(export_onnx(a.model, a.out, **options))


def _print_export(info: dict) -> None:
    print(json.dumps(info, indent=1))
    for q in info.get("int8_candidates", []):
        print(
            f"INT8 candidate {q['settings']}: agreement mean {q['mean']:.4f}, min {q['min']:.4f}; "
            f"{q['time_ratio']:.2f}x fp32 time"
        )
    if "int8" in info:
        q = info["int8"]
        print(
            f"INT8 vs fp32: mask IoU agreement mean {q['mean']:.4f}, min {q['min']:.4f} on {q['frames']} held-out "
            f"phantoms; {q['int8_ms']:.1f} ms vs {q['fp32_ms']:.1f} ms ({q['time_ratio']:.2f}x); "
            f"preferred file: {info['preferred']}"
        )
        if "qdq_propagation_ms" in q:
            ms = q["qdq_propagation_ms"]
            state = "off" if info.get("runtime", {}).get("model_int8.onnx") else "on"
            print(f"ONNX Runtime's QDQ propagation: on {ms['on']:.1f} ms, off {ms['off']:.1f} ms; runs with it {state}")
        offset = q.get("weight_zero_point_offset", {})
        if offset.get("tensors"):
            print(
                f"Weights with zero point 0 (symmetric convolution kernels) {offset['zero_ms']:.1f} ms, offset to -1 "
                f"(integer GEMM kernels) {offset['offset_ms']:.1f} ms; kept: {'offset' if offset['kept'] else 'zero'}"
            )


def cmd_push(a: argparse.Namespace) -> None:
    from .hub import push_model

    print(push_model(a.model, a.repo_id, private=a.private, revision=a.revision))


def cmd_demo_models(a: argparse.Namespace) -> None:
    from .demo import train_demo_models

    for path in train_demo_models(
        a.out,
        busbra=a.busbra,
        seed=a.seed,
        n_phantoms=a.phantoms,
        scale=a.scale,
        names=tuple(a.model),
        resume=a.resume,
    ):
        print(f"wrote {path}")


def cmd_prepare(a: argparse.Namespace) -> None:
    from .prepare import prepare_frames

    report = prepare_frames(
        a.raw_dir,
        a.out,
        every=a.every,
        on_change=a.on_change,
        salt=a.salt,
        crop=not a.no_crop,
        drop_duplicates=a.drop_duplicates,
        overwrite=a.overwrite,
        resume=a.resume,
    )
    print(report.summary())


def cmd_import_labels(a: argparse.Namespace) -> None:
    from .data import parse_label_map, parse_missing_labels
    from .prepare import import_labels

    values = {lb: [int(v) for v in vs] for lb, vs in (parse_label_map(a.label_values) or {}).items()} or None
    report = import_labels(
        a.export,
        a.out,
        format=a.format,
        categories=a.category,
        push_to_hub=a.push_to_hub,
        test_size=a.test_size,
        seed=a.seed,
        overwrite=a.overwrite,
        mask_suffix=a.mask_suffix,
        labels=a.labels,
        label_map=parse_label_map(a.label_map),
        label_values=values,
        missing_labels=parse_missing_labels(a.missing_labels),
    )
    print(report)


def cmd_export_for_labeling(a: argparse.Namespace) -> None:
    from .prepare import export_for_labeling

    path = export_for_labeling(a.model, a.images, a.out, threshold=a.threshold, overwrite=a.overwrite)
    print(f"wrote {path}")


# ------------------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trus-hf", description="TRUS segmentation: data, training, evaluation, export.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress and details (same as --log-level info)")
    p.add_argument(
        "--log-level",
        default=None,
        choices=["debug", "info", "warning", "error"],
        help="logging level (default: info for the long jobs train, demo-models and export-onnx, else warning)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write synthetic TRUS phantoms with masks")
    s.add_argument("--n", type=int, required=True, help="number of frames")
    s.add_argument("--out", required=True, help="output folder (images/, masks/, metadata.jsonl)")
    s.add_argument("--size", type=int, default=512, help="frame size (square)")
    s.add_argument("--seed", type=int, default=0, help="first seed; frame i uses seed+i")
    s.add_argument("--target", choices=["lesion", "gland"], default="lesion", help="which mask is the label")
    s.add_argument(
        "--preset",
        choices=["default", "clean", "hard", "wide", "shifted"],
        default="default",
        help="generator settings: default (training ranges), clean, hard, wide (hard's probe and display ranges, "
        "default lesions), shifted (outside the defaults)",
    )
    s.add_argument(
        "--lesion-contrast",
        type=float,
        nargs="+",
        default=None,
        metavar="C",
        help="lesion/surrounding echo amplitude, one value or a LOW HIGH range (1 = isoechoic)",
    )
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    s.set_defaults(func=cmd_synth, parser=s)

    s = sub.add_parser("predict", help="predict masks for a file or a folder")
    s.add_argument(
        "--model",
        required=True,
        nargs="+",
        help="model folder(s) or Hub ID(s); several = ensemble, as is a k-fold run's output folder (its fold models)",
    )
    s.add_argument("--input", required=True, help="image file or folder")
    s.add_argument("--out", required=True, help="output folder (masks/, overlays/, predictions.csv)")
    s.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    s.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    s.add_argument("--threshold", type=float, default=None, help=THRESHOLD_HELP)
    s.add_argument("--batch-size", type=int, default=4)
    s.add_argument("--tta", action="store_true", help="horizontal-flip test-time augmentation")
    s.add_argument("--largest-component", action="store_true", help="keep only the largest connected component")
    s.set_defaults(func=cmd_predict, parser=s)

    s = sub.add_parser(
        "train", help="train a model (see train_fpn.py / train_segformer.py --help for options)", add_help=False
    )
    s.add_argument("architecture", choices=["fpn", "segformer"])
    s.set_defaults(func=cmd_train, passthrough=True, parser=s, long_job=True)

    s = sub.add_parser("evaluate", help="evaluate and compare models; writes an HTML report")
    s.add_argument(
        "--model",
        required=True,
        action="append",
        help="model folder or Hub ID (repeat to compare); a k-fold run's output folder is the ensemble of its folds",
    )
    s.add_argument("--name", action="append", help="display name per --model")
    s.add_argument("--data", required=True, help="dataset (folder, COCO json, Hub ID, synthetic:N)")
    s.add_argument("--split", default=None, help="split to evaluate (default: test if present, else train)")
    s.add_argument("--out", required=True, help="report folder")
    s.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    s.add_argument("--threshold", type=float, default=None, help=THRESHOLD_HELP)
    s.add_argument("--skip-invalid", action="store_true", help="skip invalid pairs (listed) instead of failing")
    s.add_argument("--tta", action="store_true", help="horizontal-flip test-time augmentation for every model")
    s.add_argument(
        "--labels",
        nargs="+",
        default=None,
        help="labels to score, from mask_<label> columns (default: the dataset's; synthetic: the models' labels)",
    )
    s.set_defaults(func=cmd_evaluate, parser=s)

    s = sub.add_parser(
        "tune-postprocessing",
        help="choose each label's threshold and smallest kept component on VALIDATION data; saved in the model folder",
    )
    s.add_argument(
        "--model",
        required=True,
        help="local model folder (its preprocessor_config.json is updated), or a k-fold run's folder (its ensemble "
        "is tuned and every fold model's processor updated)",
    )
    s.add_argument("--data", required=True, help="validation dataset (folder, COCO json, Hub ID, synthetic:N)")
    s.add_argument("--split", default="validation", help="split to tune on (never the test split)")
    s.add_argument(
        "--input-sizes",
        nargs="+",
        type=int,
        default=None,
        help="first choose the model input side among these and the trained one (e.g. 224 256 288 320)",
    )
    s.add_argument(
        "--multiscale",
        action="store_true",
        help="with --input-sizes, also try averaging all those sides (one forward pass per side)",
    )
    s.add_argument(
        "--group-column", default="source", help="column whose groups weigh the same (e.g. lesion-free frames)"
    )
    s.add_argument(
        "--max-missed",
        type=float,
        default=None,
        help="keep, in every group, the share of annotated frames still marked within this of the plain "
        "setting's (e.g. 0.05: lesions matter more than empty frames); default: no such limit",
    )
    s.set_defaults(func=cmd_tune_postprocessing, parser=s)

    s = sub.add_parser("export-onnx", help="export to ONNX (optionally INT8) with a parity check")
    s.add_argument(
        "--model", required=True, help="model folder or Hub ID, or a k-fold run's folder (every fold model exported)"
    )
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--opset", type=int, default=None, help="ONNX opset (default: trus_hf.export.DEFAULT_OPSET)")
    s.add_argument(
        "--int8",
        choices=["auto", "yes", "no"],
        nargs="?",
        const="yes",
        default="auto",
        help="static INT8 model_int8.onnx: auto (default) keeps it only where it agrees with fp32 and is faster; "
        "yes keeps it always; no skips it",
    )
    s.add_argument("--calibration-data", default=None, help="dataset for INT8 calibration (default: phantoms)")
    s.add_argument("--calibration-size", type=int, default=16)
    s.add_argument(
        "--calibration-method",
        choices=["minmax", "entropy", "percentile"],
        default=None,
        help="INT8 calibration (default minmax)",
    )
    s.add_argument("--quant-format", choices=["qdq", "qoperator"], default=None, help="INT8 format (default qdq)")
    s.add_argument(
        "--exclude",
        nargs="+",
        default=None,
        help="nodes kept in fp32: 'ends' (first and last), 'none', or node names. Without any of these four "
        "options, --int8 auto tries 'ends', 'none' and (on a transformer) 'none' with --int8-scope conv_head, "
        "and keeps the fastest that agrees with fp32",
    )
    s.add_argument(
        "--int8-scope",
        choices=["all", "conv_head"],
        default=None,
        help="nodes quantized: all (default) or only the convolutions and the decode head after the last layer "
        "normalization (attention and normalizations stay fp32)",
    )
    s.add_argument("--no-check", action="store_true", help="skip the PyTorch parity check")
    s.set_defaults(func=cmd_export_onnx, parser=s, long_job=True)

    s = sub.add_parser("push", help="push a model folder to the Hub (card with metrics, ONNX when present)")
    s.add_argument(
        "--model", required=True, help="model folder, or a k-fold run's folder (loaded back by Hub ID as its ensemble)"
    )
    s.add_argument("--repo-id", required=True, help="Hub repo ID, e.g. org/trus-fpn")
    s.add_argument("--private", action="store_true")
    s.add_argument("--revision", default=None, help="branch to push to")
    s.set_defaults(func=cmd_push, parser=s)

    s = sub.add_parser(
        "demo-models", help="train the bundled models on phantoms (+ BUS-BRA when given), deterministically"
    )
    s.add_argument("--out", default=str(Path(__file__).parent / "demo_models"))
    s.add_argument(
        "--busbra",
        default=None,
        help="BUS-BRA folder (real breast ultrasound; the Toshiba scanner is held out). Without it the "
        "models learn from phantoms only",
    )
    s.add_argument("--phantoms", type=int, default=3000, help="training phantoms")
    s.add_argument("--scale", type=float, default=1.0, help="multiply the training steps (e.g. 0.1 for a quick try)")
    s.add_argument("--model", nargs="+", choices=["fpn", "segformer"], default=["fpn", "segformer"])
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--resume", action="store_true", help="continue each model from its last checkpoint (after a killed run)"
    )
    s.set_defaults(func=cmd_demo_models, parser=s, long_job=True)

    s = sub.add_parser("prepare", help="raw frames (DICOM, images, videos) -> anonymised PNGs + manifest")
    s.add_argument("raw_dir")
    s.add_argument("--out", required=True)
    s.add_argument("--every", type=int, default=1, help="video: keep every N-th frame")
    s.add_argument("--on-change", type=float, default=0.0, help="video: keep a frame when it differs by > this")
    s.add_argument("--salt", default="trus-hf", help="salt of the pseudonymous group IDs")
    s.add_argument("--no-crop", action="store_true", help="keep the scanner UI (no ROI crop)")
    s.add_argument("--drop-duplicates", action="store_true", help="drop near-duplicate frames")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--resume", action="store_true", help="skip sources already in the manifest")
    s.set_defaults(func=cmd_prepare, parser=s)

    s = sub.add_parser("import-labels", help="labeling export -> validated datasets dataset + card + report")
    s.add_argument("export")
    s.add_argument("--format", default="auto", help="coco, roboflow-masks, yolo-seg, cvat-masks, folder, auto")
    s.add_argument("--out", required=True)
    s.add_argument("--category", action="append", help="keep only these categories (repeatable)")
    s.add_argument("--mask-suffix", default="")
    s.add_argument("--test-size", type=float, default=0.0, help="group-aware test split fraction if none exists")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--push-to-hub", default=None, help="dataset repo ID")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--labels", nargs="+", default=None, help="several labels, e.g. gland lesion (mask_<label> columns)")
    s.add_argument("--label-map", default=None, help="categories of each label: 'gland=prostate;lesion=tumor,pca'")
    s.add_argument("--label-values", default=None, help="indexed masks: pixel values per label: 'gland=1,2;lesion=2'")
    s.add_argument(
        "--missing-labels",
        default="error",
        help="a label without annotation on an image: error, ignore, empty, or 'lesion=empty,gland=ignore'",
    )
    s.set_defaults(func=cmd_import_labels, parser=s)

    s = sub.add_parser("export-for-labeling", help="images + model predictions as COCO pre-annotations")
    s.add_argument("--model", required=True)
    s.add_argument("--images", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--threshold", type=float, default=None, help=THRESHOLD_HELP)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_export_for_labeling, parser=s)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand. A wrong option or value: the usage line and the reason on stderr, exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    command = getattr(args, "parser", parser)
    default_level = "info" if getattr(args, "long_job", False) else "warning"
    level = logging.INFO if args.verbose else getattr(logging, (args.log_level or default_level).upper())
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    if rest and not getattr(args, "passthrough", False):
        command.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if getattr(args, "passthrough", False):
            args.func(args, rest)
        else:
            args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        command.print_usage(sys.stderr)
        print(f"{command.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
