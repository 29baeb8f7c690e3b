"""Stored entries: freshness lifetime (RFC 9111 §4.2.1, §4.2.2), corrected initial age
(§4.2.3), age, freshness and TTL at `now`, and the update after a 304 (§4.3.4)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest

from proxy.core import entry as entry_module
from proxy.core.entry import Entry, parse_http_date

SECOND = 1_000_000
DAY = 86_400 * SECOND
NOW = 1_800_000_000 * SECOND  # whole seconds, so HTTP-dates are exact
HEURISTIC_STATUSES = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]


def at(seconds: float) -> int:
    """`seconds` after NOW, in µs."""
    return NOW + int(seconds * SECOND)


def http_date(micros: int) -> str:
    return formatdate(micros // SECOND, usegmt=True)


def make_entry(
    headers: dict[str, str] | None = None,
    *,
    status: int = 200,
    body: bytes = b"body",
    request_time: int = NOW,
    response_time: int = NOW,
    epoch: int = 1,
) -> Entry:
    pairs = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return entry_module.make_entry(status, pairs, body, request_time, response_time, epoch)


# --- freshness lifetime ------------------------------------------------------------------


def test_s_maxage_wins_over_max_age_and_expires() -> None:
    entry = make_entry(
        {
            "date": http_date(NOW),
            "expires": http_date(at(3600)),
            "cache-control": "max-age=60, s-maxage=30",
        }
    )
    assert entry.freshness == 30 * SECOND


def test_max_age_wins_over_expires() -> None:
    entry = make_entry(
        {"date": http_date(NOW), "expires": http_date(at(3600)), "cache-control": "max-age=60"}
    )
    assert entry.freshness == 60 * SECOND


def test_max_age_zero_is_a_lifetime_of_zero_not_a_fallback_to_expires() -> None:
    entry = make_entry(
        {"date": http_date(NOW), "expires": http_date(at(3600)), "cache-control": "max-age=0"}
    )
    assert entry.freshness == 0


def test_expires_minus_date_is_the_lifetime() -> None:
    entry = make_entry({"date": http_date(NOW), "expires": http_date(at(120))})
    assert entry.freshness == 120 * SECOND


def test_expires_minus_date_does_not_depend_on_when_the_response_arrived() -> None:
    entry = make_entry({"date": http_date(at(-1000)), "expires": http_date(at(-900))})
    assert entry.freshness == 100 * SECOND


def test_expires_before_date_is_already_expired() -> None:
    entry = make_entry({"date": http_date(NOW), "expires": http_date(at(-60))})
    assert entry.freshness == 0


@pytest.mark.parametrize("expires", ["0", "-1", "never", ""])
def test_an_invalid_expires_means_already_expired(expires: str) -> None:
    # Last-Modified would give a heuristic lifetime: an invalid Expires must not fall back to it.
    entry = make_entry(
        {
            "date": http_date(NOW),
            "last-modified": http_date(at(-10_000)),
            "expires": expires,
        }
    )
    assert entry.freshness == 0


def test_expires_without_date_counts_from_when_the_response_arrived() -> None:
    # RFC 9111 §4.2.1: Expires minus Date, "using the time the message was received if it is
    # not present" (RFC 9110 §6.6.1).
    entry = make_entry({"expires": http_date(at(60))}, response_time=NOW)
    assert entry.freshness == 60 * SECOND


def test_the_heuristic_is_a_tenth_of_the_time_since_last_modified() -> None:
    entry = make_entry({"date": http_date(NOW), "last-modified": http_date(at(-1000))})
    assert entry.freshness == 100 * SECOND


def test_the_heuristic_is_capped_at_one_day() -> None:
    entry = make_entry({"date": http_date(NOW), "last-modified": http_date(NOW - 100 * DAY)})
    assert entry.freshness == DAY


def test_a_last_modified_after_date_gives_no_heuristic_lifetime() -> None:
    entry = make_entry({"date": http_date(NOW), "last-modified": http_date(at(1000))})
    assert entry.freshness == 0


def test_a_last_modified_at_the_unix_epoch_still_gives_a_heuristic_lifetime() -> None:
    # "Thu, 01 Jan 1970 00:00:00 GMT" is a valid HTTP-date: it parses to 0, which is not absent.
    entry = make_entry({"date": http_date(NOW), "last-modified": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert entry.freshness == DAY


@pytest.mark.parametrize(
    "headers",
    [
        {"date": http_date(NOW)},
        {"date": http_date(NOW), "last-modified": "yesterday"},
    ],
    ids=["no-last-modified", "bad-last-modified"],
)
def test_the_heuristic_needs_a_last_modified(headers: dict[str, str]) -> None:
    assert make_entry(headers).freshness == 0


def test_without_date_the_heuristic_counts_from_arrival() -> None:
    # RFC 9110 §6.6.1: a response without Date is dated when it arrives.
    assert make_entry({"last-modified": http_date(at(-1000))}).freshness == 100 * SECOND


@pytest.mark.parametrize("status", HEURISTIC_STATUSES)
def test_heuristically_cacheable_statuses_get_a_heuristic_lifetime(status: int) -> None:
    entry = make_entry(
        {"date": http_date(NOW), "last-modified": http_date(at(-1000))}, status=status
    )
    assert entry.freshness == 100 * SECOND


@pytest.mark.parametrize("status", [201, 202, 302, 303, 307, 400, 403, 500, 502, 503])
def test_other_statuses_get_no_heuristic_lifetime(status: int) -> None:
    entry = make_entry(
        {"date": http_date(NOW), "last-modified": http_date(at(-1000))}, status=status
    )
    assert entry.freshness == 0


def test_public_allows_a_heuristic_lifetime_for_any_status() -> None:
    entry = make_entry(
        {
            "date": http_date(NOW),
            "last-modified": http_date(at(-1000)),
            "cache-control": "public",
        },
        status=302,
    )
    assert entry.freshness == 100 * SECOND


def test_no_freshness_information_is_a_lifetime_of_zero() -> None:
    assert make_entry({"date": http_date(NOW), "etag": '"v1"'}).freshness == 0


def test_a_malformed_max_age_makes_the_answer_stale_whatever_expires_says() -> None:
    # RFC 9111 §4.2.1: "caches are encouraged to consider responses that have invalid
    # freshness information (e.g., a max-age directive with non-integer content) to be stale"
    entry = make_entry(
        {"date": http_date(NOW), "expires": http_date(at(90)), "cache-control": "max-age=x"}
    )
    assert entry.freshness == 0


# --- HTTP-dates --------------------------------------------------------------------------

NOV_6_1994 = 784_111_777 * SECOND


@pytest.mark.parametrize(
    "value",
    [
        b"Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        b"Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        b"Sun Nov  6 08:49:37 1994",  # obsolete asctime
    ],
)
def test_all_three_http_date_formats_are_read(value: bytes) -> None:
    assert parse_http_date(value) == NOV_6_1994


@pytest.mark.parametrize(
    "value", [None, b"", b"yesterday", b"0", b"Sun, 32 Nov 1994 08:49:37 GMT", b"\xff\xfe"]
)
def test_an_invalid_http_date_is_none(value: bytes | None) -> None:
    assert parse_http_date(value) is None


@pytest.fixture
def local_time_zone() -> Iterator[None]:
    """Run with the process's local time zone five hours west of UTC."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "EST5"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("local_time_zone")
