"""Plots drawn on the server (`outpost.web.svg`) and the page layout (`outpost.web`): data is
escaped wherever it lands, numbers are laid out on one axis, a live page carries its refresher."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from outpost.web import page
from outpost.web.svg import Segment, TimelineRow, colour, nice_ticks, sparkline, timeline

HOSTILE = '"><script>alert(1)</script><a x="'


def test_a_timeline_is_well_formed_svg_with_a_bar_per_iov_and_text_from_data_escaped() -> None:
    rows = [
        TimelineRow("channel 0", (Segment(1, 10, "a" * 64, HOSTILE, href=f"/x?{HOSTILE}"),)),
        TimelineRow(HOSTILE, (Segment(10, None, None, "open", correction=True),)),
    ]
    markup = str(timeline(rows, 1, 20))
    tree = ET.fromstring(markup)  # parses: nothing broke out of an attribute or a text
    rects = tree.findall(".//{http://www.w3.org/2000/svg}rect")
    assert len(rects) == 2
    assert "<script>" not in markup and markup.count('class="correction"') == 1


def test_the_same_payload_has_the_same_colour_and_no_payload_is_grey() -> None:
    assert colour("ab" * 32) == colour("ab" * 32) != colour("cd" * 32)
    assert colour(None) == "#d0d0d0"


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**12))
def test_ticks_are_inside_the_range_and_increasing(low: int, span: int) -> None:
    ticks = nice_ticks(low, low + span)
    assert ticks == sorted(ticks) and 1 <= len(ticks) <= 12
    assert all(low - 1e-6 * span <= t <= low + span * (1 + 1e-6) for t in ticks)


def test_a_sparkline_skips_missing_samples_and_shows_the_latest_value() -> None:
    tree = ET.fromstring(str(sparkline([None, 1.0, 3.0, None, 2.0], label=HOSTILE)))
    line = tree.find("{http://www.w3.org/2000/svg}polyline")
    assert line is not None and len(line.attrib["points"].split()) == 3
    assert tree.findtext("{http://www.w3.org/2000/svg}text") == "2"
    assert ET.fromstring(str(sparkline([]))) is not None  # no samples yet: still a plot


def test_a_page_escapes_its_title_links_its_json_twin_and_only_a_live_page_has_a_script() -> None:
    still = page(
        "base.html", title=HOSTILE, nav=[("/ui/", "Home")], home="/ui/",
        cache_control="no-store", twin="/v1/globaltags",
    )  # fmt: skip
    body = bytes(still.body).decode()
    assert "<script>alert" not in body and "&lt;script&gt;" in body
    assert 'rel="alternate" type="application/json" href="/v1/globaltags"' in body
    assert "<script>" not in body and still.headers["cache-control"] == "no-store"
    live = page("base.html", title="t", nav=[], home="/", cache_control="no-store", refresh=2)
    assert (
        'data-refresh="2"' in bytes(live.body).decode() and "<script>" in bytes(live.body).decode()
    )
