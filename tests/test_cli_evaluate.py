import csv
import json

import pytest

from trus_hf.cli import build_parser, main
from trus_hf.evaluation import compare

COMMANDS = [
    "synth",
    "predict",
    "evaluate",
    "export-onnx",
    "push",
    "demo-models",
    "prepare",
    "import-labels",
    "export-for-labeling",
    "tune-postprocessing",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: trus-hf {command}" in capsys.readouterr().out


def test_train_subcommand_help_lists_the_training_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "fpn", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--encoder_name" in out and "--folds" in out and "--resume" in out
    assert set(COMMANDS) | {"train"} <= set(build_parser()._subparsers._group_actions[0].choices)


def test_evaluate_compares_two_models_in_one_report(saved_models, tmp_path, capsys):
    out = tmp_path / "report"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(saved_models["fpn"]),
                "--model",
                str(saved_models["segformer"]),
                "--name",
                "FPN",
                "--name",
                "Segformer",
                "--data",
                "synthetic:10:96",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "FPN vs Segformer" in printed and "Wilcoxon" in printed
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert len(rows) == 20 and {r["model"] for r in rows} == {"FPN", "Segformer"}
    assert {"iou", "dice", "precision", "recall", "hd95", "pred_area", "target_area"} <= set(rows[0])
    summary = json.loads((out / "summary.json").read_text())
    s = summary["models"]["FPN"]["iou"]
    assert s["ci95"][0] <= s["mean"] <= s["ci95"][1] and "median" in s and "std" in s
    comp = summary["comparisons"]["FPN vs Segformer"]["iou"]
    assert comp["wins_a"] + comp["wins_b"] + comp["ties"] == 10 and 0 <= comp["wilcoxon_p"] <= 1
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6  # distribution, paired plot, best/worst grids per model
    for name in ("iou_distribution.png", "paired_iou.png", "FPN_worst.png", "Segformer_best.png"):
        assert (out / name).is_file()


def test_paired_comparison_statistics():
    a = [{"iou": v} for v in (0.9, 0.8, 0.85, 0.7, 0.95, 0.6, 0.88, 0.77)]
    b = [{"iou": v - 0.1} for v in (0.9, 0.8, 0.85, 0.7, 0.95, 0.6, 0.88, 0.77)]
    c = compare(a, b)
    assert c["mean_difference"] == pytest.approx(0.1) and c["wins_a"] == 8 and c["wilcoxon_p"] < 0.01
    assert compare(a, a)["wilcoxon_p"] == 1.0
    with pytest.raises(ValueError, match="same images"):
        compare(a, b[:3])


def test_evaluate_scores_every_label_of_a_two_label_model_on_phantoms(tmp_path, capsys):
    from conftest import tiny_processor
    from test_multilabel import LABELS, two_label

    two_label("fpn").save_pretrained(tmp_path / "m", processor=tiny_processor())
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", "synthetic:4:96", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert sorted(r["label"] for r in rows) == sorted(LABELS * 4)  # both labels scored on every phantom
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", "synthetic:4:96", "--labels", "lesion",
                 "--out", str(tmp_path / "lesion_only")]) == 0  # fmt: skip
    assert {r["label"] for r in csv.DictReader(open(tmp_path / "lesion_only" / "per_image.csv"))} == {"lesion"}


def test_tune_postprocessing_writes_the_chosen_settings_into_the_model_folder(saved_models, tmp_path, capsys):
    import shutil

    from trus_hf import load_model

    folder = tmp_path / "model"
    shutil.copytree(saved_models["fpn"], folder)
    assert main(["tune-postprocessing", "--model", str(folder), "--data", "synthetic:4:64", "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "lesion: threshold" in out and "validation IoU" in out
    _, processor = load_model(folder)
    assert set(processor.mask_threshold) == {"lesion"} and set(processor.min_mask_fraction) == {"lesion"}
    # the figures printed are the tuned ones (the tuned IoU is never below the plain setting's)
    before, after = map(float, out.split("validation IoU ")[1].split(" (")[0].split(" -> "))
    assert after >= before


def test_tune_postprocessing_tunes_a_kfold_runs_ensemble_with_its_input_size_into_every_fold(tmp_path, capsys):
    from conftest import tiny_kfold_run

    from trus_hf import load_model

    run = tiny_kfold_run(tmp_path / "k2")
    argv = ["tune-postprocessing", "--model", str(run), "--data", "synthetic:4:64", "--split", "train"]
    assert main([*argv, "--input-sizes", "96", "32"]) == 0
    out = capsys.readouterr().out
    assert "(trained at 64x64); mean IoU on 4 'train' frames of synthetic:4:64 per side: 32: " in out
    chosen = int(out.split("input size ")[1].split("x")[0])
    processors = [load_model(run / f"fold_{i}" / "model")[1] for i in (1, 2)]
    assert all(f"written to {run / f'fold_{i}' / 'model'}" in out for i in (1, 2))
    for processor in processors:
        assert processor.size == {"height": chosen, "width": chosen} and set(processor.mask_threshold) == {"lesion"}
        assert processor.to_dict() == processors[0].to_dict() and processor.trained_size["height"] == 64


def test_tune_postprocessing_refuses_what_it_cannot_write_to_or_tune_on(saved_models, tmp_path, capsys):
    assert main(["tune-postprocessing", "--model", "org/some-model", "--data", "synthetic:2:64"]) == 2
    assert "not a local model folder" in capsys.readouterr().err
    assert main(["tune-postprocessing", "--model", str(saved_models["fpn"]), "--data", "synthetic:2:64"]) == 2
    assert "split 'validation' not in dataset; available: ['train']" in capsys.readouterr().err
    args = ["tune-postprocessing", "--model", str(saved_models["fpn"]), "--data", "synthetic:2:64", "--split", "train"]
    assert main([*args, "--max-missed", "2"]) == 2  # the option reaches tune_postprocessing, which refuses it
    assert "max_missed must be a share in [0, 1] (got 2.0)" in capsys.readouterr().err