def test_http_dates_do_not_depend_on_the_local_time_zone() -> None:
    # RFC 9110 §5.6.7: the asctime form carries no zone and is UTC, like the other two.
    assert parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT") == NOV_6_1994
    assert parse_http_date(b"Sun Nov  6 08:49:37 1994") == NOV_6_1994


# --- corrected initial age (RFC 9111 §4.2.3) ---------------------------------------------


def test_initial_age_is_the_age_header_plus_the_response_delay() -> None:
    entry = make_entry(
        {"date": http_date(at(2)), "age": "10"}, request_time=NOW, response_time=at(2)
    )
    assert entry.initial_age == 12 * SECOND


def test_initial_age_is_the_apparent_age_from_date_when_that_is_larger() -> None:
    entry = make_entry(
        {"date": http_date(at(-30)), "age": "5"}, request_time=at(-1), response_time=NOW
    )
    assert entry.initial_age == 30 * SECOND


def test_initial_age_is_the_corrected_age_when_that_is_larger() -> None:
    entry = make_entry(
        {"date": http_date(at(-30)), "age": "100"}, request_time=at(-3), response_time=NOW
    )
    assert entry.initial_age == 103 * SECOND


def test_a_date_in_the_future_gives_no_negative_age() -> None:
    entry = make_entry({"date": http_date(at(60))})
    assert entry.initial_age == 0


