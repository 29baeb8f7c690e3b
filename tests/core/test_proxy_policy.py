"""The cache policy's verdicts: lookup (RFC 9111 §4, §5.2.1), serving stale when every upstream
failed (RFC 5861 §4, RFC 9111 §4.2.4), and storability for a shared cache (RFC 9111 §3)."""

from __future__ import annotations

import pytest

from proxy.core import entry as entry_module
from proxy.core.directives import CacheControl, parse_cache_control
from proxy.core.entry import Entry
from proxy.core.policy import (
    ErrorVerdict,
    Lookup,
    Verdict,
    after_error,
    is_storable,
    lookup,
)

SECOND = 1_000_000
NOW = 1_800_000_000 * SECOND
EPOCH = 3

HIT = Lookup(Verdict.HIT)
MISS = Lookup(Verdict.MISS)
STALE = Lookup(Verdict.STALE, "stale")
STALE_HIT = Lookup(Verdict.HIT, "stale")
REVALIDATE_STALE = Lookup(Verdict.REVALIDATE, "stale")
REVALIDATE_REQUEST = Lookup(Verdict.REVALIDATE, "request")
REVALIDATE_EPOCH = Lookup(Verdict.REVALIDATE, "epoch")


def at(seconds: float) -> int:
    """`seconds` after the entry was stored, in µs."""
    return NOW + int(seconds * SECOND)


def make_entry(cache_control: str = "max-age=60", *, epoch: int = EPOCH) -> Entry:
    """An entry stored at NOW with age 0 and the given Cache-Control."""
    headers = [(b"cache-control", cache_control.encode()), (b"etag", b'"v1"')]
    return entry_module.make_entry(200, headers, b"body", NOW, NOW, epoch)


def check(
    request: str = "",
    entry: Entry | None = None,
    *,
    seconds: float = 0,
    method: str = "GET",
    epoch: int = EPOCH,
) -> Lookup:
    """The lookup verdict for a request with Cache-Control `request`, `seconds` after NOW."""
    return lookup(method, parse_cache_control(request), entry, at(seconds), epoch)


FRESH = make_entry("max-age=60")


# --- lookup: not ours, nothing stored ----------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_unsafe_methods_pass_even_with_a_fresh_entry(method: str) -> None:
    assert check(entry=FRESH, method=method) == Lookup(Verdict.PASS, "method")
    assert check(method=method) == Lookup(Verdict.PASS, "method")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_safe_methods_are_served_from_the_cache(method: str) -> None:
    assert check(entry=FRESH, method=method) == HIT


def test_request_no_store_passes() -> None:
    assert check("no-store", FRESH) == Lookup(Verdict.PASS, "request")
    assert check("no-store") == Lookup(Verdict.PASS, "request")


def test_nothing_stored_is_a_miss() -> None:
    assert check() == MISS
    assert check("no-cache, max-age=0") == MISS


# --- lookup: epochs ----------------------------------------------------------------------


def test_entry_from_older_epoch_is_revalidated_not_served() -> None:
    assert check(entry=make_entry(epoch=EPOCH - 1)) == REVALIDATE_EPOCH


def test_immutable_entry_survives_a_flush() -> None:
    assert check(entry=make_entry("max-age=60, immutable", epoch=EPOCH - 1)) == HIT


def test_an_immutable_entry_from_an_older_epoch_still_goes_stale() -> None:
    entry = make_entry("max-age=60, immutable", epoch=EPOCH - 1)
    assert check(entry=entry, seconds=61) == REVALIDATE_STALE


def test_entry_from_the_current_or_a_newer_epoch_is_served() -> None:
    assert check(entry=make_entry(epoch=EPOCH)) == HIT
    assert check(entry=make_entry(epoch=EPOCH + 1)) == HIT


def test_a_flush_is_reported_before_a_client_request_for_validation() -> None:
    assert check("no-cache", make_entry(epoch=EPOCH - 1)) == REVALIDATE_EPOCH


# --- lookup: validation asked for --------------------------------------------------------


@pytest.mark.parametrize("request_cc", ["no-cache", "max-age=0", "no-cache, max-stale"])
def test_a_client_asking_for_validation_gets_a_revalidation(request_cc: str) -> None:
    assert check(request_cc, FRESH) == REVALIDATE_REQUEST


