import csv
import json

import cv2
import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid

from trus_hf.cli import main
from trus_hf.data import load_dataset
from trus_hf.metrics import binary_metrics
from trus_hf.synthetic import generate_phantom

PHI = ["PAT-4711", "Doe", "John", "General Hospital", "19500101", "DOE JOHN"]


def scanner_frame(seed: int, text: str = "DOE JOHN 19500101") -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A phantom inside a larger frame with burned-in patient text and a UI ruler outside the fan."""
    ph = generate_phantom(seed, (240, 280))
    frame = np.zeros((320, 420), np.uint8)
    frame[50:290, 70:350] = ph.image
    cv2.putText(frame, text, (5, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, 255, 1)
    cv2.line(frame, (400, 60), (400, 280), 180, 1)
    ys, xs = np.nonzero(ph.fan_mask)
    return frame, (70 + xs.min(), 50 + ys.min(), 70 + xs.max() + 1, 50 + ys.max() + 1)


def write_dicom(path, frames: np.ndarray, rgb: bool = False):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^John", "PAT-4711", "19500101"
    ds.InstitutionName, ds.Modality = "General Hospital", "US"
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = frames.shape[1:3]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw" / "Doe_John_study"
    root.mkdir(parents=True)
    frames = [scanner_frame(s)[0] for s in range(3)]
    write_dicom(root / "cine.dcm", np.stack(frames))  # multi-frame
    write_dicom(root / "single_rgb.dcm", np.stack([np.stack([frames[0]] * 3, -1)]), rgb=True)  # RGB, same as frame 0
    Image.fromarray(scanner_frame(5)[0]).save(root / "export.png")
    video = cv2.VideoWriter(str(root / "sweep.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (420, 320))
    for s in range(6):
        video.write(cv2.cvtColor(scanner_frame(10 + s // 2)[0], cv2.COLOR_GRAY2BGR))
    video.release()
    (root / "notes.png").write_text("not an image")
    return tmp_path / "raw"


def test_prepare_anonymises_crops_and_reports(raw, tmp_path):
    out = tmp_path / "prepared"
    assert main(["prepare", str(raw), "--out", str(out), "--every", "2"]) == 0
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    kinds = [r["source_kind"] for r in rows]
    assert kinds.count("dicom") == 4 and kinds.count("image") == 1 and kinds.count("video") == 3
    # nothing identifying anywhere: file names, manifest, report, PNG bytes
    blobs = [p.name for p in out.rglob("*")] + [p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file()]
    for secret in PHI + ["Doe_John_study", "cine", "sweep"]:
        assert not any(secret in b for b in blobs), secret
    # one pseudonymous group per patient (the DICOM PatientID), stable, and different from the folder's
    dicom_groups = {r["group"] for r in rows if r["source_kind"] == "dicom"}
    assert len(dicom_groups) == 1 and dicom_groups != {r["group"] for r in rows if r["source_kind"] == "image"}
    # burned-in text outside the fan is cropped away
    _, (x0, y0, x1, y1) = scanner_frame(0)
    first = next(r for r in rows if r["source_kind"] == "dicom")
    box = [int(first[k]) for k in ("crop_x0", "crop_y0", "crop_x1", "crop_y1")]
    assert all(abs(a - b) <= 4 for a, b in zip(box, (x0, y0, x1, y1)))
    img = np.asarray(Image.open(out / first["file"]))
    assert img.shape == (box[3] - box[1], box[2] - box[0])
    # the RGB single frame duplicates multi-frame frame 0: reported
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["duplicates"] and len(report["skipped"]) == 1
    assert "unsupported or unrecognised image format" in report["skipped"][0]["reason"]
    # never overwrites without --overwrite; --resume adds nothing new
    assert main(["prepare", str(raw), "--out", str(out)]) == 2
    assert main(["prepare", str(raw), "--out", str(out), "--resume"]) == 0
    assert len(list(csv.DictReader(open(out / "manifest.csv")))) == len(rows)


def test_prepare_can_drop_duplicates(raw, tmp_path):
    out = tmp_path / "dedup"
    assert main(["prepare", str(raw), "--out", str(out), "--drop-duplicates"]) == 0
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    video_rows = [r for r in rows if r["source_kind"] == "video"]
    assert len(video_rows) == 3  # 6 frames, each scene twice


def _coco_export(folder, n=4):
    folder.mkdir(parents=True)
    images, anns = [], []
    for i in range(n):
        ph = generate_phantom(i, (120, 140))
        Image.fromarray(ph.image).save(folder / f"case{i // 2}_f{i}.jpg")
        images.append({"id": i, "file_name": f"case{i // 2}_f{i}.jpg", "height": 120, "width": 140})
        contours, _ = cv2.findContours(ph.gland_mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        anns.append(
            {
                "id": i,
                "image_id": i,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": [c.reshape(-1).astype(float).tolist() for c in contours],
            }
        )
    images.append({"id": 99, "file_name": "unlabeled.jpg", "height": 120, "width": 140})
    Image.fromarray(generate_phantom(99, (120, 140)).image).save(folder / "unlabeled.jpg")
    (folder / "_annotations.coco.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "lesion"}]})
    )


def test_import_labels_builds_a_validated_dataset_with_card(tmp_path):
    _coco_export(tmp_path / "export" / "train")
    out = tmp_path / "ds"
    assert (
        main(["import-labels", str(tmp_path / "export"), "--format", "coco", "--out", str(out), "--test-size", "0.5"])
        == 0
    )
    ds = load_dataset(out / "dataset")
    assert set(ds) == {"train", "test"}
    assert not set(ds["train"]["group"]) & set(ds["test"]["group"])
    report = json.loads((out / "validation_report.json").read_text())
    assert report["empty_masks"] == ["train/unlabeled.jpg"] or report["empty_masks"] == ["test/unlabeled.jpg"]
    card = (out / "README.md").read_text()
    assert "| train |" in card and "empty masks: 1" in card
    assert main(["import-labels", str(tmp_path / "export"), "--out", str(out)]) == 2  # no silent overwrite


def test_export_for_labeling_round_trips_through_the_coco_loader(saved_models, tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    for s in range(3):
        Image.fromarray(generate_phantom(s, (100, 130)).image).save(src / f"f{s}.png")
    assert (
        main(
            [
                "export-for-labeling",
                "--model",
                str(saved_models["fpn"]),
                "--images",
                str(src),
                "--out",
                str(tmp_path / "pre"),
                "--threshold",
                "0.3",
            ]
        )
        == 0
    )
    coco = json.loads((tmp_path / "pre" / "_annotations.coco.json").read_text())
    assert len(coco["images"]) == 3 and coco["categories"][0]["name"] == "lesion"
    reloaded = load_dataset(tmp_path / "pre" / "_annotations.coco.json")["train"]
    from trus_hf import SegmentationPipeline

    pipe = SegmentationPipeline.from_pretrained(saved_models["fpn"], threshold=0.3)
    for item in reloaded:
        predicted = pipe(np.asarray(item["image"])).mask
        assert binary_metrics(np.asarray(item["mask"]), predicted)["iou"] >= 0.9
