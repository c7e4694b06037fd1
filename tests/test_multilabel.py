"""Gland and lesion in one model: labels through config, loss, processor, pipeline, data, evaluation and export, while
binary models keep working as before."""

import json

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
from conftest import tiny_processor
from PIL import Image
from transformers import SegformerForSemanticSegmentation

from trus_hf import SegmentationPipeline, TrusSegConfig, create_model, load_model
from trus_hf.arrays import IGNORE
from trus_hf.data import load_dataset, load_dataset_with_report, synthetic_dataset
from trus_hf.evaluation import evaluate_models
from trus_hf.export import export_onnx
from trus_hf.losses import DiceBCELoss
from trus_hf.modelcard import render_model_card
from trus_hf.prepare import import_labels
from trus_hf.synthetic import generate_phantom

LABELS = ["gland", "lesion"]


def two_label(arch: str = "fpn", seed: int = 0):
    torch.manual_seed(seed)
    extra = {"encoder_name": "resnet18", "decoder_pyramid_channels": 64, "decoder_segmentation_channels": 32}
    return create_model(TrusSegConfig(architecture=arch, labels=LABELS, **(extra if arch == "fpn" else {}))).eval()


def test_config_names_labels_and_old_configs_still_load():
    c = TrusSegConfig(labels=LABELS)
    assert c.num_labels == 2 and c.primary_label == "lesion" and c.id2label == {0: "gland", 1: "lesion"}
    old = TrusSegConfig.from_dict({"architecture": "segformer", "label": "gland"})
    assert old.labels == ["gland"] and old.primary_label == "gland" and old.label == "gland"
    with pytest.raises(ValueError, match="primary_label 'prostate' is not one of the labels"):
        TrusSegConfig(labels=LABELS, primary_label="prostate")
    with pytest.raises(ValueError, match="one weight >= 0 per label"):
        TrusSegConfig(labels=LABELS, label_weights=[1.0])


def test_loss_leaves_unannotated_labels_out():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 16, 16)
    labels = (torch.rand(2, 2, 16, 16) > 0.5).long()
    only_lesion = labels.clone()
    only_lesion[:, 0] = IGNORE
    single = DiceBCELoss()(logits[:, 1:], labels[:, 1:])
    assert float(DiceBCELoss()(logits, only_lesion)) == pytest.approx(float(single), rel=1e-6)
    weighted = DiceBCELoss(label_weights=[0.0, 1.0])(logits, labels)
    assert float(weighted) == pytest.approx(float(single), rel=1e-6)
    assert float(DiceBCELoss()(logits, torch.full_like(labels, IGNORE))) == 0.0


def test_dice_modes_weigh_a_small_lesion_as_much_as_a_large_one():
    """Two images: a large lesion found exactly, a small one missed. Pooled over the batch (smp), the large one
    decides and the Dice loss is small; per image it is the mean of 0 and 1; balanced (pooled, each image weighted
    by one over its lesion area) about halfway too. A lesion-free image is left to BCE per image, but its false
    marks count in the balanced Dice; IGNORE pixels count in neither; with one image all three agree with smp."""
    labels = torch.zeros(3, 1, 32, 32, dtype=torch.long)
    labels[0, 0, :16, :16] = 1  # 25% of the frame
    labels[1, 0, 20:22, 20:22] = 1  # 0.4%
    logits = torch.full(labels.shape, -20.0)
    logits[0, 0, :16, :16] = 20.0
    pooled = DiceBCELoss(bce_weight=0)(logits, labels)
    per_image = DiceBCELoss(bce_weight=0, dice_mode="image")(logits, labels)
    balanced = DiceBCELoss(bce_weight=0, dice_mode="balanced")
    assert float(pooled) < 0.02 and float(per_image) == pytest.approx(0.5, abs=1e-4)
    # weights 1/256 and 1/5.12 (the floor, 0.5% of 1024 pixels): Dice 2*1 / (2 + 4/5.12) -> loss 0.281
    assert float(balanced(logits, labels)) == pytest.approx(1 - 2 / (2 + 4 / 5.12), abs=1e-4)
    marked = logits.clone()
    marked[2, 0, :4, :4] = 20.0  # 16 false pixels on the lesion-free image
    assert float(DiceBCELoss(bce_weight=0, dice_mode="image")(marked, labels)) == pytest.approx(0.5, abs=1e-4)
    assert float(balanced(marked, labels)) == pytest.approx(1 - 2 / (2 + 4 / 5.12 + 16 / 5.12), abs=1e-4)
    ignored = labels.clone()
    ignored[1] = IGNORE  # the small lesion's image not annotated: only the exact one counts
    for mode in ("image", "balanced"):
        assert float(DiceBCELoss(bce_weight=0, dice_mode=mode)(logits, ignored)) == pytest.approx(0.0, abs=1e-4)
    torch.manual_seed(0)
    x, y = torch.randn(1, 1, 16, 16), (torch.rand(1, 1, 16, 16) > 0.7).long()
    for mode in ("image", "balanced"):
        assert float(DiceBCELoss(dice_mode=mode)(x, y)) == pytest.approx(float(DiceBCELoss()(x, y)), rel=1e-5)
    assert TrusSegConfig(dice_mode="balanced").dice_mode == "balanced" and TrusSegConfig().dice_mode == "batch"
    assert create_model(TrusSegConfig(architecture="segformer", dice_mode="image")).loss_fn.dice_mode == "image"
    # the model card says which Dice a model was trained with
    card = render_model_card(TrusSegConfig(labels=["gland", "lesion"], dice_mode="balanced"), metrics=None)
    assert "Dice (pooled over the batch, each image weighted by one over its lesion area) + 1.0 × BCE" in card
    assert "weighted by one over" not in render_model_card(TrusSegConfig(labels=["gland", "lesion"]), metrics=None)
    # configs saved with the flag of 2026-12-02 still load; an unknown mode is a clear error
    assert TrusSegConfig.from_dict({"dice_per_image": True}).dice_mode == "image"
    with pytest.raises(ValueError, match="unknown dice_mode 'pixel'; valid: batch, image, balanced"):
        TrusSegConfig(dice_mode="pixel")


