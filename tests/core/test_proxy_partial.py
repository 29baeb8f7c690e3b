"""Stored parts and how they combine (RFC 9111 §3.3, §3.4): `proxy.core.partial`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.partial import ContentRange, combine, content_range, holds, part_of, with_range
from proxy.core.ranges import Partial

DATA = bytes(range(256)) * 4  # 1024 bytes
STRONG = [(b"etag", b'"v1"')]


def part(first: int, last: int) -> tuple[ContentRange, list[tuple[bytes, bytes]], bytes]:
    headers = [*STRONG, (b"content-range", b"bytes %d-%d/1024" % (first, last))]
    return ContentRange(first, last, 1024), headers, DATA[first : last + 1]


def test_a_single_satisfied_range_of_a_known_length_is_a_part() -> None:
    headers = [(b"content-range", b"bytes 10-19/1024")]
    assert content_range(headers, 10) == ContentRange(10, 19, 1024)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (b"bytes 10-19/*", 10),  # unknown length
        (b"bytes */1024", 0),  # unsatisfied
        (b"bytes 19-10/1024", 10),  # backwards
        (b"bytes 10-1024/1024", 1015),  # past the end
        (b"bytes 10-19/1024", 9),  # the body is not the range's size
        (b"items 10-19/1024", 10),
        (b"bytes 1-2/3, bytes 4-5/6", 2),
    ],
)
def test_anything_else_is_not_a_part(value: bytes, size: int) -> None:
    assert content_range([(b"content-range", value)], size) is None


def test_two_content_ranges_are_not_a_part() -> None:
    lines = [(b"content-range", b"bytes 0-1/4"), (b"content-range", b"bytes 0-1/4")]
    assert content_range(lines, 2) is None


@given(st.integers(0, 1023), st.integers(0, 1023), st.integers(0, 1023), st.integers(0, 1023))
def test_overlapping_or_touching_parts_combine_into_the_right_bytes(
    a: int, b: int, c: int, d: int
) -> None:
    (first_a, last_a), (first_b, last_b) = sorted((a, b)), sorted((c, d))
    merged = combine(*part(first_a, last_a), *part(first_b, last_b))
    if first_b > last_a + 1 or first_a > last_b + 1:
        assert merged is None  # a gap between them
        return
    assert merged is not None
    found, body = merged
    assert found == ContentRange(min(first_a, first_b), max(last_a, last_b), 1024)
    assert body == DATA[found.first : found.last + 1]


@pytest.mark.parametrize("etag", [b'"v2"', b'W/"v1"', None])
def test_parts_of_another_or_a_weakly_validated_representation_do_not_combine(
    etag: bytes | None,
) -> None:
    stored = part(0, 99)
    new_range, new_headers, new_body = part(100, 199)
    new_headers = [(k, v) for k, v in new_headers if k != b"etag"]
    if etag is not None:
        new_headers.append((b"etag", etag))
    assert combine(*stored, new_range, new_headers, new_body) is None


def test_parts_of_another_length_do_not_combine() -> None:
    other = ContentRange(100, 199, 2048)
    assert combine(*part(0, 99), other, STRONG, DATA[100:200]) is None


def test_a_part_answers_the_ranges_inside_it() -> None:
    found, _, body = part(100, 199)
    assert (
        holds(found, Partial(120, 129)) and part_of(found, body, Partial(120, 129)) == DATA[120:130]
    )
    assert not holds(found, Partial(90, 120))
    assert not holds(found, Partial(150, 200))


def test_with_range_replaces_the_range_and_the_length() -> None:
    headers = [(b"content-range", b"bytes 0-9/20"), (b"content-length", b"10"), (b"x", b"y")]
    assert with_range(headers, ContentRange(2, 4, 20)) == [
        (b"x", b"y"),
        (b"content-range", b"bytes 2-4/20"),
        (b"content-length", b"3"),
    ]