def test_without_date_or_age_the_initial_age_is_the_response_delay() -> None:
    entry = make_entry({}, request_time=at(-4), response_time=NOW)
    assert entry.initial_age == 4 * SECOND


@pytest.mark.parametrize("age", ["abc", "-5", "1.5", ""])
def test_an_invalid_age_header_is_ignored(age: str) -> None:
    entry = make_entry({"age": age}, request_time=at(-2), response_time=NOW)
    assert entry.initial_age == 2 * SECOND


def test_an_age_header_with_surrounding_whitespace_counts() -> None:
    assert make_entry({"age": " 7 "}).initial_age == 7 * SECOND


def test_the_age_header_is_not_stored() -> None:
    entry = make_entry({"age": "10", "cache-control": "max-age=60", "etag": '"v1"'})
    assert [k for k, _ in entry.headers] == [b"cache-control", b"etag", b"date"]


def test_a_warning_header_is_not_stored() -> None:
    # True only of the response that carried it (e.g. an upstream serving stale).
    entry = make_entry({"warning": '110 - "Response is Stale"', "etag": '"v1"'})
    assert [k for k, _ in entry.headers] == [b"etag", b"date"]


# --- age, freshness and TTL at `now` -----------------------------------------------------


def test_age_grows_with_time_since_the_response_arrived() -> None:
    entry = make_entry({"age": "10"})
    assert entry.age(NOW) == 10 * SECOND
    assert entry.age(at(5)) == 15 * SECOND


def test_age_never_goes_below_the_initial_age() -> None:
    entry = make_entry({"age": "10"})
    assert entry.age(at(-5)) == 10 * SECOND


def test_an_entry_is_fresh_strictly_before_its_age_reaches_its_lifetime() -> None:
    entry = make_entry({"cache-control": "max-age=60"})
    assert entry.is_fresh(NOW)
    assert entry.is_fresh(at(60) - 1)
    assert not entry.is_fresh(at(60))
    assert not entry.is_fresh(at(61))


def test_an_age_header_uses_up_freshness() -> None:
    entry = make_entry({"cache-control": "max-age=60", "age": "50"})
    assert entry.is_fresh(at(9))
    assert not entry.is_fresh(at(10))


def test_an_entry_without_lifetime_is_never_fresh() -> None:
    assert not make_entry({"etag": '"v1"'}).is_fresh(NOW)


@pytest.mark.parametrize(
    ("seconds", "ttl"), [(0, 60), (20, 40), (59.5, 0), (61, -1), (90, -30), (90.5, -31)]
)
def test_ttl_is_the_remaining_freshness_in_whole_seconds(seconds: float, ttl: int) -> None:
    assert make_entry({"cache-control": "max-age=60"}).ttl(at(seconds)) == ttl


# --- derived fields ----------------------------------------------------------------------


def test_vary_is_parsed_lower_cased_sorted_and_deduplicated() -> None:
    pairs = [(b"vary", b"X-Detector, Accept-Encoding"), (b"vary", b" accept-encoding ,, ")]
    entry = entry_module.make_entry(200, pairs, b"", NOW, NOW, 1)
    assert entry.vary == (b"accept-encoding", b"x-detector")


def test_no_vary_is_an_empty_tuple() -> None:
    assert make_entry({"cache-control": "max-age=60"}).vary == ()


@pytest.mark.parametrize("directives", ["s-maxage=60", "must-revalidate", "proxy-revalidate"])
def test_s_maxage_and_the_revalidate_directives_require_revalidation(directives: str) -> None:
    assert make_entry({"cache-control": directives}).must_revalidate


def test_plain_max_age_does_not_require_revalidation() -> None:
    assert not make_entry({"cache-control": "max-age=60, public"}).must_revalidate


def test_derived_fields_come_from_the_headers() -> None:
    entry = make_entry(
        {
            "cache-control": "max-age=60, immutable, no-cache, "
            "stale-while-revalidate=30, stale-if-error=300",
            "etag": 'W/"v1"',
            "last-modified": "Sun, 06 Nov 1994 08:49:37 GMT",
        },
        status=404,
        body=b"gone",
        epoch=7,
    )
    assert (entry.status, entry.body, entry.epoch) == (404, b"gone", 7)
    assert entry.etag == b'W/"v1"'
    assert entry.last_modified == b"Sun, 06 Nov 1994 08:49:37 GMT"
    assert entry.immutable
    assert entry.no_cache
    assert entry.stale_while_revalidate == 30 * SECOND
    assert entry.stale_if_error == 300 * SECOND


