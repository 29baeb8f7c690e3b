"""Cache keys: Outpost reads key on their canonical URL, anything else on its path and query
as sent; `Vary` selects a variant, with Accept-Encoding reduced to gzip or identity and Accept
and Accept-Language to one spelling of the same preferences."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.directives import CacheControl
from proxy.core.keys import primary_key, variant_key
from proxy.core.shared import MAX_FIELD_BYTES, shared_request_headers

RESOLVE = "/v1/resolve/GT?lumi=3&run=5"
AE = (b"accept-encoding",)


def accept_encoding(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"accept-encoding", v.encode()) for v in values]


# --- primary keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/resolve/GT", "lumi=3&run=5"),
        ("/v1/resolve/GT", "run=5&lumi=3"),
        ("/v1/resolve/GT/", "run=5&lumi=3"),
        ("/v1/resolve/GT", "run=05&lumi=%2B3"),
    ],
)
def test_an_outpost_read_keys_on_its_canonical_url(path: str, query: str) -> None:
    assert primary_key(path, query) == RESOLVE


def test_two_spellings_of_one_read_share_one_key() -> None:
    assert primary_key("/v1/tags/T/iovs", "until=10&since=02") == primary_key(
        "/v1/tags/T/iovs/", "since=2&until=10"
    )


def test_defaults_are_left_out_of_the_key() -> None:
    assert primary_key("/v1/resolve/GT", "run=5&lumi=1") == "/v1/resolve/GT?run=5"


def test_a_trailing_slash_does_not_split_the_cache() -> None:
    assert primary_key("/v1/globaltags/", "") == "/v1/globaltags"
    assert primary_key("/v1/globaltags/GT/", "") == "/v1/globaltags/GT"


def test_a_payload_hash_keys_in_lower_case() -> None:
    assert primary_key("/v1/payloads/" + "AB" * 32, "") == "/v1/payloads/" + "ab" * 32


def test_different_reads_get_different_keys() -> None:
    assert primary_key("/v1/resolve/GT", "run=5") != primary_key("/v1/resolve/GT", "run=6")
    assert primary_key("/v1/resolve/GT", "run=5") != primary_key("/v1/resolve/GT2", "run=5")


@pytest.mark.parametrize(
    ("path", "query", "key"),
    [
        ("/v1/resolve/GT", "run=abc", "/v1/resolve/GT?run=abc"),
        ("/v1/resolve/GT", "run=5&run=6", "/v1/resolve/GT?run=5&run=6"),
        ("/v1/resolve/GT", "", "/v1/resolve/GT"),  # run is required
        ("/v1/tags/T/iovs", "since=9&until=3", "/v1/tags/T/iovs?since=9&until=3"),
        ("/v1/nothing/here", "a=1", "/v1/nothing/here?a=1"),
        ("/v1/payloads/xyz", "", "/v1/payloads/xyz"),
        ("/v1/globaltags", "x", "/v1/globaltags?x"),
    ],
)
def test_a_malformed_read_keeps_its_raw_path_and_query(path: str, query: str, key: str) -> None:
    assert primary_key(path, query) == key


@pytest.mark.parametrize(
    ("path", "query", "key"),
    [
        ("/metrics", "", "/metrics"),
        ("/healthz", "verbose=1", "/healthz?verbose=1"),
        ("/v1", "x=1", "/v1?x=1"),
        ("/v2/resolve/GT", "run=05", "/v2/resolve/GT?run=05"),
        ("/", "", "/"),
    ],
)
def test_other_paths_keep_their_raw_path_and_query(path: str, query: str, key: str) -> None:
    assert primary_key(path, query) == key


# --- variant keys ------------------------------------------------------------------------


def test_without_vary_the_variant_is_the_primary_key() -> None:
    assert variant_key(RESOLVE, (), accept_encoding("gzip")) == RESOLVE


@pytest.mark.parametrize(
    "value",
    [
        "gzip",
        "GZIP",
        "gzip, deflate, br",
        "br;q=1.0, gzip;q=0.8, *;q=0.1",
        "x-gzip",
        "*",
        "deflate, *;q=0.5",
        "identity;q=1, gzip;q=0.001",
    ],
)
def test_accept_encodings_that_allow_gzip_share_the_gzip_variant(value: str) -> None:
    assert variant_key(RESOLVE, AE, accept_encoding(value)) == variant_key(
        RESOLVE, AE, accept_encoding("gzip")
    )


@pytest.mark.parametrize(
    "value",
    [
        "identity",
        "",
        "br, deflate",
        "gzip;q=0",
        "gzip;q=0.000",
        "gzip;q=0, *",
        "*;q=0",
        "gzip;q=junk",
    ],
)
def test_accept_encodings_that_refuse_gzip_share_the_identity_variant(value: str) -> None:
    assert variant_key(RESOLVE, AE, accept_encoding(value)) == variant_key(
        RESOLVE, AE, accept_encoding("identity")
    )


def test_an_absent_accept_encoding_selects_the_identity_variant() -> None:
    assert variant_key(RESOLVE, AE, []) == variant_key(RESOLVE, AE, accept_encoding("identity"))


def test_the_gzip_and_identity_variants_are_distinct_from_each_other_and_the_primary() -> None:
    gzip = variant_key(RESOLVE, AE, accept_encoding("gzip"))
    identity = variant_key(RESOLVE, AE, accept_encoding("identity"))
    assert len({gzip, identity, RESOLVE}) == 3


def test_every_accept_encoding_line_counts() -> None:
    assert variant_key(RESOLVE, AE, accept_encoding("br", "gzip")) == variant_key(
        RESOLVE, AE, accept_encoding("gzip")
    )


def test_variants_of_different_primaries_differ() -> None:
    other = "/v1/resolve/GT?run=6"
    assert variant_key(RESOLVE, AE, []) != variant_key(other, AE, [])


def test_forwarded_vary_fields_select_by_value() -> None:
    vary = (b"accept-language",)
    german = variant_key(RESOLVE, vary, [(b"accept-language", b"de")])
    french = variant_key(RESOLVE, vary, [(b"accept-language", b"fr")])
    assert german != french
    assert german == variant_key(RESOLVE, vary, [(b"accept-language", b"  de ")])
    assert german != variant_key(RESOLVE, vary, [])


def test_a_vary_field_a_shared_fetch_does_not_forward_selects_the_answer_for_its_absence() -> None:
    """The upstream never saw X-Detector, so every value shares the one answer it gave."""
    vary = (b"x-detector",)
    pixel = variant_key(RESOLVE, vary, [(b"x-detector", b"pixel")])
    assert pixel == variant_key(RESOLVE, vary, [(b"x-detector", b"strip")])
    assert pixel == variant_key(RESOLVE, vary, [])


def test_an_unusable_forwarded_value_selects_the_answer_for_its_absence() -> None:
    vary = (b"accept-language",)
    absent = variant_key(RESOLVE, vary, [])
    assert variant_key(RESOLVE, vary, [(b"accept-language", b"de\x01")]) == absent
    assert variant_key(RESOLVE, vary, [(b"accept-language", b"x" * 2000)]) == absent


def test_other_request_fields_do_not_change_the_variant() -> None:
    vary = (b"accept-language",)
    assert variant_key(RESOLVE, vary, [(b"accept-language", b"de")]) == variant_key(
        RESOLVE, vary, [(b"accept-language", b"de"), (b"user-agent", b"curl")]
    )


def test_several_vary_fields_combine() -> None:
    vary = (b"accept-encoding", b"accept-language")
    keys = {
        variant_key(RESOLVE, vary, [(b"accept-encoding", enc), (b"accept-language", lang)])
        for enc in (b"gzip", b"identity")
        for lang in (b"de", b"fr")
    }
    assert len(keys) == 4


# --- equivalent preferences share a variant -----------------------------------------------

AL = (b"accept-language",)


def language(value: bytes) -> str:
    return variant_key(RESOLVE, AL, [(b"accept-language", value)])


def test_equivalent_accept_languages_share_a_variant() -> None:
    assert language(b"fr-CH, fr;q=0.9, en;q=0.8") == language(b"EN;q=0.8 ,fr-ch,fr;q=0.9")


def test_different_weights_select_different_variants() -> None:
    assert language(b"fr;q=0.9, en;q=0.8") != language(b"fr;q=0.8, en;q=0.9")
    assert language(b"fr, en;q=0.5") != language(b"fr, en;q=0.6")


def test_accept_language_lines_are_joined_before_normalising() -> None:
    two_lines = variant_key(
        RESOLVE, AL, [(b"accept-language", b"en;q=0.8"), (b"accept-language", b"fr")]
    )
    assert two_lines == language(b"fr, en;q=0.8")


def test_equivalent_accepts_share_a_variant() -> None:
    vary = (b"accept",)
    assert variant_key(RESOLVE, vary, [(b"accept", b"Application/JSON ;q=1.0")]) == (
        variant_key(RESOLVE, vary, [(b"accept", b"application/json")])
    )


def test_an_accept_member_with_an_invalid_weight_does_not_select() -> None:
    vary = (b"accept",)
    assert variant_key(RESOLVE, vary, [(b"accept", b"application/json, text/*;q=.5")]) == (
        variant_key(RESOLVE, vary, [(b"accept", b"application/json")])
    )


def test_an_accept_language_with_nothing_valid_selects_the_answer_for_its_absence() -> None:
    assert language(b"fr;q=7") == variant_key(RESOLVE, AL, [])


def test_the_variant_is_keyed_by_what_the_shared_fetch_sends() -> None:
    value = b"EN;q=0.8 ,fr-ch,fr;q=0.9"
    sent = dict(
        shared_request_headers(
            [(b"accept-language", value)], CacheControl(), frontier=False, own_id=b"x"
        )
    )
    assert language(value) == language(sent[b"accept-language"])
    assert language(value).endswith(sent[b"accept-language"].decode())


tags = st.from_regex(r"[a-z]{1,8}(-[a-z0-9]{1,8})?", fullmatch=True)


@given(
    st.lists(tags, min_size=1, max_size=6, unique=True),
    st.lists(st.integers(0, 1000), min_size=6, max_size=6, unique=True),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_any_permutation_of_distinctly_weighted_members_gives_the_same_key(
    members: list[str], weights: list[int], random: Random, upper: bool
) -> None:
    pairs = [f"{tag};q={weight / 1000:.3f}" for tag, weight in zip(members, weights, strict=False)]
    shuffled = pairs[:]
    random.shuffle(shuffled)
    spelled = " ,  ".join(shuffled)
    assert language(", ".join(pairs).encode()) == language(
        (spelled.upper() if upper else spelled).encode()
    )


@given(st.binary(max_size=3000))
def test_the_varied_part_of_a_key_never_exceeds_the_bound(value: bytes) -> None:
    key = language(value)
    assert len(key) <= len(RESOLVE) + 1 + MAX_FIELD_BYTES


def test_a_long_value_selects_the_answer_for_its_absence() -> None:
    assert language(b"de," * 600) == variant_key(RESOLVE, AL, [])
