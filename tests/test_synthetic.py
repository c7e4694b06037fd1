import json

import datasets
import numpy as np
import pytest

from trus_hf import TrusImageProcessor
from trus_hf.cli import main
from trus_hf.image_processing import detect_ultrasound_roi
from trus_hf.synthetic import PRESETS, PhantomConfig, generate_phantom
from trus_hf.synthetic.config import draw_settings
from trus_hf.synthetic.formation import iq_magnitude


def test_phantom_is_deterministic_and_consistent():
    a, b = generate_phantom(7, (200, 240)), generate_phantom(7, (200, 240))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.lesion_mask, b.lesion_mask)
    assert a.meta == b.meta
    assert a.image.shape == (200, 240) and a.image.dtype == np.uint8
    assert set(np.unique(a.lesion_mask)) <= {0, 1}
    assert not np.array_equal(a.image, generate_phantom(8, (200, 240)).image)


def test_the_envelope_does_not_depend_on_where_its_samples_lie_in_memory():
    # the same I/Q values copied into buffers at 16 offsets: one seed must give one image in every process (with
    # cv2.magnitude the last bit changed with the address, and with it some phantoms, by a few pixels, per process)
    iq = np.random.default_rng(0).standard_normal((48, 100, 2)).astype(np.float32)
    results = []
    for offset in range(16):
        buffer = np.empty(iq.size + 16, np.float32)[offset : offset + iq.size].reshape(iq.shape)
        buffer[...] = iq
        results.append(iq_magnitude(buffer))
    assert all(np.array_equal(r, results[0]) for r in results[1:])
    exact = np.hypot(iq[..., 0].astype(np.float64), iq[..., 1].astype(np.float64))
    assert results[0].dtype == np.float32 and np.allclose(results[0], exact, rtol=4e-7, atol=0)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_masks_lie_inside_the_gland_and_the_fan_for_every_preset(preset):
    for seed in range(12):
        ph = generate_phantom(seed, (160, 200), preset)
        assert not (ph.lesion_mask & (1 - ph.gland_mask)).any(), seed  # lesions inside the gland
        assert not (ph.gland_mask & (1 - ph.fan_mask)).any(), seed  # the gland inside the imaged sector
        assert ph.gland_mask.any() or ph.meta["zoom"] > 1.0, seed  # the gland is seen unless zoomed away


def test_every_knob_is_drawn_from_its_documented_range():
    cfg = PRESETS["default"]
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = draw_settings(rng, cfg)
        for name in (
            "frequency_mhz",
            "bandwidth",
            "probe_radius_mm",
            "sector_deg",
            "depth_mm",
            "focus_mm",
            "dynamic_range_db",
            "attenuation_db_cm_mhz",
            "tgc_compensation",
            "gain_db",
        ):
            lo, hi = getattr(cfg, name)
            assert lo <= getattr(s, name) <= hi, name
    # the held-out preset lies outside the training ranges where it says so
    shifted, default = PRESETS["shifted"], PRESETS["default"]
    for name in ("frequency_mhz", "depth_mm", "dynamic_range_db", "probe_radius_mm"):
        lo, hi = getattr(shifted, name)
        dlo, dhi = getattr(default, name)
        assert hi < dlo or lo > dhi, name


def test_lesions_are_darker_than_their_surroundings_and_fainter_when_near_isoechoic():
    clean = PRESETS["clean"]
    found = 0
    for seed in range(40):
        dark = generate_phantom(seed, (384, 448), clean.replace(lesion_contrast=0.3))
        les = dark.lesion_mask.astype(bool)
        if les.sum() < 300:
            continue
        gland_only = dark.gland_mask.astype(bool) & ~les
        faint = generate_phantom(seed, (384, 448), clean.replace(lesion_contrast=0.95))
        assert np.array_equal(faint.lesion_mask, dark.lesion_mask)  # the contrast changes the image, not the label
        assert np.median(dark.image[les]) < 0.85 * np.median(dark.image[gland_only]), seed
        assert np.median(faint.image[les]) > np.median(dark.image[les]), seed
        found += 1
        if found == 3:
            break
    assert found == 3