def test_processor_keeps_an_unannotated_label_unannotated_in_the_padding():
    ph = generate_phantom(1, (120, 160))
    stack = np.stack([np.full(ph.gland_mask.shape, IGNORE, np.uint8), ph.lesion_mask])
    proc = tiny_processor(keep_aspect_ratio=True)
    labels = proc(ph.image, masks=stack, return_tensors="np")["labels"]
    assert labels.shape == (1, 2, 64, 64) and (labels[0, 0] == IGNORE).all()
    assert set(np.unique(labels[0, 1])) <= {0, 1}


@pytest.mark.parametrize("arch", ["fpn", "segformer"])
def test_pipeline_gives_a_mask_per_label_and_scores_each(arch):
    model = two_label(arch)
    pipe = SegmentationPipeline(model, tiny_processor(), threshold=0.5)
    ph = generate_phantom(3, (150, 170), "clean")
    r = pipe(ph.image, ground_truth={"gland": ph.gland_mask, "lesion": ph.lesion_mask})
    assert r.labels == LABELS and r.mask is r.masks["lesion"] and r.masks["gland"].shape == (150, 170)
    assert set(r.label_metrics) == set(LABELS) and r.metrics is r.label_metrics["lesion"]
    assert r.label_probabilities["gland"].shape == (150, 170)
    # a single ground truth is the primary label's
    assert set(pipe(ph.image, ground_truth=ph.lesion_mask).label_metrics) == {"lesion"}


def test_lesion_within_gland_and_uncertainty():
    model = two_label("fpn")
    with torch.no_grad():  # make the lesion channel fire everywhere: only the gland can bound it
        model.net.segmentation_head[0].bias[1] = 20.0
    ph = generate_phantom(3, (150, 170), "clean")
    free = SegmentationPipeline(model, tiny_processor())(ph.image)
    bounded = SegmentationPipeline(model, tiny_processor(), lesion_within_gland=True, tta_flip=True, uncertainty=True)(
        ph.image
    )
    assert free.masks["lesion"][ph.fan_mask.astype(bool)].mean() > 0.9  # everywhere in the imaged sector
    assert not (bounded.masks["lesion"] & ~bounded.masks["gland"].astype(bool)).any()
    assert bounded.uncertainty.shape == (150, 170) and (bounded.uncertainty >= 0).all()
    assert set(bounded.label_uncertainty) == set(LABELS)
    with pytest.raises(ValueError, match="lesion_within_gland needs"):
        SegmentationPipeline(
            create_model(TrusSegConfig(architecture="segformer")), tiny_processor(), lesion_within_gland=True
        )
    with pytest.raises(ValueError, match="uncertainty needs several views"):
        SegmentationPipeline(model, tiny_processor(), uncertainty=True)


def test_folders_load_with_plain_smp_and_transformers(tmp_path):
    fpn, seg = two_label("fpn"), two_label("segformer")
    fpn.save_pretrained(tmp_path / "fpn", processor=tiny_processor())
    seg.save_pretrained(tmp_path / "seg", processor=tiny_processor())
    plain = smp.from_pretrained(str(tmp_path / "fpn"))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(plain(x), fpn(x).logits, atol=1e-5)
    hf = SegformerForSemanticSegmentation.from_pretrained(tmp_path / "seg")
    assert hf.config.id2label == {0: "gland", 1: "lesion"} and hf.config.label2id == {"gland": 0, "lesion": 1}
    loaded, _ = load_model(tmp_path / "seg")
    assert loaded.config.labels == LABELS


def _write_pair(root, folder, name, array):
    (root / folder).mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(root / folder / f"{name}.png")


