"""Post-processing tuned on validation data: per-label thresholds and smallest kept components, stored in the
processor, applied by the pipeline, chosen by `tune_postprocessing`; the input size chosen by `tune_input_size`."""

import datasets
import numpy as np
import pytest
from conftest import tiny_model, tiny_processor
from PIL import Image

from trus_hf import SegmentationPipeline, TrusImageProcessor, load_model
from trus_hf.data import synthetic_dataset
from trus_hf.evaluation import (
    TUNE_FRACTIONS,
    TUNE_THRESHOLDS,
    evaluate_dataset,
    postprocessing_scores,
    tune_input_size,
    tune_postprocessing,
)
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


def test_max_missed_keeps_the_lesions_that_lesion_free_frames_would_tune_away():
    """Six lesion frames and the same six marked lesion-free, as two groups: an untrained model finds the lesions
    poorly, so marking nothing scores best on average (lesion-free 1, lesions 0). With ``max_missed=0`` the tuning
    must keep marking every lesion the plain setting marks, and the pipeline must then score what it reports."""
    ds = synthetic_dataset(8, 96, seed=5, config="clean", labels=["lesion"])
    ds = ds.filter(lambda r: np.asarray(r["mask_lesion"]).any())
    empty = ds.map(
        lambda r: {
            "mask_lesion": Image.fromarray(np.zeros(np.asarray(r["mask_lesion"]).shape, np.uint8)),
            "source": "lesion-free",
        }
    )
    both = datasets.concatenate_datasets([ds, empty.cast(ds.features)])
    processor = tiny_processor()
    pipe = SegmentationPipeline(tiny_model("fpn", seed=0), processor, device="cpu")
    scores = postprocessing_scores(pipe, both)["lesion"]
    assert set(scores) == {"synthetic", "lesion-free"}
    assert scores["synthetic"].n_positive == len(ds) and scores["lesion-free"].n_positive == 0
    plain = (TUNE_THRESHOLDS.index(0.5), TUNE_FRACTIONS.index(0.0))
    assert scores["synthetic"].found[plain] == 1.0  # the plain setting marks a pixel of every lesion

    def chosen(tuned):
        return TUNE_THRESHOLDS.index(tuned["mask_threshold"]["lesion"]), TUNE_FRACTIONS.index(
            tuned["min_mask_fraction"]["lesion"]
        )

    free = tune_postprocessing(pipe, both)
    assert scores["synthetic"].found[chosen(free)] == 0.0  # unguarded, it tunes every lesion away
    guarded = tune_postprocessing(pipe, both, max_missed=0.0)
    assert scores["synthetic"].found[chosen(guarded)] == 1.0
    assert guarded["iou"]["lesion"] < free["iou"]["lesion"]  # the price, on these frames
    processor.set_postprocessing(guarded["mask_threshold"], guarded["min_mask_fraction"])
    rows = evaluate_dataset(pipe, both)
    per_group = [aggregate(rows[: len(ds)])["mean_iou"], aggregate(rows[len(ds) :])["mean_iou"]]
    assert np.mean(per_group) == pytest.approx(guarded["iou"]["lesion"], abs=1e-6)
    with pytest.raises(ValueError, match=r"max_missed must be a share in \[0, 1\] \(got 1.5\)"):
        tune_postprocessing(pipe, both, max_missed=1.5)
    with pytest.raises(ValueError, match=r"thresholds must include 0.5 \(got \(0.3, 0.7\)\)"):
        tune_postprocessing(pipe, both, thresholds=(0.3, 0.7), max_missed=0.05)


def test_input_size_tuning_reports_real_scores_keeps_the_trained_size_within_min_gain_and_round_trips(tmp_path):
    ds = synthetic_dataset(6, 96, seed=2, config="clean", labels=["lesion"])
    processor = tiny_processor()
    pipe = SegmentationPipeline(tiny_model("fpn", seed=1), processor, device="cpu")
    tuned = tune_input_size([(pipe, ds)], [96, 32], min_gain=-1.0)  # any gain counts: the best side
    assert list(tuned["scores"]) == ["32", "64", "96"] and tuned["frames"] == 6
    best = max(tuned["scores"], key=tuned["scores"].get)
    assert tuned["size"] == {"height": int(best), "width": int(best)}
    assert pipe.processor is processor and processor.size == {"height": 64, "width": 64}  # tuning changes nothing
    # the reported score is the pipeline's mean IoU at that side, as evaluation measures it
    pipe.processor = processor.with_size(96)
    assert aggregate(evaluate_dataset(pipe, ds))["mean_iou"] == pytest.approx(tuned["scores"]["96"], abs=1e-4)
    pipe.processor = processor
    kept = tune_input_size([(pipe, ds)], [96, 32], min_gain=2.0)  # no side gains 2 IoU: the trained one stays
    assert kept["size"] == {"height": 64, "width": 64} and kept["scores"] == tuned["scores"]
    processor.set_input_size({**tuned, "size": {"height": 96, "width": 96}})
    tiny_model("fpn").save_pretrained(tmp_path, processor=processor)
    _, loaded = load_model(tmp_path)
    assert loaded.size == {"height": 96, "width": 96} and loaded.trained_size == {"height": 64, "width": 64}
    assert loaded.size_selection["scores"] == tuned["scores"]
    loaded.set_input_size()  # back to the size the weights were trained at
    assert loaded.size == {"height": 64, "width": 64} and loaded.size_selection is None
    both = tune_input_size([(pipe, ds)], [96, 32], min_gain=-1.0, multiscale=True)  # one more: all sides averaged
    assert both["scores"]["32+64+96"] >= 0 and {k: both["scores"][k] for k in tuned["scores"]} == tuned["scores"]
    best = max(both["scores"], key=both["scores"].get)
    assert both["multiscale"] == ([32, 64, 96] if best == "32+64+96" else None)
    assert both["size"]["height"] == (64 if both["multiscale"] else int(best))
    with pytest.raises(ValueError, match="size_selection needs the size trained at"):
        TrusImageProcessor(size_selection={"trained": 64})
    with pytest.raises(ValueError, match="input sides must be at least 32 pixels"):
        tune_input_size([(pipe, ds)], [8])
