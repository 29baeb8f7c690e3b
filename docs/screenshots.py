"""Regenerate the README's screenshots of the web interface from the sample data set.

    .venv/bin/python docs/screenshots.py            # writes docs/img/ui-tag.png, ui-dashboard.png

Starts the whole stack on loopback (`outpost.localstack`: origin with the sample data set, a
site proxy, two node proxies, the dashboard sampling every second), plays run starts
through the node proxies (six: a flush, then every farm process fetching the run), and photographs
with headless chromium (selenium, through chromium-driver: `scripts/bootstrap --servers`):

- the conditions browser's page of the sample tag with the most corrections, read through the
  site proxy;
- the site's cache-tree dashboard after the run starts.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from outpost.client import Client  # noqa: E402
from outpost.localstack import LocalStack  # noqa: E402

GLOBAL_TAG = "OUTPOST_HLT_2026_V1"  # the sample's (origin.sample.HLT_GLOBAL_TAG)
IMAGES = ROOT / "docs" / "img"


def browser(width: int, height: int) -> webdriver.Chrome:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        raise SystemExit("screenshots: needs chromium and chromium-driver (apt-get install …)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-proxy-server"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service(driver), options=options)


def most_corrected_tag(origin: str) -> str:
    """The tag of the global tag whose history re-inserts the most (channel, since) pairs."""
    tags = {
        entry["tag"] for entry in httpx.get(f"{origin}/v1/globaltags/{GLOBAL_TAG}").json()["map"]
    }
    best, most = sorted(tags)[0], -1
    for tag in sorted(tags):
        seen: set[tuple[int, int]] = set()
        corrections = 0
        for change in httpx.get(f"{origin}/v1/tags/{tag}/history").json()["history"]:
            for iov in change.get("iovs", []):
                key = (iov["channel"], iov["since"])
                corrections += key in seen
                seen.add(key)
        if corrections > most:
            best, most = tag, corrections
    return best


def run_starts(stack: LocalStack, runs: int = 6) -> None:
    token = {"authorization": f"Bearer {stack.token}"}
    for run in range(500, 500 + runs):
        httpx.post(f"{stack.site.url}/_outpost/flush", json={"run": run}, headers=token)
        for node in stack.node_proxies:
            with Client(proxies=[node.url]) as client:
                for _ in range(20):  # the farm processes behind this node
                    client.fetch_run(GLOBAL_TAG, run)
        time.sleep(4)  # a few dashboard samples between run starts


def main() -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    os.environ["OUTPOST_PROXY_DASHBOARD_SAMPLE_SECONDS"] = "1"
    os.environ["OUTPOST_PROXY_HEARTBEAT_SECONDS"] = "1"
    with tempfile.TemporaryDirectory(prefix="outpost-screenshots-") as tmp:
        db = f"sqlite:///{Path(tmp) / 'outpost.sqlite'}"
        with LocalStack(nodes=2, db=db) as stack:
            run_starts(stack)
            tag = most_corrected_tag(stack.origin.url)
            driver = browser(1280, 900)
            try:
                for url, name in (
                    (f"{stack.site.url}/ui/tags/{tag}", "ui-tag.png"),
                    (f"{stack.site.url}/_outpost/ui/", "ui-dashboard.png"),
                ):
                    driver.get(url)
                    height = driver.execute_script("return document.body.scrollHeight")
                    driver.set_window_size(1280, min(int(height) + 20, 1600))
                    driver.save_screenshot(str(IMAGES / name))
                    print(f"{IMAGES / name}: {url}")
            finally:
                driver.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