def test_without_directives_the_derived_fields_are_off() -> None:
    entry = make_entry({})
    assert entry.etag is None
    assert entry.last_modified is None
    assert not (entry.immutable or entry.no_cache or entry.must_revalidate)
    assert entry.stale_while_revalidate == 0
    assert entry.stale_if_error == 0


def test_cache_control_field_lines_are_merged() -> None:
    pairs = [(b"cache-control", b"max-age=60"), (b"cache-control", b"immutable")]
    entry = entry_module.make_entry(200, pairs, b"", NOW, NOW, 1)
    assert entry.freshness == 60 * SECOND
    assert entry.immutable


# --- refreshed after a 304 (RFC 9111 §4.3.4) ---------------------------------------------

STORED = {
    "date": http_date(NOW),
    "cache-control": "max-age=60",
    "etag": '"v1"',
    "content-type": "application/json",
    "x-kept": "yes",
}


def not_modified(headers: dict[str, str], *, at_seconds: float, epoch: int = 2) -> Entry:
    """The STORED entry after a 304 with `headers` that arrived `at_seconds` after NOW."""
    stored = make_entry(STORED, body=b'{"payload": 1}', epoch=1)
    pairs = [(k.encode(), v.encode()) for k, v in headers.items()]
    moment = at(at_seconds)
    return stored.refreshed(pairs, moment - SECOND, moment, epoch)


def test_a_refreshed_entry_keeps_its_body_and_status() -> None:
    refreshed = not_modified({"date": http_date(at(100))}, at_seconds=100)
    assert refreshed.body == b'{"payload": 1}'
    assert refreshed.status == 200


def test_a_refreshed_entry_takes_the_new_header_values() -> None:
    refreshed = not_modified(
        {"date": http_date(at(100)), "cache-control": "max-age=120, immutable"}, at_seconds=100
    )
    headers = dict(refreshed.headers)
    assert headers[b"cache-control"] == b"max-age=120, immutable"
    assert headers[b"date"] == http_date(at(100)).encode()
    assert headers[b"x-kept"] == b"yes"
    assert headers[b"content-type"] == b"application/json"
    assert refreshed.freshness == 120 * SECOND
    assert refreshed.immutable


def test_a_new_header_value_replaces_every_stored_line_of_that_field() -> None:
    stored = entry_module.make_entry(
        200, [(b"link", b"</a>"), (b"link", b"</b>"), (b"etag", b'"v1"')], b"x", NOW, NOW, 1
    )
    refreshed = stored.refreshed([(b"link", b"</c>")], at(1), at(1), 1)
    assert [v for k, v in refreshed.headers if k == b"link"] == [b"</c>"]


def test_a_refreshed_entry_is_fresh_again_in_the_new_epoch() -> None:
    stored = make_entry(STORED, epoch=1)
    assert not stored.is_fresh(at(100))
    refreshed = not_modified({"date": http_date(at(100))}, at_seconds=100, epoch=5)
    assert refreshed.epoch == 5
    assert refreshed.response_time == at(100)
    assert refreshed.request_time == at(99)
    assert refreshed.is_fresh(at(100))
    assert refreshed.age(at(100)) == SECOND  # the response delay


def test_the_age_of_a_304_counts_but_is_not_stored() -> None:
    refreshed = not_modified({"date": http_date(at(100)), "age": "20"}, at_seconds=100)
    assert refreshed.initial_age == 21 * SECOND
    assert all(k != b"age" for k, _ in refreshed.headers)


def test_a_304_without_date_makes_the_entry_fresh_again() -> None:
    # RFC 9110 §6.6.1: a response received without Date is dated on receipt when cached, so the
    # stored response's old Date must not make the refreshed entry look 100 s old.
    refreshed = not_modified({"etag": '"v1"'}, at_seconds=100)
    assert refreshed.is_fresh(at(100))


def test_the_warning_of_a_304_is_not_stored() -> None:
    refreshed = not_modified(
        {"date": http_date(at(100)), "warning": '111 - "Revalidation Failed"'}, at_seconds=100
    )
    assert all(k != b"warning" for k, _ in refreshed.headers)


def test_a_304_can_add_no_cache_to_a_stored_entry() -> None:
    refreshed = not_modified(
        {"date": http_date(at(100)), "cache-control": "max-age=60, no-cache"}, at_seconds=100
    )
    assert refreshed.no_cache
