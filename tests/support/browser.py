"""Debian's chromium, headless, driven through chromium-driver by selenium (the browser tests).

`chromium()` starts one browser that logs what its pages print to the console; `errors(driver)`
is what they logged at level SEVERE (uncaught exceptions, failed scripts), which a browser test
fails on; `shot(driver, path)` saves a screenshot of the whole page.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

__all__ = ["chromium", "errors", "shot"]

BINARIES = ("chromium", "chromium-browser", "google-chrome")


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[webdriver.Chrome]:
    binary = next((found for b in BINARIES if (found := shutil.which(b))), None)
    driver_binary = shutil.which("chromedriver")
    if binary is None or driver_binary is None:
        raise RuntimeError(
            "the browser tests need chromium and chromium-driver: scripts/bootstrap --servers "
            "installs them (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-proxy-server",  # loopback only, whatever the environment says
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_binary), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def errors(driver: webdriver.Chrome) -> list[str]:
    """What the pages logged at level SEVERE since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def shot(driver: webdriver.Chrome, path: Path) -> None:
    """A screenshot of the whole page (the window grown to the page's height) in `path`."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(int(height), 600), 6000))
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
