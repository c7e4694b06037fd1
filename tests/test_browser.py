"""A real browser: Playwright drives Debian's headless Chromium against the served app."""

import shutil
from pathlib import Path

import pytest


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not __import__("os").environ.get("CI"),
                                reason="Debian chromium is not installed (CI installs it)")


def test_upload_image_and_mask_click_and_read_the_iou(served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    d = served["dir"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        requested = []
        page.on("request", lambda req: requested.append(req.url))
        page.goto(served["url"], wait_until="networkidle")
        page.locator("#image_file input[type=file]").set_input_files(str(d / "frame.png"))
        page.locator("#mask_file input[type=file]").set_input_files(str(d / "frame_mask.png"))
        page.locator("#segment").click()
        # The number box shows "0" until a result arrives: wait for the overlay and for the progress to end.
        expect(page.locator("#overlay img")).to_be_visible(timeout=60_000)
        expect(page.locator("#iou .progress-text, #iou .eta-bar")).to_have_count(0, timeout=30_000)
        iou_box = page.locator("#iou input")
        expect(iou_box).not_to_have_value("0", timeout=10_000)
        shown = float(iou_box.input_value())
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        browser.close()
    # works offline: the page asked nothing of any host but the app itself (no web fonts, CDNs or analytics)
    outside = [u for u in requested if not u.startswith((served["url"], "data:", "blob:"))]
    assert not outside, outside[:5]
    # the value shown equals the pipeline's IoU for the same image, model and threshold
    pipe = served["cache"].get(str(served["cache"].demo["fpn"]), "torch")
    expected = pipe(served["phantom"].image, ground_truth=served["phantom"].lesion_mask, threshold=0.5).iou
    assert shown == pytest.approx(expected, abs=1e-3)
    assert (tmp_path / "app.png").stat().st_size > 10_000
