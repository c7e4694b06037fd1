"""The app through a real client: gradio_client against the app served on a free local port, every endpoint."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from trus_hf.fileio import read_mask, write_png
from trus_hf.metrics import binary_metrics
from trus_hf.synthetic import generate_phantom
from trus_hf.video import write_video

ARGS = ("Demo FPN", "", "PyTorch", 0.5)


@pytest.fixture(scope="module")
def client(served):
    return Client(served["url"], verbose=False)


def _mask(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_preview_shows_the_decoded_upload_and_its_size(served, client):
    preview, text = client.predict(handle_file(str(served["dir"] / "frame.dcm")), api_name="/preview")
    assert Image.open(preview).size == (360, 300) and "360 x 300 pixels" in text and "frame.dcm" in text


def test_predict_with_ground_truth_of_both_labels(served, client):
    d = served["dir"]
    out = client.predict(
        handle_file(str(d / "frame.png")),
        handle_file(str(d / "frame_mask.png")),
        *ARGS,
        False,
        False,
        [handle_file(str(d / "frame_gland.png"))],
        0.45,
        api_name="/predict",
    )
    annotated, picture, before_after, heat, spread, masks, iou, dice, info = out
    assert spread is None and Image.open(picture).size == Image.open(heat).size == (360, 300)
    assert len(before_after) == 2 and Path(annotated["image"]).is_file()
    legend = {a["label"] for a in annotated["annotations"]}
    assert {"lesion: both", "lesion: predicted only", "lesion: missed", "gland: both"} <= legend
    by_label = {Path(m).stem.rsplit("_", 1)[-1]: _mask(m) for m in masks}
    assert set(by_label) == {"gland", "lesion"}
    ph = served["phantom"]
    for label, gt in (("lesion", ph.lesion_mask), ("gland", ph.gland_mask)):
        assert by_label[label].shape == (300, 360) and set(np.unique(by_label[label])) <= {0, 255}
        expected = binary_metrics(by_label[label] > 0, gt)
        assert info["scores"][label]["iou"] == pytest.approx(expected["iou"], abs=1e-3)
    assert iou == info["scores"]["lesion"]["iou"] and 0 <= dice <= 1
    assert set(info) >= {"preprocess_ms", "inference_ms", "postprocess_ms", "lesion_pixels", "labels"}


def test_segment_returns_the_same_masks_and_scores_without_pictures(served, client):
    d = served["dir"]
    args = (handle_file(str(d / "frame.png")), handle_file(str(d / "frame_mask.png")), *ARGS)
    full = client.predict(*args, api_name="/predict")
    masks, iou, dice, info = client.predict(*args, api_name="/segment")
    assert [_mask(m).tolist() == _mask(f).tolist() for m, f in zip(masks, full[5])] == [True] * len(masks)
    assert (iou, dice) == (full[6], full[7]) and info["lesion_pixels"] == full[8]["lesion_pixels"]
    written = list((Path(served["demo"].GRADIO_CACHE) / "trus-hf").rglob("frame_mask_lesion.png"))
    assert written, "the mask PNG was not written into the Gradio cache"
    # As in the README: no ground truth, ONNX Runtime.
    masks, iou, dice, info = client.predict(
        handle_file(str(d / "frame.png")), None, "Demo Segformer", "", "ONNX Runtime", 0.5, api_name="/segment"
    )
    assert iou is None and dice is None and info["backend"] == "ONNX Runtime" and _mask(masks[0]).shape == (300, 360)


def test_uncertainty_and_lesion_within_gland(served, client):
    d = served["dir"]
    out = client.predict(handle_file(str(d / "frame.png")), None, *ARGS, True, True, [], 0.8, api_name="/predict")
    assert out[4] is not None and Image.open(out[4]).size == (360, 300)  # the uncertainty map
    by_label = {Path(m).stem.rsplit("_", 1)[-1]: _mask(m) > 0 for m in out[5]}
    assert not (by_label["lesion"] & ~by_label["gland"]).any()  # no lesion pixel outside the gland


def test_compare_any_two_models_with_their_times(served, client, saved_models):
    d = served["dir"]
    out = client.predict(
        handle_file(str(d / "frame.png")),
        handle_file(str(d / "frame_mask.png")),
        "Demo FPN",
        "",
        "PyTorch",
        "Hub ID or local folder",
        str(saved_models["segformer"]),
        "ONNX Runtime",
        0.5,
        api_name="/compare",
    )
    img_a, iou_a, dice_a, ms_a, img_b, iou_b, dice_b, ms_b, diff, agreement = out
    assert 0 <= iou_a <= 1 and 0 <= iou_b <= 1 and ms_a > 0 and ms_b > 0 and 0 <= agreement <= 1
    assert Image.open(diff).size == Image.open(img_a).size == Image.open(img_b).size == (360, 300)
    pipe = served["cache"].get("Demo FPN", "torch")
    # the slider's 0.5 replaces the model's tuned threshold, as it does in the app
    assert iou_a == pytest.approx(
        pipe(served["phantom"].image, ground_truth=served["phantom"].lesion_mask, threshold=0.5).iou, abs=1e-3
    )


def test_batch_of_files_and_a_zip_with_masks_paired_by_name(served, client, tmp_path):
    frames, masks = [], []
    for i in range(4):
        ph = generate_phantom(40 + i, (160, 200), "clean")
        frames.append(write_png(tmp_path / f"f{i}.png", ph.image))
        masks.append(write_png(tmp_path / f"f{i}_mask.png", ph.lesion_mask * 255))
    with zipfile.ZipFile(tmp_path / "more.zip", "w") as z:
        z.write(frames[3], "nested/dir/f3.png")  # a path inside the archive: only the name is kept
    summary, gallery, zip_out, csv_out, stats = client.predict(
        [handle_file(str(f)) for f in frames[:3]] + [handle_file(str(tmp_path / "more.zip"))],
        [handle_file(str(m)) for m in masks],
        *ARGS,
        api_name="/batch",
    )
    assert "4 frames" in summary and "lesion: IoU" in summary and len(gallery) == 4
    rows = Path(csv_out).read_text().splitlines()
    assert rows[0].startswith("file,") and len(rows) == 1 + 4
    with zipfile.ZipFile(zip_out) as z:
        names = set(z.namelist())
    assert {f"masks_lesion/f{i}.png" for i in range(4)} <= names and "overlays/f3.png" in names
    ious = [float(r.split(",")[5]) for r in rows[1:]]
    assert stats["worst"][0] == f"f{int(np.argmin(ious))}.png"  # worst first
    assert stats["labels"]["lesion"]["iou"]["ci95"][0] <= stats["labels"]["lesion"]["iou"]["mean"]


@pytest.mark.parametrize(
    "case, message",
    [
        ("corrupt-zip", "not a readable zip archive"),
        ("too-many", "frames exceed the limit of 200 per batch"),
    ],
)
def test_batch_limits_and_bad_archives_get_clear_messages(served, client, tmp_path, case, message):
    if case == "corrupt-zip":
        bad = tmp_path / "frames.zip"
        bad.write_bytes(b"PK\x03\x04 this is not a zip")
        files = [handle_file(str(bad))]
    else:
        img = write_png(tmp_path / "f.png", generate_phantom(0, (32, 32)).image)
        with zipfile.ZipFile(tmp_path / "many.zip", "w") as z:
            for i in range(201):
                z.write(img, f"f{i}.png")
        files = [handle_file(str(tmp_path / "many.zip"))]
    with pytest.raises(Exception, match=message):
        client.predict(files, [], *ARGS, api_name="/batch")


def test_cine_loop_video_and_multiframe_dicom(served, client, tmp_path):
    from test_prepare import write_dicom

    phantoms = [generate_phantom(60 + i, (192, 224), "clean").image for i in range(12)]
    video = write_video(tmp_path / "loop.webm", [np.dstack([p] * 3) for p in phantoms], fps=12)
    out_video, table, info = client.predict(
        handle_file(str(video)), "Demo FPN", "", "ONNX Runtime", 0.5, api_name="/cine"
    )
    assert Path(out_video["video"] if isinstance(out_video, dict) else out_video).stat().st_size > 1000
    assert info["frames"] == 12 and info["frames_per_second_segmented"] > 0 and "inference" in info["ms_per_frame"]
    assert len(table["data"]) == 12 * 2  # area of each label per frame
    dicom = tmp_path / "loop.dcm"
    write_dicom(dicom, np.stack(phantoms[:5]))
    _, table, info = client.predict(handle_file(str(dicom)), *ARGS, api_name="/cine")
    assert info["frames"] == 5 and len(table["data"]) == 10


@pytest.mark.parametrize(
    "case, message",
    [
        ("undecodable", "cannot open or decode this video"),
        ("too-long", "exceed the limit of 300 frames"),
    ],
)
def test_cine_bad_input_gets_a_clear_message(served, client, tmp_path, case, message):
    if case == "undecodable":
        path = tmp_path / "broken.mp4"
        path.write_bytes(b"\x00\x00\x00 not a video at all")
    else:
        frame = np.zeros((32, 32, 3), np.uint8)
        path = write_video(tmp_path / "long.webm", [frame] * 301, fps=25)
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(path)), *ARGS, api_name="/cine")


def test_edit_then_save_the_correction(served, client, tmp_path):
    d = served["dir"]
    editor, predicted = client.predict(handle_file(str(d / "frame.png")), *ARGS, api_name="/edit")
    layer = np.asarray(Image.open(editor["layers"][0]))
    assert layer.shape == (300, 360, 4) and Image.open(editor["background"]).size == (360, 300)
    edited = layer.copy()
    edited[40:80, 40:120] = (255, 60, 60, 255)  # a brush stroke
    edited[..., 3][np.asarray(Image.open(predicted)) > 0] = 0  # and the prediction erased
    path = tmp_path / "edited.png"
    Image.fromarray(edited).save(path)
    value = {"background": handle_file(editor["background"]), "layers": [handle_file(str(path))], "composite": None}
    corrected, change, pixels = client.predict(
        value, handle_file(predicted), handle_file(str(d / "frame.png")), api_name="/correct"
    )
    mask = read_mask(corrected)
    assert Path(corrected).name == "frame.png" and mask.shape == (300, 360) and pixels == 40 * 80 == mask.sum()
    assert change == pytest.approx(binary_metrics(read_mask(predicted), mask)["iou"], abs=1e-4)


@pytest.mark.parametrize(
    "image, mask, model, custom, message",
    [
        ("notes.png", None, "Demo FPN", "", "unsupported or unrecognised image format"),
        ("frame.png", "small_mask.png", "Demo FPN", "", "is 10x10 but the image is 360x300"),
        ("huge.png", None, "Demo FPN", "", "6000x5000 pixels exceeds the limit of 25000000"),
        ("frame.png", None, "Hub ID or local folder", "no-such-org/no-such-model", "Cannot load model"),
        ("frame.png", None, "Hub ID or local folder", "", "Enter a Hub model ID"),
    ],
)
def test_bad_input_gets_a_clear_message_and_the_server_keeps_serving(
    served, client, image, mask, model, custom, message
):
    d = served["dir"]
    with pytest.raises(Exception, match=message):
        client.predict(
            handle_file(str(d / image)),
            handle_file(str(d / mask)) if mask else None,
            model,
            custom,
            "PyTorch",
            0.5,
            api_name="/predict",
        )
    ok = client.predict(handle_file(str(d / "frame.png")), None, *ARGS, api_name="/segment")
    assert ok[0]


def test_onnx_backend_matches_pytorch(served, client):
    d = served["dir"]
    args = (handle_file(str(d / "frame.png")), handle_file(str(d / "frame_mask.png")), "Demo Segformer", "")
    torch_out = client.predict(*args, "PyTorch", 0.5, api_name="/segment")
    onnx_out = client.predict(*args, "ONNX Runtime", 0.5, api_name="/segment")
    assert onnx_out[3]["backend"] == "ONNX Runtime"
    assert onnx_out[1] == pytest.approx(torch_out[1], abs=1e-3)


def test_model_cache_loads_each_model_once_and_never_blocks_cached_models(saved_models, monkeypatch):
    """While one model loads, another user's cached model answers; concurrent requests for the loading model share
    one load (real tiny model; the load is only paused at an Event so the interleaving is deterministic)."""
    import threading

    import app as trus_app

    cache = trus_app.make_cache()
    demo_fpn = cache.get("Demo FPN", "torch")
    started, release, loads = threading.Event(), threading.Event(), []
    real = trus_app.SegmentationPipeline.from_pretrained

    def paused_load(path, **kw):
        loads.append(path)
        started.set()
        assert release.wait(30), "the test never released the load"
        return real(path, **kw)

    monkeypatch.setattr(trus_app.SegmentationPipeline, "from_pretrained", paused_load)
    source = str(saved_models["fpn"])
    results = []
    workers = [threading.Thread(target=lambda: results.append(cache.get(source, "torch"))) for _ in range(3)]
    for w in workers:
        w.start()
    assert started.wait(30)
    assert cache.get("Demo FPN", "torch") is demo_fpn  # answered while the load is paused
    assert all(w.is_alive() for w in workers)
    release.set()
    for w in workers:
        w.join(30)
    assert len(loads) == 1 and len(results) == 3 and results[0] is results[1] is results[2]


def test_queue_polls_calmly(served):
    """Gradio's 1 ms idle polling slows inference on small CPU machines; the app sets 10 ms / 100 ms. This fails when
    a Gradio upgrade renames the attributes, so the tuning is never silently lost."""
    import app as trus_app

    queue = served["demo"]._queue
    assert (queue.sleep_when_free, queue.progress_update_sleep_when_free) == (
        trus_app.QUEUE_POLL_S,
        trus_app.PROGRESS_POLL_S,
    )


def test_png_outputs_are_lossless(served, client):
    masks = client.predict(handle_file(str(served["dir"] / "frame.png")), None, *ARGS, api_name="/segment")[0]
    raw = Path(masks[0]).read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and set(np.unique(np.asarray(Image.open(io.BytesIO(raw))))) <= {0, 255}