def test_request_no_cache_revalidates_even_an_immutable_entry() -> None:
    assert check("no-cache", make_entry("max-age=60, immutable")) == REVALIDATE_REQUEST


def test_response_no_cache_is_revalidated_even_when_fresh() -> None:
    assert check(entry=make_entry("max-age=60, no-cache")) == Lookup(Verdict.REVALIDATE, "no-cache")


def test_response_no_cache_is_revalidated_even_within_max_stale() -> None:
    entry = make_entry("max-age=60, no-cache, stale-while-revalidate=600")
    assert check("max-stale", entry, seconds=90).verdict is Verdict.REVALIDATE


# --- lookup: fresh -----------------------------------------------------------------------


def test_a_fresh_entry_is_a_hit() -> None:
    assert check(entry=FRESH, seconds=59) == HIT


def test_an_entry_whose_age_reaches_its_lifetime_is_stale() -> None:
    assert check(entry=FRESH, seconds=60) == REVALIDATE_STALE


def test_request_max_age_limits_the_age_served() -> None:
    assert check("max-age=20", FRESH, seconds=30) == REVALIDATE_REQUEST
    assert check("max-age=40", FRESH, seconds=30) == HIT


def test_request_max_age_accepts_an_age_equal_to_it() -> None:
    # RFC 9111 §5.2.1.1: "age is less than or equal to the specified number of seconds".
    assert check("max-age=30", FRESH, seconds=30) == HIT


def test_request_min_fresh_is_served_when_enough_freshness_remains() -> None:
    assert check("min-fresh=30", FRESH, seconds=20) == HIT


def test_request_min_fresh_is_not_served_without_enough_freshness_left() -> None:
    # 20 s of freshness left, the client wants 30; the entry has no stale-while-revalidate, so
    # nothing allows serving it unvalidated (RFC 9111 §5.2.1.3).
    assert check("min-fresh=30", FRESH, seconds=40).verdict is Verdict.REVALIDATE


def test_request_min_fresh_on_a_must_revalidate_entry_revalidates() -> None:
    entry = make_entry("max-age=60, must-revalidate")
    assert check("min-fresh=30", entry, seconds=40).verdict is Verdict.REVALIDATE


# --- lookup: stale -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cache_control",
    [
        "max-age=60, must-revalidate, stale-while-revalidate=600",
        "max-age=60, proxy-revalidate, stale-while-revalidate=600",
        "s-maxage=60, stale-while-revalidate=600",
    ],
)
def test_a_stale_entry_that_must_be_revalidated_is_never_served_stale(cache_control: str) -> None:
    entry = make_entry(cache_control)
    assert check(entry=entry, seconds=61) == REVALIDATE_STALE
    assert check("max-stale", entry, seconds=61) == REVALIDATE_STALE


def test_a_stale_entry_is_a_hit_within_the_clients_max_stale() -> None:
    assert check("max-stale=30", FRESH, seconds=90) == STALE_HIT
    assert check("max-stale=30", FRESH, seconds=91) == REVALIDATE_STALE


def test_max_stale_without_value_accepts_any_staleness() -> None:
    assert check("max-stale", FRESH, seconds=365 * 86_400) == STALE_HIT


def test_max_stale_wins_over_stale_while_revalidate() -> None:
    entry = make_entry("max-age=60, stale-while-revalidate=600")
    assert check("max-stale=30", entry, seconds=70) == STALE_HIT


def test_a_stale_entry_is_served_while_revalidating_within_its_window() -> None:
    entry = make_entry("max-age=60, stale-while-revalidate=30")
    assert check(entry=entry, seconds=60) == STALE
    assert check(entry=entry, seconds=89) == STALE
    assert check(entry=entry, seconds=90) == REVALIDATE_STALE


def test_stale_while_revalidate_falls_back_to_the_window_when_max_stale_is_exceeded() -> None:
    entry = make_entry("max-age=60, stale-while-revalidate=600")
    assert check("max-stale=10", entry, seconds=100) == STALE


def test_a_stale_entry_without_any_allowance_is_revalidated() -> None:
    assert check(entry=FRESH, seconds=61) == REVALIDATE_STALE
    assert check(entry=make_entry("public"), seconds=0) == REVALIDATE_STALE


# --- after an upstream error -------------------------------------------------------------


