"""Debian's chromium and chromium-driver driven by Selenium: what the browser tests share.

A test module calls :func:`require_chromium` at import (it skips the module, with the reason, when the
packages are absent) and starts its browser with :func:`start_chromium`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def require_chromium() -> None:
    """Skip the calling test module (with the reason) when the browser or Selenium is absent."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver)", allow_module_level=True)
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the [web] extra)")


def start_chromium(*, window: str, args: Iterable[str] = (), console_log: bool = False) -> Any:
    """A headless Chromium with a ``window`` of ``"width,height"``; ``console_log`` keeps the page's console."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={window}", "--disable-extensions", *args):
        options.add_argument(arg)
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
