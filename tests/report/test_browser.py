"""The HTML report in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium):
every image loads, the console stays free of errors, and a screenshot is saved.

The screenshot goes to the test's tmp folder; with ``CAMELS_SAVE_SCREENSHOT=1`` it is also written to
``docs/images/report.png`` (the README's picture), cropped to the table and the first plots.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from camels.report import build_report
from headless import require_chromium, start_chromium

from .helpers import sample_study

require_chromium()
from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
README_PICTURE = ROOT / "docs" / "images" / "report.png"


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium(window="1400,1000", args=("--hide-scrollbars",), console_log=True)
    yield driver
    driver.quit()


def test_html_report_loads_every_image(tmp_path, browser):
    study = sample_study(tmp_path)
    outs = build_report([study["runs"]], tmp_path / "out", reference="tulu-7b", baseline="base-7b",
                        training_runs=study["training"], human=study["human"], n_boot=300,
                        title="camels report: three 7B models (synthetic runs)")
    page = outs.html.read_text(encoding="utf-8")
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    browser.get(outs.html.as_uri())
    browser.get_log("browser")  # drop anything logged before this page (none expected)
    browser.refresh()
    images = browser.find_elements(By.TAG_NAME, "img")
    # 6 skill charts + 3 radar charts + 1 loss chart
    assert len(images) == 10
    for img in images:
        state = browser.execute_script("return [arguments[0].complete, arguments[0].naturalWidth, "
                                       "arguments[0].naturalHeight, arguments[0].alt]", img)
        assert state[0] is True and state[1] > 0 and state[2] > 0, state
    alts = [img.get_attribute("alt") for img in images]
    assert alts[0] == "Factual knowledge: bars per model" and alts[-1] == "training loss curves"
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "th.skill")]
    assert headers == ["Factual knowledge", "Reasoning", "Multilinguality", "Coding", "Open-ended/safety",
                       "Human acceptance"]
    first = browser.find_element(By.CSS_SELECTOR, "tr.published td.model").text
    assert first == "Tülu 7B (published) (reference)"
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    if os.environ.get("CAMELS_SAVE_SCREENSHOT"):
        browser.set_window_size(1600, 1000)
        README_PICTURE.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(README_PICTURE))
