"""A real browser: Playwright drives Debian's headless Chromium against the served app, one test per tab."""

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from trus_hf.fileio import read_mask, write_png
from trus_hf.metrics import binary_metrics
from trus_hf.synthetic import generate_phantom
from trus_hf.video import write_video

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SHOTS = Path(__file__).resolve().parent.parent / "docs"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not __import__("os").environ.get("CI"),
    reason="Debian chromium is not installed (CI installs it)",
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, served):
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    requested = []
    page.on("request", lambda req: requested.append(req.url))
    page.goto(served["url"], wait_until="load")
    page.locator("#image_file").wait_for(timeout=60_000)
    yield page
    # works offline: the page asked nothing of any host but the app itself (no web fonts, CDNs or analytics)
    outside = [u for u in requested if not u.startswith((served["url"], "data:", "blob:"))]
    page.close()
    assert not outside, outside[:5]


def _number(page, elem_id: str) -> float:
    from playwright.sync_api import expect

    box = page.locator(f"#{elem_id} input")
    expect(box).to_be_visible(timeout=90_000)
    expect(page.locator(f"#{elem_id} .progress-text, #{elem_id} .eta-bar")).to_have_count(0, timeout=90_000)
    return float(box.input_value())


def _shot(page, name: str, tmp_path: Path) -> None:
    """A screenshot of the run: into docs/ when TRUS_HF_SCREENSHOTS is set (the README's pictures), else tmp."""
    import os

    target = SHOTS / name if os.environ.get("TRUS_HF_SCREENSHOTS") else tmp_path / name
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000


def test_segment_tab_upload_preview_run_read_and_download(page, served, tmp_path):
    from playwright.sync_api import expect

    d = served["dir"]
    assert not page.locator("#iou input").is_visible()  # nothing computed, nothing shown (no "0")
    page.locator("#image_file input[type=file]").set_input_files(str(d / "frame.dcm"))  # DICOM: decoded on the server
    expect(page.locator("#preview img")).to_be_visible(timeout=30_000)
    expect(page.locator("#size_info")).to_contain_text("360 x 300 pixels")
    page.locator("#mask_file input[type=file]").set_input_files(str(d / "frame_mask.png"))
    page.locator("#segment").click()
    shown = _number(page, "iou")
    expect(page.locator("#overlay img")).to_be_visible(timeout=30_000)
    expect(page.locator("#annotated")).to_contain_text("lesion: both")  # the legend
    links = page.locator("#mask_download a")
    expect(links.first).to_be_visible()
    with page.expect_download() as download:
        links.first.click()
    saved = tmp_path / "mask.png"
    download.value.save_as(saved)
    assert read_mask(saved).shape == (300, 360)
    _shot(page, "app.png", tmp_path)
    pipe = served["cache"].get("Demo FPN", "torch")
    expected = pipe(served["phantom"].image, ground_truth=served["phantom"].lesion_mask).iou  # the slider at 0: tuned
    assert shown == pytest.approx(expected, abs=1e-3)


def test_example_click_fills_the_inputs_and_compare_tab_shows_both_models(page, served, tmp_path):
    from playwright.sync_api import expect

    import app as trus_app
    from trus_hf.fileio import read_image

    image_path, mask_path, _ = map(Path, trus_app.make_examples()[0])
    page.get_by_test_id("dataset-cell-0-0").click()  # the first example's row
    expect(page.locator("#image_file")).to_contain_text(image_path.stem, timeout=10_000)
    expect(page.locator("#mask_file")).to_contain_text(mask_path.stem, timeout=10_000)
    page.get_by_role("tab", name="Compare two models").click()
    page.locator("#compare").click()
    iou_a, iou_b, agreement = _number(page, "iou_a"), _number(page, "iou_b"), _number(page, "agreement")
    assert _number(page, "ms_a") > 0 and _number(page, "ms_b") > 0
    _shot(page, "compare.png", tmp_path)
    cache = served["cache"]
    image, gt = read_image(image_path), read_mask(mask_path)
    a = cache.get("Demo FPN", "torch")(image, ground_truth=gt)
    b = cache.get("Demo Segformer", "torch")(image, ground_truth=gt)
    assert (iou_a, iou_b) == (pytest.approx(a.iou, abs=1e-3), pytest.approx(b.iou, abs=1e-3))
    assert agreement == pytest.approx(binary_metrics(a.mask, b.mask)["iou"], abs=1e-3)


def test_batch_tab_segments_a_zip_and_offers_the_downloads(page, served, tmp_path):
    from playwright.sync_api import expect

    with zipfile.ZipFile(tmp_path / "frames.zip", "w") as z:
        for i in range(3):
            z.write(write_png(tmp_path / f"b{i}.png", generate_phantom(70 + i, (160, 200), "clean").image), f"b{i}.png")
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch_files input[type=file]").set_input_files(str(tmp_path / "frames.zip"))
    page.locator("#run_batch").click()
    expect(page.locator("#batch_summary")).to_contain_text("3 frames", timeout=90_000)
    expect(page.locator("#batch_gallery img")).to_have_count(3, timeout=30_000)
    with page.expect_download() as download:
        page.locator("#batch_zip a").first.click()
    download.value.save_as(tmp_path / "masks.zip")
    with zipfile.ZipFile(tmp_path / "masks.zip") as z:
        assert sum(n.startswith("masks") for n in z.namelist()) >= 3
    expect(page.locator("#batch_csv a").first).to_be_visible()
    _shot(page, "batch.png", tmp_path)


def test_cine_tab_plays_the_overlay_video(page, served, tmp_path):
    from playwright.sync_api import expect

    frames = [np.dstack([generate_phantom(80 + i, (160, 192), "clean").image] * 3) for i in range(8)]
    video = write_video(tmp_path / "loop.webm", frames, fps=8)
    page.get_by_role("tab", name="Cine loop").click()
    page.locator("#cine_file input[type=file]").set_input_files(str(video))
    page.locator("#run_cine").click()
    expect(page.locator("#cine_video video")).to_be_visible(timeout=120_000)
    expect(page.locator("#cine_info")).to_contain_text("frames_per_second_segmented", timeout=30_000)
    _shot(page, "cine.png", tmp_path)


def test_correct_tab_paint_save_and_read_the_change(page, served, tmp_path):
    from playwright.sync_api import expect

    page.locator("#image_file input[type=file]").set_input_files(str(served["dir"] / "frame.png"))
    page.get_by_role("tab", name="Correct and keep").click()
    page.locator("#open_editor").click()
    expect(page.locator("#predicted_mask a").first).to_be_visible(timeout=90_000)
    page.locator("#editor button[aria-label='Brush']").first.click()
    box = page.locator("#editor canvas").first.bounding_box()
    x, y = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.45
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(20):
        page.mouse.move(x + i * 6, y + i * 2)
    page.mouse.up()
    page.locator("#save_correction").click()
    change, pixels = _number(page, "change"), _number(page, "mask_pixels")
    with page.expect_download() as download:
        page.locator("#corrected_mask a").first.click()
    download.value.save_as(tmp_path / "frame.png")
    corrected = read_mask(tmp_path / "frame.png")
    _shot(page, "correct.png", tmp_path)
    assert corrected.shape == (300, 360) and corrected.sum() == pixels > 0  # the stroke is in the mask
    assert change < 1.0  # and the mask changed