def test_acoustic_clutter_fills_lesions_in_and_leaves_the_rest_of_the_seed_as_it_was():
    clean = PRESETS["clean"].replace(lesion_contrast=0.3)
    checked = 0
    for seed in range(40):
        plain = generate_phantom(seed, (384, 448), clean)
        les = plain.lesion_mask.astype(bool)
        if les.sum() < 300:
            continue
        ring = plain.gland_mask.astype(bool) & ~les
        gaps = []
        for level in (-30.0, -10.0, -4.0):
            hazy = generate_phantom(seed, (384, 448), clean.replace(clutter_prob=1.0, clutter_db=level, clutter_mm=4.0))
            assert hazy.meta["clutter_db"] == level and np.array_equal(hazy.lesion_mask, plain.lesion_mask)
            gaps.append(np.mean(hazy.image[ring].astype(float)) - np.mean(hazy.image[les].astype(float)))
        base_gap = np.mean(plain.image[ring].astype(float)) - np.mean(plain.image[les].astype(float))
        assert base_gap > 0 and gaps[0] > 0.9 * base_gap, (seed, base_gap, gaps)  # -30 dB: hardly any haze
        assert gaps[0] > gaps[1] > gaps[2] > 0, (seed, gaps)  # more clutter, fainter lesion, still darker
        checked += 1
        if checked == 2:
            break
    assert checked == 2
    hazy = PRESETS["default"].replace(clutter_prob=0.5)
    drawn = [draw_settings(np.random.default_rng(seed), hazy) for seed in range(200)]
    levels = [s.clutter_db for s in drawn if s.clutter_db is not None]
    assert 70 < len(levels) < 130 and all(-30.0 <= v <= -6.0 for v in levels)
    assert all(2.0 <= s.clutter_mm <= 8.0 for s in drawn if s.clutter_db is not None)
    # the knob draws from its own stream: without clutter a seed gives the image and metadata it gave before
    cfg = PRESETS["default"]
    for seed in range(6):
        a = generate_phantom(seed, 160, cfg)
        b = generate_phantom(seed, 160, cfg.replace(clutter_prob=1.0, clutter_db=-200.0))
        assert "clutter_db" not in a.meta and b.meta["clutter_db"] == -200.0
        assert {k: v for k, v in b.meta.items() if not k.startswith("clutter")} == a.meta
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1  # -200 dB: nothing visible added


def test_empty_lesion_masks_occur_and_at_most_two_lesions():
    counts = [generate_phantom(s, (96, 96)).n_lesions for s in range(40)]
    assert 0 in counts and max(counts) == 2 and counts.count(0) >= 5


def test_calcifications_cast_shadows_behind_them():
    """Beyond a calcification (farther from the probe along its beam) the image is darker than at the same depth
    beside it."""
    cfg = PRESETS["clean"].replace(calcification_prob=1.0)
    behind, beside = [], []
    for seed in range(10):
        ph = generate_phantom(seed, (480, 560), cfg)
        apex = np.array(ph.meta["probe_center_px"])
        mm = ph.meta["mm_per_px"]
        for calc in ph.meta["calcifications_px"]:
            ray = np.array(calc) - apex
            r_px = np.hypot(*ray)
            theta = np.arctan2(ray[0], -ray[1])  # 0 = straight up from the probe
            for store, offset in ((behind, 0.0), (beside, 6.0 / (r_px * mm)), (beside, -6.0 / (r_px * mm))):
                t = theta + offset
                for d_mm in np.arange(3.0, 12.0, 0.5):
                    rr = r_px + d_mm / mm
                    u, v = apex + rr * np.array([np.sin(t), -np.cos(t)])
                    if (
                        0 <= int(v) < ph.image.shape[0]
                        and 0 <= int(u) < ph.image.shape[1]
                        and ph.fan_mask[int(v), int(u)]
                    ):
                        store.append(float(ph.image[int(v), int(u)]))
    assert len(behind) > 100 and len(beside) > 200
    assert np.mean(behind) < 0.8 * np.mean(beside), (np.mean(behind), np.mean(beside))


