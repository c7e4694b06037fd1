import csv

import numpy as np
import pytest
from PIL import Image

from trus_hf import SegmentationPipeline, load_model
from trus_hf.cli import main
from trus_hf.pipeline import largest_component
from trus_hf.synthetic import generate_phantom


@pytest.fixture(scope="module")
def pipe(saved_models):
    model, proc = load_model(saved_models["segformer"])
    return SegmentationPipeline(model, proc)


def test_all_input_kinds_give_masks_at_original_size(pipe, tmp_path):
    ph = generate_phantom(4, (150, 210))
    path = tmp_path / "f.png"
    Image.fromarray(ph.image).save(path)
    results = [pipe(path), pipe(Image.fromarray(ph.image)), pipe(ph.image), pipe(np.stack([ph.image] * 3, -1))]
    for r in results:
        assert r.mask.shape == (150, 210) and r.mask.dtype == np.uint8 and set(np.unique(r.mask)) <= {0, 1}
        assert r.probabilities.shape == (150, 210) and 0 <= r.probabilities.min() <= r.probabilities.max() <= 1
        assert np.array_equal(r.mask, results[0].mask)
    assert results[0].source == str(path)
    batch = pipe([ph.image, generate_phantom(5, (90, 90)).image])
    assert [r.mask.shape for r in batch] == [(150, 210), (90, 90)]


def test_ground_truth_gives_metrics_and_threshold_matters(pipe, saved_models):
    ph = generate_phantom(6, (128, 128))
    r = pipe(ph.image, ground_truth=ph.gland_mask * 255)
    assert 0.0 <= r.iou <= 1.0 and 0.0 <= r.dice <= 1.0 and r.metrics["target_area"] == ph.gland_mask.sum()
    assert set(r.timings_ms) == {"preprocess", "inference", "postprocess"}
    model, proc = load_model(saved_models["segformer"])
    low = SegmentationPipeline(model, proc, threshold=0.0)(ph.image)
    assert low.mask.sum() >= r.mask.sum()
    with pytest.raises(ValueError, match="differs from the image"):
        pipe(ph.image, ground_truth=np.zeros((10, 10), np.uint8))


def test_tta_and_ensemble_average(saved_models):
    m1, proc = load_model(saved_models["fpn"])
    m2, _ = load_model(saved_models["segformer"])
    ph = generate_phantom(2, (96, 96))
    p1 = SegmentationPipeline(m1, proc)(ph.image).probabilities
    p2 = SegmentationPipeline(m2, proc)(ph.image).probabilities
    ens = SegmentationPipeline([m1, m2], proc)(ph.image).probabilities
    logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1))  # noqa: E731
    inside = (p1 > 0) & (p2 > 0)
    expected = 1 / (1 + np.exp(-(logit(p1) + logit(p2)) / 2))
    assert np.abs(ens[inside] - expected[inside]).max() < 1e-3
    tta = SegmentationPipeline(m1, proc, tta_flip=True)(ph.image)
    assert tta.mask.shape == (96, 96)


def test_multiscale_averages_the_probabilities_of_each_side_at_the_original_size(saved_models, tmp_path):
    model, proc = load_model(saved_models["fpn"])
    ph = generate_phantom(3, (90, 110))
    singles = [SegmentationPipeline(model, proc.with_size(side))(ph.image) for side in (64, 96)]
    multi = proc.with_size(64, multiscale=[96, 64])
    assert multi.multiscale == [64, 96] and [p.size["height"] for p in multi.scale_processors()] == [64, 96]
    r = SegmentationPipeline(model, multi, uncertainty=True)(ph.image, ground_truth=ph.lesion_mask)
    stack = np.stack([x.probabilities for x in singles])
    np.testing.assert_allclose(r.probabilities, stack.mean(0), atol=1e-6)
    np.testing.assert_allclose(r.uncertainty, stack.std(0), atol=1e-6)  # the two sides are the two views
    assert r.mask.shape == (90, 110) and np.array_equal(r.mask, (r.probabilities > 0.5).astype(np.uint8))
    assert r.iou is not None and set(r.timings_ms) == {"preprocess", "inference", "postprocess"}
    model.save_pretrained(tmp_path, processor=multi)  # saved with the model: the loaded pipeline averages too
    again = SegmentationPipeline.from_pretrained(tmp_path)(ph.image)
    np.testing.assert_allclose(again.probabilities, r.probabilities, atol=1e-6)
    with pytest.raises(ValueError, match="multiscale needs at least two positive input sides"):
        proc.with_size(64, multiscale=[64])


def test_largest_component():
    m = np.zeros((20, 20), np.uint8)
    m[1:3, 1:3] = 1
    m[10:18, 10:18] = 1
    out = largest_component(m)
    assert out.sum() == 64 and out[1, 1] == 0


def test_predict_cli_writes_masks_overlays_and_csv(saved_models, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for s in range(3):
        Image.fromarray(generate_phantom(s, (100, 120)).image).save(src / f"f{s}.png")
    (src / "broken.png").write_bytes(b"not a png")
    code = main(["predict", "--model", str(saved_models["fpn"]), "--input", str(src), "--out", str(tmp_path / "out")])
    assert code == 0
    masks = sorted((tmp_path / "out" / "masks").glob("*.png"))
    assert [m.name for m in masks] == ["f0.png", "f1.png", "f2.png"]
    assert np.asarray(Image.open(masks[0])).shape == (100, 120)
    assert len(list((tmp_path / "out" / "overlays").glob("*.png"))) == 3
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert len(rows) == 3 and {"file", "mask", "foreground_pixels", "inference_ms"} <= set(rows[0])
