"""The app through a real client: gradio_client against the app served on a free local port."""

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image


@pytest.fixture(scope="module")
def client(served):
    return Client(served["url"], verbose=False)


def test_predict_with_ground_truth(served, client):
    d = served["dir"]
    overlay, heat, mask_file, iou, dice, info = client.predict(
        handle_file(str(d / "frame.png")),
        handle_file(str(d / "frame_mask.png")),
        "Demo FPN",
        "",
        "PyTorch",
        0.5,
        api_name="/predict",
    )
    mask = np.asarray(Image.open(mask_file))
    assert mask.shape == (300, 360) and set(np.unique(mask)) <= {0, 255}
    assert Image.open(overlay).size == (360, 300) and Image.open(heat).size == (360, 300)
    from trus_hf.metrics import binary_metrics

    expected = binary_metrics(mask > 0, served["phantom"].lesion_mask)["iou"]
    assert iou == pytest.approx(expected, abs=1e-3) and 0 <= dice <= 1
    assert set(info) >= {"preprocess_ms", "inference_ms", "postprocess_ms", "lesion_pixels"}


def test_segment_api_returns_the_same_mask_and_scores_without_pictures(served, client):
    d = served["dir"]
    args = (handle_file(str(d / "frame.png")), handle_file(str(d / "frame_mask.png")), "Demo FPN", "", "PyTorch", 0.5)
    full = client.predict(*args, api_name="/predict")
    mask_file, iou, dice, info = client.predict(*args, api_name="/segment")
    assert np.array_equal(np.asarray(Image.open(mask_file)), np.asarray(Image.open(full[2])))
    assert (iou, dice) == (full[3], full[4]) and info["lesion_pixels"] == full[5]["lesion_pixels"]
    # Outputs are written into the app's own Gradio cache, where delete_cache removes them.
    written = list((Path(served["demo"].GRADIO_CACHE) / "trus-hf").glob("frame_mask_*.png"))
    assert written, "the mask PNG was not written into the Gradio cache"
    # As in the README: no ground truth, ONNX Runtime.
    mask_file, iou, dice, info = client.predict(
        handle_file(str(d / "frame.png")), None, "Demo Segformer", "", "ONNX Runtime", 0.5, api_name="/segment"
    )
    assert iou is None and dice is None and info["backend"] == "ONNX Runtime"
    assert np.asarray(Image.open(mask_file)).shape == (300, 360)


def test_predict_without_ground_truth_and_with_segformer(served, client):
    out = client.predict(
        handle_file(str(served["dir"] / "frame.png")), None, "Demo Segformer", "", "PyTorch", 0.5, api_name="/predict"
    )
    assert out[3] is None and out[4] is None
    assert np.asarray(Image.open(out[2])).shape == (300, 360)


def test_compare_tab(served, client):
    d = served["dir"]
    fpn_img, fpn_iou, seg_img, seg_iou, diff, agreement = client.predict(
        handle_file(str(d / "frame.png")), handle_file(str(d / "frame_mask.png")), "PyTorch", 0.5, api_name="/compare"
    )
    assert 0 <= fpn_iou <= 1 and 0 <= seg_iou <= 1 and 0 <= agreement <= 1
    assert Image.open(diff).size == Image.open(fpn_img).size == Image.open(seg_img).size == (360, 300)


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
    ok = client.predict(handle_file(str(d / "frame.png")), None, "Demo FPN", "", "PyTorch", 0.5, api_name="/predict")
    assert ok[2] is not None


def test_onnx_backend_matches_pytorch(served, client):
    d = served["dir"]
    args = (handle_file(str(d / "frame.png")), handle_file(str(d / "frame_mask.png")), "Demo Segformer", "")
    torch_out = client.predict(*args, "PyTorch", 0.5, api_name="/predict")
    onnx_out = client.predict(*args, "ONNX Runtime", 0.5, api_name="/predict")
    assert onnx_out[5]["backend"] == "ONNX Runtime"
    assert onnx_out[3] == pytest.approx(torch_out[3], abs=1e-3)


def test_model_cache_loads_each_model_once_and_never_blocks_cached_models(saved_models, monkeypatch):
    """While one model loads, another user's cached model answers; concurrent requests for the loading model share
    one load (real tiny model; the load is only paused at an Event so the interleaving is deterministic)."""
    import threading

    import app as trus_app

    cache = trus_app.ModelCache()
    demo_fpn = cache.get(cache.source_for("Demo FPN", None), "torch")
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
    assert cache.get(cache.source_for("Demo FPN", None), "torch") is demo_fpn  # answered while the load is paused
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
