"""The web interface in a real browser: Debian's chromium, headless, driven by selenium.

Real processes on loopback: origin (the sample data set) → site → node. The conditions browser
is read through the site, as every read is; the dashboard is the site's own. Each page visited
is saved as a screenshot under the test's temporary directory, and a test fails when a page
logs a JavaScript error."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from support.browser import chromium, errors, shot
from support.servers import outpost_command
from support.stack import RUN_CONTROL_TOKEN, Stack, running_stack

from origin.sample import HLT_GLOBAL_TAG, PROMPT_GLOBAL_TAG


@pytest.fixture(scope="module")
def tree(
    tmp_path_factory: pytest.TempPathFactory, sqlite_templates: dict[bool, Path]
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("web-tree")
    shutil.copyfile(sqlite_templates[True], root / "conditions.sqlite")
    with running_stack(root) as stack:
        origin = stack.origin(f"sqlite:///{root / 'conditions.sqlite'}")
        site = stack.proxy("site", [origin.url], env={"OUTPOST_PROXY_HEARTBEAT_SECONDS": "1"})
        stack.proxy(
            "node-1",
            [site.url],
            parent=site.url,
            env={"OUTPOST_PROXY_HEARTBEAT_SECONDS": "1", "OUTPOST_RUN_CONTROL_TOKEN": ""},
        )
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[list[Path]]:
    saved: list[Path] = []
    yield saved
    assert all(path.stat().st_size > 10_000 for path in saved), saved  # real pictures


def visit(browser: WebDriver, shots: list[Path], directory: Path, name: str) -> None:
    """The page now shown: saved, and free of JavaScript errors."""
    path = directory / f"{len(shots):02d}-{name}.png"
    shot(browser, path)
    shots.append(path)
    assert errors(browser) == [], f"{name} logged JavaScript errors"
    assert "Traceback" not in browser.page_source


def click(browser: WebDriver, css: str) -> None:
    browser.find_element(By.CSS_SELECTOR, css).click()


def test_from_the_global_tags_to_a_diff_a_timeline_a_run_and_a_payload(
    tree: Stack, browser: WebDriver, shots: list[Path], tmp_path: Path
) -> None:
    site = tree["site"]
    browser.get(f"{site.url}/ui/")
    assert HLT_GLOBAL_TAG in browser.find_element(By.TAG_NAME, "main").text
    visit(browser, shots, tmp_path, "globaltags")

    click(browser, f"a[href='/ui/globaltags/{HLT_GLOBAL_TAG}']")
    assert HLT_GLOBAL_TAG in browser.find_element(By.TAG_NAME, "h1").text
    mapped = browser.find_elements(By.CSS_SELECTOR, "main a[href^='/ui/tags/']")
    assert len(mapped) >= 5, "the record → tag map links its tags"
    visit(browser, shots, tmp_path, "globaltag")

    other = browser.find_element(By.CSS_SELECTOR, "form[action='/ui/diff'] input[name='b']")
    other.clear()
    other.send_keys(PROMPT_GLOBAL_TAG)
    other.submit()
    WebDriverWait(browser, 10).until(lambda b: "/ui/diff" in b.current_url)
    main = browser.find_element(By.TAG_NAME, "main").text
    assert HLT_GLOBAL_TAG in main and PROMPT_GLOBAL_TAG in main
    assert browser.find_elements(By.CSS_SELECTOR, "tr.added, tr.removed, tr.changed")
    visit(browser, shots, tmp_path, "diff")

    browser.back()
    tag_link = browser.find_element(By.CSS_SELECTOR, "main a[href^='/ui/tags/']")
    tag = tag_link.get_attribute("href").rsplit("/", 1)[-1]
    tag_link.click()
    assert tag in browser.find_element(By.TAG_NAME, "h1").text
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.timeline rect")
    assert bars, "the IOV timeline is drawn"
    visit(browser, shots, tmp_path, "tag")

    browser.back()
    run = browser.find_element(By.CSS_SELECTOR, "form input[name='run']")
    run.send_keys("500")
    run.submit()
    WebDriverWait(browser, 10).until(lambda b: "/ui/resolve/" in b.current_url)
    assert "run=500" in browser.current_url  # a form sends its empty fields too: accepted
    payloads = browser.find_elements(By.CSS_SELECTOR, "main a[href^='/ui/payloads/']")
    assert len(payloads) >= 5, "each record links its payload"
    visit(browser, shots, tmp_path, "resolve")

    digest = payloads[0].get_attribute("href").rsplit("/", 1)[-1]
    payloads[0].click()
    assert digest in browser.find_element(By.TAG_NAME, "main").text
    download = browser.find_element(By.CSS_SELECTOR, f"a[href='/v1/payloads/{digest}']")
    assert download.is_displayed()
    assert browser.find_element(By.CSS_SELECTOR, "pre").text.strip(), "a preview of the bytes"
    twin = browser.find_element(By.CSS_SELECTOR, "link[rel='alternate']")
    assert twin.get_attribute("href").endswith(f"/v1/payloads/{digest}/info")
    visit(browser, shots, tmp_path, "payload")


def test_the_dashboard_changes_by_itself_while_a_flush_runs(
    tree: Stack, browser: WebDriver, shots: list[Path], tmp_path: Path
) -> None:
    site = tree["site"]
    browser.get(f"{site.url}/_outpost/ui/")
    WebDriverWait(browser, 15).until(  # node-1's heartbeat reached the site
        lambda b: "node-1" in b.find_element(By.ID, "children").text
    )
    before = int(browser.find_element(By.CSS_SELECTOR, "h1 .epoch").text)
    flushes = len(browser.find_elements(By.CSS_SELECTOR, "#flushes tr.flush"))
    visit(browser, shots, tmp_path, "dashboard-before")

    clean = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    flushed = subprocess.run(
        outpost_command("flush", "--run", "4242", "--proxy", site.url),
        env={**clean, "OUTPOST_RUN_CONTROL_TOKEN": RUN_CONTROL_TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr

    # no reload: the page's own refresh brings the flush in
    WebDriverWait(browser, 15).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#flushes tr.flush")) > flushes
    )
    row = browser.find_element(By.CSS_SELECTOR, "#flushes tr.flush").text
    assert "4242" in row
    assert int(browser.find_element(By.CSS_SELECTOR, "h1 .epoch").text) == before + 1
    assert browser.execute_script("return document.body.dataset.updated") is not None
    visit(browser, shots, tmp_path, "dashboard-after")
