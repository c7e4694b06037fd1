import evaluate
import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch

from trus_hf.metrics import EVALUATE_MODULE_PATH, aggregate, binary_metrics, hd95


def test_empty_mask_convention():
    z = np.zeros((8, 8), np.uint8)
    one = z.copy()
    one[2:4, 2:4] = 1
    both_empty = binary_metrics(z, z)
    assert both_empty["iou"] == both_empty["dice"] == both_empty["precision"] == both_empty["recall"] == 1.0
    assert binary_metrics(one, z)["iou"] == 0.0 and binary_metrics(z, one)["dice"] == 0.0
    assert binary_metrics(one, z)["recall"] == 0.0 and binary_metrics(z, one)["precision"] == 0.0
    assert hd95(z, z) == 0.0 and hd95(one, z) == float("inf")


def test_cross_check_against_smp_metrics():
    rng = np.random.default_rng(0)
    preds = (rng.random((6, 32, 32)) > 0.6).astype(np.uint8)
    gts = (rng.random((6, 32, 32)) > 0.5).astype(np.uint8)
    ours = [binary_metrics(p, g) for p, g in zip(preds, gts)]
    tp, fp, fn, tn = smp.metrics.get_stats(
        torch.from_numpy(preds[:, None]).long(), torch.from_numpy(gts[:, None]).long(), mode="binary"
    )
    iou_img = smp.metrics.iou_score(tp, fp, fn, tn, reduction="micro-imagewise").item()
    iou_micro = smp.metrics.iou_score(tp, fp, fn, tn, reduction="micro").item()
    f1_img = smp.metrics.f1_score(tp, fp, fn, tn, reduction="micro-imagewise").item()
    agg = aggregate(ours)
    assert agg["mean_iou"] == pytest.approx(iou_img, abs=1e-6)
    assert agg["micro_iou"] == pytest.approx(iou_micro, abs=1e-6)
    assert agg["mean_dice"] == pytest.approx(f1_img, abs=1e-6)
    rec = smp.metrics.recall(tp, fp, fn, tn, reduction="micro-imagewise").item()
    assert agg["mean_recall"] == pytest.approx(rec, abs=1e-6)


def test_hd95_on_shifted_square():
    a = np.zeros((64, 64), np.uint8)
    a[10:30, 10:30] = 1
    b = np.roll(a, 3, axis=1)
    assert hd95(a, b) == pytest.approx(3.0, abs=0.01)


def test_evaluate_module_loads_offline():
    metric = evaluate.load(EVALUATE_MODULE_PATH)
    preds = [np.array([[1, 0], [0, 0]]), np.zeros((2, 2), int)]
    refs = [np.array([[1, 1], [0, 0]]), np.zeros((2, 2), int)]
    out = metric.compute(predictions=preds, references=refs)
    assert out["mean_iou"] == pytest.approx(0.75) and out["micro_iou"] == pytest.approx(0.5)


def test_shape_mismatch_error():
    with pytest.raises(ValueError, match="shapes differ"):
        binary_metrics(np.zeros((2, 2)), np.zeros((3, 3)))