def test_without_an_entry_an_upstream_error_fails() -> None:
    assert after_error(None, NOW, 3600 * SECOND) is ErrorVerdict.FAIL


def test_stale_is_served_within_the_responses_stale_if_error() -> None:
    entry = make_entry("max-age=60, stale-if-error=300")
    assert after_error(entry, at(360), 0) is ErrorVerdict.SERVE_STALE
    assert after_error(entry, at(361), 0) is ErrorVerdict.FAIL


def test_stale_is_served_within_the_operators_window() -> None:
    assert after_error(FRESH, at(160), 100 * SECOND) is ErrorVerdict.SERVE_STALE
    assert after_error(FRESH, at(161), 100 * SECOND) is ErrorVerdict.FAIL


def test_the_wider_of_the_two_windows_applies() -> None:
    entry = make_entry("max-age=60, stale-if-error=300")
    assert after_error(entry, at(360), 10 * SECOND) is ErrorVerdict.SERVE_STALE
    assert after_error(entry, at(1000), 3600 * SECOND) is ErrorVerdict.SERVE_STALE
    assert after_error(entry, at(361), 10 * SECOND) is ErrorVerdict.FAIL


def test_a_still_fresh_entry_is_served_when_the_upstream_fails() -> None:
    assert after_error(FRESH, at(30), 0) is ErrorVerdict.SERVE_STALE


@pytest.mark.parametrize(
    "cache_control",
    [
        "max-age=60, must-revalidate, stale-if-error=600",
        "max-age=60, proxy-revalidate, stale-if-error=600",
        "s-maxage=60, stale-if-error=600",
    ],
)
def test_an_entry_that_must_be_revalidated_is_never_served_after_an_error(
    cache_control: str,
) -> None:
    assert after_error(make_entry(cache_control), at(61), 3600 * SECOND) is ErrorVerdict.FAIL


def test_a_no_cache_entry_is_never_served_without_validation_after_an_error() -> None:
    # RFC 9111 §4.2.4: "A cache MUST NOT generate a stale response if it is prohibited by an
    # explicit in-protocol directive (e.g., by a no-cache response directive, ...)";
    # §5.2.2.4: no use "without forwarding it for validation and receiving a successful response".
    entry = make_entry("max-age=60, no-cache")
    assert after_error(entry, at(61), 3600 * SECOND) is ErrorVerdict.FAIL


# --- storability -------------------------------------------------------------------------


def storable(
    headers: dict[str, str] | None = None,
    *,
    method: str = "GET",
    status: int = 200,
    request: str = "",
    authorized: bool = False,
) -> bool:
    """Whether a response with `headers` (default `Cache-Control: max-age=60`) may be stored."""
    fields = {"cache-control": "max-age=60"} if headers is None else headers
    pairs = [(k.encode(), v.encode()) for k, v in fields.items()]
    response = parse_cache_control(fields.get("cache-control"))
    return is_storable(
        method, status, parse_cache_control(request), response, pairs, authorized=authorized
    )


def test_a_plain_fresh_200_is_storable() -> None:
    assert storable()


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE"])
def test_only_get_responses_are_stored(method: str) -> None:
    assert not storable(method=method)


@pytest.mark.parametrize(
    "status", [200, 201, 203, 204, 299, 301, 302, 303, 307, 308, 400, 404, 410, 499, 500, 503]
)
def test_any_final_status_with_explicit_freshness_is_stored(status: int) -> None:
    # RFC 9111 §3: "the response status code is final" and the response "contains ... a
    # max-age response directive"
    assert storable(status=status)


@pytest.mark.parametrize("status", [100, 103, 206, 304])
def test_interim_partial_and_not_modified_answers_are_never_stored_as_entries(
    status: int,
) -> None:
    assert not storable(status=status)


HEURISTIC = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]


@pytest.mark.parametrize("status", HEURISTIC)
def test_heuristically_cacheable_statuses_are_stored_with_only_a_validator(status: int) -> None:
    # RFC 9110 §15.1 lists them; RFC 9111 §4.2.2 gives them a heuristic lifetime
    assert storable({"last-modified": "Mon, 01 Jan 2029 00:00:00 GMT"}, status=status)


