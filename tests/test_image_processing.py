import json

import cv2
import numpy as np
import pytest
from PIL import Image

from trus_hf import TrusImageProcessor, TrusSegConfig
from trus_hf.image_processing import (
    ECHO_FLOOR,
    detect_ultrasound_roi,
    isotropic_diffusion,
    standardize_echo,
    to_gray_float,
)
from trus_hf.metrics import binary_metrics
from trus_hf.modelcard import render_model_card
from trus_hf.synthetic import generate_phantom


@pytest.mark.parametrize("shape", [(300, 400), (512, 512), (480, 270), (97, 131)])
@pytest.mark.parametrize("keep_aspect", [False, True])
def test_inverse_mapping_recovers_masks(shape, keep_aspect):
    """mask -> processor -> inverse mapping gives IoU >= 0.97 with the original."""
    ph = generate_phantom(3, shape)
    mask = ph.gland_mask
    proc = TrusImageProcessor(size={"height": 256, "width": 256}, keep_aspect_ratio=keep_aspect)
    batch = proc(ph.image, masks=mask, return_tensors="np")
    labels = batch["labels"].astype(np.float32)
    logits = np.where(labels > 0, 10.0, -10.0)[:, None]
    back = proc.post_process_semantic_segmentation(logits, geometries=batch["geometries"])[0]
    assert back.shape == shape
    assert binary_metrics(back, mask)["iou"] >= 0.97


