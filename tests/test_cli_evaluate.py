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
