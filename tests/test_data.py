import json

import numpy as np
import pytest
from conftest import BUSBRA
from PIL import Image
from pycocotools import mask as mask_utils

from trus_hf.data import group_kfold, group_train_test_split, load_dataset, load_dataset_with_report
from trus_hf.synthetic import generate_phantom


def _write_pair(root, name, size=(64, 80), seed=0, mask_suffix="", mask_scale=255):
    ph = generate_phantom(seed, size)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(ph.image).save(root / "images" / f"{name}.png")
    Image.fromarray(ph.gland_mask * mask_scale).save(root / "masks" / f"{name}{mask_suffix}.png")
    return ph


def test_folder_with_mask_suffix_and_groups(tmp_path):
    for i in range(4):
        _write_pair(tmp_path, f"p{i // 2}_frame{i}", seed=i, mask_suffix="_mask", mask_scale=1 if i % 2 else 255)
    ds = load_dataset(tmp_path, mask_suffix="_mask", group_pattern=r"^(p\d+)_")["train"]
    assert len(ds) == 4 and sorted(set(ds["group"])) == ["p0", "p1"]
    m = np.asarray(ds[0]["mask"])
    assert set(np.unique(m)) <= {0, 1} and m.shape == (64, 80) and m.sum() > 0


def test_invalid_items_are_listed_never_dropped_silently(tmp_path):
    _write_pair(tmp_path, "good", seed=0)
    _write_pair(tmp_path, "sizes", seed=1)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "masks" / "sizes.png")
    _write_pair(tmp_path, "values", seed=2)
    Image.fromarray(np.full((64, 80), 7, np.uint8)).save(tmp_path / "masks" / "values.png")
    Image.fromarray(generate_phantom(3, (64, 80)).image).save(tmp_path / "images" / "nomask.png")
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ValueError) as err:
        load_dataset(tmp_path)
    msg = str(err.value)
    assert "4 item(s) invalid" in msg
    for fragment in (
        "sizes.png: size mismatch",
        "values.png: invalid mask",
        "nomask.png: missing mask",
        "broken.png: unreadable image",
    ):
        assert fragment in msg
    dsd, report = load_dataset_with_report(tmp_path)
    assert len(dsd["train"]) == 1 and len(report.skipped) == 4


def _coco(tmp_path, split="train"):
    d = tmp_path / split
    d.mkdir(parents=True)
    images, anns = [], []
    expected = {}
    for i in range(3):
        ph = generate_phantom(i, (60, 70))
        Image.fromarray(ph.image).save(d / f"img{i}.jpg")
        images.append({"id": i, "file_name": f"img{i}.jpg", "height": 60, "width": 70})
        poly = [10, 10, 30, 10, 30, 30, 10, 30]
        anns.append({"id": 10 * i, "image_id": i, "category_id": 1, "segmentation": [poly], "iscrowd": 0})
        rle_mask = np.zeros((60, 70), np.uint8, order="F")
        rle_mask[40:50, 40:60] = 1
        rle = mask_utils.encode(rle_mask)
        rle["counts"] = rle["counts"].decode()
        anns.append({"id": 10 * i + 1, "image_id": i, "category_id": 1, "segmentation": rle, "iscrowd": 1})
        anns.append(
            {"id": 10 * i + 2, "image_id": i, "category_id": 2, "segmentation": [[50, 5, 65, 5, 65, 15]], "iscrowd": 0}
        )
        expected[i] = rle_mask.copy()
    cats = [{"id": 1, "name": "lesion"}, {"id": 2, "name": "artifact"}]
    (d / "_annotations.coco.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return expected


def test_coco_polygons_and_rle_merged_with_category_filter(tmp_path):
    _coco(tmp_path)
    ds = load_dataset(tmp_path, categories=["lesion"])["train"]
    m = np.asarray(ds[0]["mask"])
    assert m[20, 20] == 1 and m[45, 50] == 1 and m[8, 60] == 0  # polygon + RLE merged, artifact filtered
    assert 400 <= m[5:35, 5:35].sum() <= 500 and m[40:50, 40:60].sum() == 200
    every = load_dataset(tmp_path)["train"]
    assert np.asarray(every[0]["mask"])[8, 60] == 1
    with pytest.raises(ValueError, match=r"categories \['tumour'\] not found; available: \['artifact', 'lesion'\]"):
        load_dataset(tmp_path, categories=["tumour"])


def test_roboflow_semantic_masks(tmp_path):
    d = tmp_path / "train"
    d.mkdir()
    (d / "_classes.csv").write_text("Pixel Value, Class\n0, background\n1, lesion\n2, gland\n")
    for i in range(2):
        Image.fromarray(generate_phantom(i, (40, 50)).image).save(d / f"f{i}.jpg")
        m = np.zeros((40, 50), np.uint8)
        m[5:15, 5:15] = 1
        m[20:30, 20:30] = 2
        Image.fromarray(m).save(d / f"f{i}_mask.png")
    ds = load_dataset(tmp_path, categories=["lesion"])["train"]
    assert len(ds) == 2 and np.asarray(ds[0]["mask"]).sum() == 100


def test_yolo_segmentation(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "data.yaml").write_text("names: [lesion]\n")
    Image.fromarray(generate_phantom(0, (100, 100)).image).save(tmp_path / "images" / "a.png")
    (tmp_path / "labels" / "a.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n")
    ds = load_dataset(tmp_path, format="yolo-seg")["train"]
    assert 1500 <= np.asarray(ds[0]["mask"]).sum() <= 1800


def test_group_split_and_kfold_never_leak_groups():
    import datasets

    ds = datasets.Dataset.from_dict(
        {"group": [f"g{i // 3}" for i in range(30)], "kFold": [str(i % 3) for i in range(30)]}
    )
    split = group_train_test_split(ds, 0.3, seed=1)
    assert not set(split["train"]["group"]) & set(split["test"]["group"])
    folds = group_kfold(ds, k=5)
    assert len(folds) == 5 and sorted(i for _, va in folds for i in va) == list(range(30))
    for tr, va in folds:
        assert not {ds[i]["group"] for i in tr} & {ds[i]["group"] for i in va}
    own = group_kfold(ds, fold_column="kFold")
    assert [len(va) for _, va in own] == [10, 10, 10]


@pytest.mark.skipif(not BUSBRA.is_dir(), reason="BUS-BRA is not available on this machine")
def test_busbra_loads_with_case_groups_and_official_folds():
    ds = load_dataset(BUSBRA, extra_columns=["kFold"])["train"]
    assert len(ds) == 1875
    assert ds[0]["group"] == "0001" and ds[1]["group"] == "0001"  # -l and -r views share a case
    folds = group_kfold(ds, fold_column="kFold")
    assert len(folds) == 5
    fold_of_group = {}
    for g, f in zip(ds["group"], ds["kFold"]):
        fold_of_group.setdefault(g, set()).add(f)
    assert all(len(f) == 1 for f in fold_of_group.values())  # the official folds never split a case
    m = np.asarray(ds[0]["mask"])
    assert set(np.unique(m)) == {0, 1}


def test_folder_with_dicom_images_decodes(tmp_path):
    from test_prepare import write_dicom

    ph = generate_phantom(1, (64, 80))
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_dicom(tmp_path / "images" / "frame.dcm", ph.image[None])
    Image.fromarray(ph.gland_mask * 255).save(tmp_path / "masks" / "frame.png")
    item = load_dataset(tmp_path)["train"][0]
    assert np.array_equal(np.asarray(item["image"]), ph.image)
    assert np.array_equal(np.asarray(item["mask"]), ph.gland_mask)
