"""Post-processing tuned on validation data: per-label thresholds and smallest kept components, stored in the
processor, applied by the pipeline, chosen by `tune_postprocessing`."""

import numpy as np
import pytest
from conftest import tiny_model, tiny_processor
from PIL import Image

from trus_hf import SegmentationPipeline, TrusImageProcessor, load_model
from trus_hf.data import synthetic_dataset
from trus_hf.evaluation import evaluate_dataset, tune_postprocessing
from trus_hf.metrics import aggregate


def _blobs():
    prob = np.zeros((100, 100), np.float32)
    prob[10:40, 10:40] = 0.9  # a large confident region (9% of the image)
    prob[70:73, 70:73] = 0.9  # a speck (0.09%)
    prob[50:60, 10:20] = 0.6  # a doubtful region (1%)
    return prob


def test_processor_applies_per_label_thresholds_and_drops_small_components():
    prob = _blobs()
    plain = TrusImageProcessor().masks_from_probabilities({"lesion": prob, "gland": prob})
    assert plain["lesion"].sum() == 900 + 9 + 100  # untuned: 0.5, nothing dropped
    tuned = TrusImageProcessor(mask_threshold={"lesion": 0.7}, min_mask_fraction={"lesion": 0.005})
    masks = tuned.masks_from_probabilities({"lesion": prob, "gland": prob})
    assert masks["lesion"].sum() == 900  # the doubtful region is under 0.7, the speck under 0.5% of the image
    assert masks["gland"].sum() == 1009  # a label not tuned keeps 0.5 and every component
    # a threshold for every label replaces the tuned one; the tuned component filter stays unless overridden
    assert tuned.masks_from_probabilities({"lesion": prob}, threshold=0.5)["lesion"].sum() == 1000
    assert tuned.masks_from_probabilities({"lesion": prob}, threshold=0.5, min_fraction=0)["lesion"].sum() == 1009


def test_tuned_settings_survive_save_and_load_and_bad_values_are_refused(tmp_path):
    model = tiny_model("fpn")
    model.save_pretrained(
        tmp_path, processor=tiny_processor(mask_threshold={"lesion": 0.8}, min_mask_fraction={"lesion": 0.002})
    )
    _, processor = load_model(tmp_path)
    assert processor.mask_threshold == {"lesion": 0.8} and processor.min_mask_fraction == {"lesion": 0.002}
    with pytest.raises(ValueError, match=r"mask_threshold values must lie in \[0.0, 1.0\], got \{'lesion': 1.5\}"):
        TrusImageProcessor(mask_threshold={"lesion": 1.5})
    with pytest.raises(ValueError, match="min_mask_fraction must map label names to numbers"):
        TrusImageProcessor(min_mask_fraction=0.01)
    with pytest.raises(ValueError, match="min_component_fraction must be in"):
        SegmentationPipeline(model, processor, min_component_fraction=0.9)


def test_tuning_delivers_what_it_reports_and_never_scores_below_the_plain_setting():
    """An untrained tiny model marks noise on lesion-free frames; tuning on them must find settings at least as
    good as 0.5 without filtering, and the pipeline with the tuned processor must then score exactly that."""
    ds = synthetic_dataset(6, 96, seed=5, config="clean", labels=["lesion"])
    # lesion-free frames (a PIL image: datasets' map would turn a numpy array into int64 lists)
    ds = ds.map(lambda r: {"mask_lesion": Image.fromarray(np.zeros(np.asarray(r["mask_lesion"]).shape, np.uint8))})
    processor = tiny_processor()
    pipe = SegmentationPipeline(tiny_model("fpn", seed=3), processor, device="cpu")
    plain = aggregate(evaluate_dataset(pipe, ds))["mean_iou"]
    tuned = tune_postprocessing(pipe, ds)
    assert tuned["untuned_iou"]["lesion"] == pytest.approx(plain, abs=1e-6)
    assert tuned["iou"]["lesion"] > plain  # the random model marks something; the tuned setting marks less
    assert tuned["n_images"]["lesion"] == 6
    processor.set_postprocessing(tuned["mask_threshold"], tuned["min_mask_fraction"])
    assert aggregate(evaluate_dataset(pipe, ds))["mean_iou"] == pytest.approx(tuned["iou"]["lesion"], abs=1e-6)
