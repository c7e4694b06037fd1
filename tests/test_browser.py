"""A real browser: Playwright drives Debian's headless Chromium against the served app."""

import shutil
from pathlib import Path

import pytest

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

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not __import__("os").environ.get("CI"),
    reason="Debian chromium is not installed (CI installs it)",
)


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


def test_example_click_fills_both_inputs_then_segment_and_compare(served, tmp_path):
    """One click on an example fills the image and its ground truth; Segment shows that frame's IoU; the Compare tab
    shows both models' IoUs and their agreement, each equal to the library's own result for the example."""
    from playwright.sync_api import expect, sync_playwright

    import app as trus_app
    from trus_hf.fileio import read_image, read_mask
    from trus_hf.metrics import binary_metrics

    image_path, mask_path = map(Path, trus_app.make_examples()[0])
    image, gt = read_image(image_path), read_mask(mask_path)
    cache = served["cache"]
    results = {
        name: cache.get(str(cache.demo[name]), "torch")(image, ground_truth=gt, threshold=0.5)
        for name in ("fpn", "segformer")
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(served["url"], wait_until="networkidle")
        page.get_by_text(image_path.name, exact=True).first.click()
        expect(page.locator("#image_file")).to_contain_text(image_path.stem, timeout=10_000)
        expect(page.locator("#mask_file")).to_contain_text(mask_path.stem, timeout=10_000)

        def number(elem_id: str) -> float:
            expect(page.locator(f"#{elem_id} .progress-text, #{elem_id} .eta-bar")).to_have_count(0, timeout=60_000)
            box = page.locator(f"#{elem_id} input")
            expect(box).not_to_have_value("0", timeout=30_000)
            return float(box.input_value())

        page.locator("#segment").click()
        expect(page.locator("#overlay img")).to_be_visible(timeout=60_000)
        assert number("iou") == pytest.approx(results["fpn"].iou, abs=1e-3)

        page.get_by_role("tab", name="Compare FPN vs Segformer").click()
        page.locator("#compare").click()
        fpn_iou, seg_iou, agreement = number("fpn_iou"), number("seg_iou"), number("agreement")
        page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
        browser.close()
    assert fpn_iou == pytest.approx(results["fpn"].iou, abs=1e-3)
    assert seg_iou == pytest.approx(results["segformer"].iou, abs=1e-3)
    expected = binary_metrics(results["fpn"].mask, results["segformer"].mask)["iou"]
    assert agreement == pytest.approx(expected, abs=1e-3)