@pytest.mark.parametrize("size", [(360, 480), (720, 960)])  # the opening at full size, and on a shrunk frame
def test_roi_crop_finds_the_fan_despite_overlays_and_letterboxing(size):
    cfg = PRESETS["hard"].replace(overlay_prob=1.0, caliper_prob=1.0, letterbox_prob=1.0, zoom=1.0)
    proc = TrusImageProcessor()
    for seed in range(8):
        ph = generate_phantom(seed, size, cfg)
        ys, xs = np.nonzero(ph.fan_mask)
        fan_box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        x0, y0, x1, y1 = detect_ultrasound_roi(ph.image.astype(np.float32) / 255, proc.roi_threshold)
        inter = max(0, min(x1, fan_box[2]) - max(x0, fan_box[0])) * max(0, min(y1, fan_box[3]) - max(y0, fan_box[1]))
        union = (x1 - x0) * (y1 - y0) + (fan_box[2] - fan_box[0]) * (fan_box[3] - fan_box[1]) - inter
        assert inter / union > 0.85, (seed, (x0, y0, x1, y1), fan_box)


def test_config_validation_names_the_knob():
    with pytest.raises(ValueError, match="sector_deg"):
        PhantomConfig(sector_deg=(150, 120))
    with pytest.raises(ValueError, match="lesion_counts"):
        PhantomConfig(lesion_counts=(0.5, 0.1))
    with pytest.raises(ValueError, match="caliper_prob"):
        PhantomConfig(caliper_prob=1.5)
    with pytest.raises(ValueError, match="unknown phantom preset 'soft'"):
        generate_phantom(0, 64, "soft")


def test_synth_cli_writes_an_imagefolder_with_a_preset(tmp_path):
    assert main(["synth", "--n", "3", "--out", str(tmp_path / "d"), "--size", "64", "--preset", "hard"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "d" / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all((tmp_path / "d" / r["mask_file_name"]).is_file() for r in rows)
    assert rows[0]["frequency_mhz"] == generate_phantom(0, 64, "hard").meta["frequency_mhz"]
    ds = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "d"), split="train")
    assert len(ds) == 3 and "group" in ds.column_names
    # refuses to overwrite without --overwrite
    assert main(["synth", "--n", "1", "--out", str(tmp_path / "d"), "--size", "64"]) == 2


def test_size_validation():
    with pytest.raises(ValueError, match="at least 16x16"):
        generate_phantom(0, (8, 8))


def test_demo_recipes_train_on_the_phantoms_they_name():
    """The Segformer's recipe narrows the training lesions' contrast and the generator draws within it; the FPN's
    trains on the default preset as it is (what the cards say each model saw)."""
    from trus_hf.demo import RECIPES, _sections, training_phantoms

    assert training_phantoms(RECIPES["fpn"]) == PRESETS["default"]
    narrowed = training_phantoms(RECIPES["segformer"])
    assert narrowed.lesion_contrast == (0.2, 0.7) and narrowed.frequency_mhz == PRESETS["default"].frequency_mhz
    contrasts = [c for s in range(40) for c in generate_phantom(s, (96, 128), narrowed).meta["lesion_contrasts"]]
    assert len(contrasts) > 20 and all(0.2 <= c <= 0.7 for c in contrasts)
    assert max(c for s in range(40) for c in generate_phantom(s, (96, 128)).meta["lesion_contrasts"]) > 0.7
    card = _sections({"phantoms": 5}, [], busbra=False, lesion_contrast=narrowed.lesion_contrast)
    assert "contrast 0.2-0.7" in card and "contrast" not in _sections({"phantoms": 5}, [], busbra=False)