@pytest.mark.parametrize("status", [201, 302, 303, 307, 400, 403, 500, 502, 503])
def test_other_statuses_without_explicit_freshness_are_not_stored(status: int) -> None:
    assert not storable(
        {"etag": '"v"', "last-modified": "Mon, 01 Jan 2029 00:00:00 GMT"}, status=status
    )


def test_request_no_store_prevents_storing() -> None:
    assert not storable(request="no-store")


@pytest.mark.parametrize("cache_control", ["max-age=60, no-store", "max-age=60, private"])
def test_response_no_store_or_private_prevents_storing(cache_control: str) -> None:
    assert not storable({"cache-control": cache_control})


def test_a_qualified_private_is_stored_without_the_fields_it_names() -> None:
    # RFC 9111 §5.2.2.7: a shared cache "MUST NOT store the specified field names",
    # which `make_entry` leaves out; the rest of the response may be stored
    assert storable({"cache-control": 'max-age=60, private="x"'})


def test_request_no_cache_does_not_prevent_storing() -> None:
    assert storable(request="no-cache")


@pytest.mark.parametrize("vary", ["*", " * "])
def test_vary_star_prevents_storing(vary: str) -> None:
    assert not storable({"cache-control": "max-age=60", "vary": vary})


def test_vary_star_on_a_later_field_line_prevents_storing() -> None:
    pairs = [(b"cache-control", b"max-age=60"), (b"vary", b"accept-encoding"), (b"vary", b"*")]
    response = parse_cache_control("max-age=60")
    assert not is_storable("GET", 200, CacheControl(), response, pairs, authorized=False)


def test_vary_star_among_field_names_prevents_storing() -> None:
    # RFC 9110 §12.5.5: Vary = #( "*" / field-name ); RFC 9111 §4.1: a stored response whose
    # Vary contains the member "*" always fails to match, so it is useless to store.
    assert not storable({"cache-control": "max-age=60", "vary": "accept-encoding, *"})


def test_vary_on_named_fields_is_storable() -> None:
    assert storable({"cache-control": "max-age=60", "vary": "accept-encoding, x-detector"})


def test_an_authorized_response_is_not_shared_by_default() -> None:
    assert not storable(authorized=True)
    assert not storable({"cache-control": "max-age=60, proxy-revalidate"}, authorized=True)


@pytest.mark.parametrize(
    "cache_control", ["public", "max-age=60, public", "s-maxage=60", "max-age=60, must-revalidate"]
)
def test_public_s_maxage_or_must_revalidate_allow_sharing_an_authorized_response(
    cache_control: str,
) -> None:
    # RFC 9111 §3.5
    assert storable({"cache-control": cache_control}, authorized=True)


@pytest.mark.parametrize(
    "headers",
    [
        {"cache-control": "max-age=0"},
        {"cache-control": "s-maxage=60"},
        {"cache-control": "public"},
        {"expires": "Thu, 01 Jan 2026 00:00:00 GMT"},
        {"expires": "0"},
        {"etag": '"v1"'},
        {"last-modified": "Sun, 06 Nov 1994 08:49:37 GMT"},
        {"cache-control": "no-cache", "etag": '"v1"'},
    ],
)
def test_explicit_freshness_or_a_validator_makes_a_response_storable(
    headers: dict[str, str],
) -> None:
    assert storable(headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"cache-control": "no-cache"},
        {"cache-control": "must-revalidate"},
        {"cache-control": "stale-while-revalidate=60, stale-if-error=600"},
        {"content-type": "application/json", "date": "Sun, 06 Nov 1994 08:49:37 GMT"},
    ],
)
def test_without_explicit_freshness_or_validators_a_response_is_not_stored(
    headers: dict[str, str],
) -> None:
    assert not storable(headers)


def test_a_206_is_kept_only_as_a_part_and_by_the_same_rules() -> None:
    fields = [(b"cache-control", b"max-age=60")]
    response = parse_cache_control("max-age=60")
    plain = parse_cache_control("")
    assert not is_storable("GET", 206, plain, response, fields, authorized=False)
    assert is_storable("GET", 206, plain, response, fields, authorized=False, partial=True)
    assert not is_storable("GET", 200, plain, response, fields, authorized=False, partial=True)
    no_store = parse_cache_control("no-store")
    assert not is_storable("GET", 206, plain, no_store, fields, authorized=False, partial=True)