def test_roi_crop_drops_scanner_ui():
    ph = generate_phantom(1, (300, 300))
    frame = np.zeros((400, 520), np.uint8)
    frame[60:360, 110:410] = ph.image
    cv2.putText(frame, "GE LOGIQ  12MHz  DR 60", (5, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 1)
    cv2.putText(frame, "PATIENT X", (420, 380), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    cv2.rectangle(frame, (470, 100), (500, 300), 200, 1)  # depth ruler outline
    x0, y0, x1, y1 = detect_ultrasound_roi(frame.astype(np.float32) / 255)
    fan_ys, fan_xs = np.nonzero(ph.fan_mask)
    assert abs(x0 - (110 + fan_xs.min())) <= 4 and abs(x1 - (110 + fan_xs.max() + 1)) <= 4
    assert abs(y0 - (60 + fan_ys.min())) <= 4 and abs(y1 - (60 + fan_ys.max() + 1)) <= 4


def test_fixed_crop_box_and_size_divisor():
    proc = TrusImageProcessor(size={"height": 100, "width": 90}, crop_box=[10, 20, 60, 80], size_divisor=32)
    img = np.random.default_rng(0).integers(0, 255, (100, 100), dtype=np.uint8)
    b = proc(img, return_tensors="np")
    assert b["pixel_values"].shape == (1, 3, 128, 96)
    assert b["geometries"][0].crop == (10, 20, 60, 80)


def test_inputs_gray_rgb_rgba_16bit_agree():
    ph = generate_phantom(2, (128, 128))
    g = ph.image
    rgb = np.stack([g] * 3, -1)
    rgba = np.concatenate([rgb, np.full_like(g, 255)[..., None]], -1)
    g16 = g.astype(np.uint16) * 257
    proc = TrusImageProcessor(size={"height": 64, "width": 64})
    outs = [
        proc(x, return_tensors="np")["pixel_values"]
        for x in (g, rgb, rgba, g16, Image.fromarray(g), g.astype(np.float32) / 255)
    ]
    for o in outs[1:]:
        assert np.abs(o - outs[0]).max() < 1e-3


def test_diffusion_smooths_and_can_be_switched_off():
    rng = np.random.default_rng(0)
    noisy = rng.random((64, 64)).astype(np.float32)
    smooth = isotropic_diffusion(noisy, iterations=10, step=0.2)
    assert smooth.std() < 0.5 * noisy.std() and abs(smooth.mean() - noisy.mean()) < 1e-3
    with pytest.raises(ValueError, match="step"):
        isotropic_diffusion(noisy, step=0.3)
    on = TrusImageProcessor(size={"height": 64, "width": 64}, do_crop_roi=False)
    off = TrusImageProcessor(size={"height": 64, "width": 64}, do_crop_roi=False, do_diffusion=False)
    assert on(noisy, return_tensors="np")["pixel_values"].std() < off(noisy, return_tensors="np")["pixel_values"].std()


def _displayed(db: np.ndarray, gain_db: float, dynamic_range_db: float) -> np.ndarray:
    """A scanner's gray levels of echo strengths in dB (0 outside the fan): log compression with gain."""
    out = np.clip((db + gain_db) / dynamic_range_db + 1.0, 0.0, 1.0)
    return np.where(np.isnan(db), 0.0, out).astype(np.float32)


def test_standardized_frames_do_not_see_the_scanners_gain_and_dynamic_range():
    rng = np.random.default_rng(0)
    db = -25.0 + np.clip(5.6 * rng.standard_normal((64, 64)), -15, 15)  # log speckle, dB re the top of the display
    db[:, :8] = np.nan  # outside the fan
    a, b = _displayed(db, 0.0, 60.0), _displayed(db, -3.0, 45.0)
    assert abs(a[:, 8:].mean() - b[:, 8:].mean()) > 0.1  # the two settings look different...
    sa, sb = standardize_echo(a, 0.35, 0.14), standardize_echo(b, 0.35, 0.14)
    echo = (a > ECHO_FLOOR) & (b > ECHO_FLOOR)
    assert np.abs(sa - sb)[echo].mean() < 0.01  # ...and the same standardised
    assert abs(sa[sa > ECHO_FLOOR].mean() - 0.35) < 0.01 and abs(sa[sa > ECHO_FLOOR].std() - 0.14) < 0.01
    assert (sa[:, :8] == 0).all() and sa.min() >= 0 and sa.max() <= 1  # the background stays; values stay in [0, 1]
    batch = standardize_echo(np.stack([a, b, np.zeros_like(a)]), 0.35, 0.14)  # (N, H, W): each frame on its own
    assert np.array_equal(batch[0], sa) and np.array_equal(batch[1], sb) and (batch[2] == 0).all()


def test_the_processor_standardizes_when_asked_and_keeps_it_when_saved(tmp_path):
    img = generate_phantom(0, (150, 200)).image
    darker = (img * 0.6).astype(np.uint8)
    kw = {"size": {"height": 64, "width": 64}, "do_diffusion": False}
    plain, std = TrusImageProcessor(**kw), TrusImageProcessor(do_standardize=True, **kw)

    def gap(proc):
        pix = [proc(x, return_tensors="np")["pixel_values"] for x in (img, darker)]
        return np.abs(pix[0] - pix[1]).mean()

    assert gap(std) < 0.2 * gap(plain)
    std.save_pretrained(tmp_path)
    again = TrusImageProcessor.from_pretrained(tmp_path)
    assert again.do_standardize and again.standardize_mean == 0.35
    assert np.array_equal(
        again(img, return_tensors="np")["pixel_values"], std(img, return_tensors="np")["pixel_values"]
    )
    card = render_model_card(TrusSegConfig(), again, metrics=None)
    assert "standardises each frame's echo levels to mean 0.35 and standard deviation 0.14" in card
    assert "standardises" not in render_model_card(TrusSegConfig(), plain, metrics=None)
    with pytest.raises(ValueError, match=r"standardize_std in \(0, 0.5\), got 0.35 and 0.0"):
        TrusImageProcessor(do_standardize=True, standardize_std=0.0)


@pytest.mark.parametrize("interpolation", ["area", "bilinear", "bicubic"])
def test_save_load_round_trip(tmp_path, interpolation):
    proc = TrusImageProcessor(
        size={"height": 96, "width": 128}, interpolation=interpolation, diffusion_iterations=3, keep_aspect_ratio=True
    )
    proc.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert cfg["image_processor_type"] == "TrusImageProcessor" and cfg["interpolation"] == interpolation
    again = TrusImageProcessor.from_pretrained(tmp_path)
    img = generate_phantom(0, (150, 200)).image
    assert np.array_equal(
        proc(img, return_tensors="np")["pixel_values"], again(img, return_tensors="np")["pixel_values"]
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 4, 2)), "expected shape"),
        (np.full((8, 8), np.nan, np.float32), "NaN"),
        (np.full((8, 8), 300.0), r"\[0, 1\] or \[0, 255\]"),
        (np.zeros((0, 5)), "non-empty"),
    ],
)
def test_bad_images_raise_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        to_gray_float(bad)


def test_bad_masks_raise_clear_errors():
    proc = TrusImageProcessor(size={"height": 32, "width": 32})
    img = np.zeros((40, 40), np.uint8)
    with pytest.raises(ValueError, match=r"mask values must be \{0, 1\} or \{0, 255\}, got \[0, 1, 2\]"):
        proc(img, masks=np.arange(1600).reshape(40, 40) % 3)
    with pytest.raises(ValueError, match="differs from its image"):
        proc(img, masks=np.zeros((30, 40), np.uint8))
    with pytest.raises(ValueError, match="exceeds the limit"):
        TrusImageProcessor(max_pixels=100)(img)