def test_folder_datasets_with_a_folder_per_label_or_indexed_masks(tmp_path):
    for i in range(3):
        ph = generate_phantom(i, (64, 80), "clean")
        for root in (tmp_path / "per_label", tmp_path / "indexed"):
            _write_pair(root, "images", f"f{i}", ph.image)
        _write_pair(tmp_path / "per_label", "masks_gland", f"f{i}", ph.gland_mask * 255)
        if i < 2:
            _write_pair(tmp_path / "per_label", "masks_lesion", f"f{i}", ph.lesion_mask * 255)
        _write_pair(tmp_path / "indexed", "masks", f"f{i}", (ph.gland_mask + ph.lesion_mask).astype(np.uint8))
    with pytest.raises(ValueError) as err:  # f2 has no lesion mask: an explicit choice is needed
        load_dataset(tmp_path / "per_label", labels=LABELS)
    assert "f2.png: no 'lesion' mask" in str(err.value) and "missing_labels" in str(err.value)
    ds = load_dataset(tmp_path / "per_label", labels=LABELS, missing_labels={"gland": "error", "lesion": "ignore"})
    assert ds["train"].column_names[:3] == ["image", "mask_gland", "mask_lesion"]
    assert ds["train"][2]["mask_lesion"] is None and ds["train"][0]["mask_lesion"] is not None
    idx = load_dataset(tmp_path / "indexed", label_values={"gland": [1, 2], "lesion": [2]})["train"]
    ph = generate_phantom(0, (64, 80), "clean")
    assert np.array_equal(np.asarray(idx[0]["mask_gland"]), ph.gland_mask)
    assert np.array_equal(np.asarray(idx[0]["mask_lesion"]), ph.lesion_mask)


def _coco_two_categories(tmp_path, n=6):
    d = tmp_path / "export" / "train"
    d.mkdir(parents=True)
    images, anns = [], []
    from trus_hf.prepare import _polygons

    for i in range(n):
        ph = generate_phantom(200 + i, (96, 112), "clean")
        Image.fromarray(ph.image).save(d / f"img{i}.png")
        images.append({"id": i, "file_name": f"img{i}.png", "height": 96, "width": 112})
        for cat, mask in ((1, ph.gland_mask), (2, ph.lesion_mask)):
            for poly in _polygons(mask):
                anns.append({"id": len(anns), "image_id": i, "category_id": cat, "segmentation": [poly]})
    cats = [{"id": 1, "name": "prostate"}, {"id": 2, "name": "tumor"}]
    (d / "_annotations.coco.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return tmp_path / "export"


def test_coco_categories_map_to_labels_and_the_card_records_the_mapping(tmp_path):
    export = _coco_two_categories(tmp_path)
    summary = import_labels(
        export,
        tmp_path / "data",
        labels=LABELS,
        label_map={"gland": ["prostate"], "lesion": ["tumor"]},
        missing_labels={"gland": "error", "lesion": "empty"},
    )
    assert "dataset:" in summary
    card = (tmp_path / "data" / "README.md").read_text()
    assert "| gland | `mask_gland` | categories ['prostate'] | refused |" in card
    assert "| lesion | `mask_lesion` | categories ['tumor'] | an empty mask |" in card
    ds = load_dataset(tmp_path / "data" / "dataset")["train"]
    assert {"mask_gland", "mask_lesion"} <= set(ds.column_names)
    with pytest.raises(ValueError, match=r"categories \['lesion'\] not found; available: \['prostate', 'tumor'\]"):
        load_dataset_with_report(export, labels=LABELS, label_map={"gland": ["prostate"]})  # lesion: no such category


def test_evaluation_and_onnx_carry_the_labels(tmp_path):
    ds = synthetic_dataset(6, 96, 0, "clean", LABELS)
    pipes = {
        "A": SegmentationPipeline(two_label("fpn"), tiny_processor()),
        "B": SegmentationPipeline(two_label("segformer"), tiny_processor()),
    }
    summary = evaluate_models(pipes, ds, tmp_path / "report")
    assert set(summary["models"]["A"]["labels"]) == set(LABELS)
    assert set(summary["comparisons"]["A vs B"]["labels"]) == set(LABELS)
    assert summary["models"]["A"]["iou"] == summary["models"]["A"]["labels"]["lesion"]["iou"]
    assert "A vs B: gland" in (tmp_path / "report" / "report.html").read_text()
    model = two_label("segformer")
    model.save_pretrained(tmp_path / "m", processor=tiny_processor())
    info = export_onnx(tmp_path / "m", tmp_path / "onnx")
    assert info["parity"]["min_mask_iou_agreement"] >= 0.999
    onnx_pipe = SegmentationPipeline.from_pretrained(tmp_path / "onnx", backend="onnx")
    assert onnx_pipe.labels == LABELS and onnx_pipe(generate_phantom(0, (90, 100)).image).masks.keys() == set(LABELS)


def test_binary_models_work_unchanged(saved_models):
    pipe = SegmentationPipeline.from_pretrained(saved_models["fpn"])
    ph = generate_phantom(4, (100, 120))
    r = pipe(ph.image, ground_truth=ph.lesion_mask)
    assert pipe.labels == ["lesion"] and list(r.masks) == ["lesion"] and r.iou == r.label_metrics["lesion"]["iou"]
