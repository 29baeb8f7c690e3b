"""Settings: a TOML `[section]`, then `OUTPOST_<SECTION>_<FIELD>` variables, then overrides, each
converted to the field's type; any bad value is a SettingsError that names its key."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from origin.settings import OriginSettings
from outpost.config import SettingsError, load_settings, parse_size

MiB = 1024**2


@dataclass(frozen=True)
class Widget:
    count: int = 3
    name: str = "widget"
    enabled: bool = False
    ratio: float = 0.5
    tags: tuple[str, ...] = ("a",)
    cache_dir: Path | None = None
    max_body_bytes: int = 1024


def load(
    toml: str | None = None,
    *,
    tmp_path: Path | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Widget:
    """Widget settings from a TOML text (written under `tmp_path`), variables and overrides."""
    config_file = None
    if toml is not None:
        assert tmp_path is not None
        config_file = tmp_path / "outpost.toml"
        config_file.write_text(toml)
    return load_settings(
        Widget, "widget", config_file=config_file, environ=env or {}, overrides=overrides
    )


def error(**kwargs: Any) -> str:
    """The message of the SettingsError that loading with these arguments raises."""
    with pytest.raises(SettingsError) as caught:
        load(**kwargs)
    return str(caught.value)


# --- where values come from --------------------------------------------------------------------


def test_nothing_given_gives_the_defaults() -> None:
    assert load() == Widget()


def test_values_come_from_the_section_of_the_toml_file(tmp_path: Path) -> None:
    toml = """
        [widget]
        count = 7
        name = "gadget"
        enabled = true
        ratio = 1.5
        tags = ["b", "c"]
        cache_dir = "/var/cache/outpost"
        max_body_bytes = "64MiB"

        [other]
        count = 99
        colour = "red"
    """
    assert load(toml, tmp_path=tmp_path) == Widget(
        count=7,
        name="gadget",
        enabled=True,
        ratio=1.5,
        tags=("b", "c"),
        cache_dir=Path("/var/cache/outpost"),
        max_body_bytes=64 * MiB,
    )


def test_a_file_without_the_section_gives_the_defaults(tmp_path: Path) -> None:
    assert load("[other]\ncount = 1\n", tmp_path=tmp_path) == Widget()


def test_values_come_from_outpost_section_field_variables() -> None:
    env = {
        "OUTPOST_WIDGET_COUNT": "11",
        "OUTPOST_WIDGET_NAME": "gizmo",
        "OUTPOST_WIDGET_ENABLED": "yes",
        "OUTPOST_WIDGET_RATIO": "2.5",
        "OUTPOST_WIDGET_TAGS": "x,y",
        "OUTPOST_WIDGET_CACHE_DIR": "/data",
        "OUTPOST_WIDGET_MAX_BODY_BYTES": "512 KiB",
    }
    assert load(env=env) == Widget(11, "gizmo", True, 2.5, ("x", "y"), Path("/data"), 512 * 1024)


def test_a_variable_overrides_the_file(tmp_path: Path) -> None:
    toml = '[widget]\ncount = 7\nname = "from-file"\n'
    settings = load(toml, tmp_path=tmp_path, env={"OUTPOST_WIDGET_COUNT": "9"})
    assert (settings.count, settings.name) == (9, "from-file")


def test_variables_of_other_sections_and_unknown_fields_are_ignored() -> None:
    env = {"OUTPOST_OTHER_COUNT": "9", "OUTPOST_WIDGET_COLOUR": "red", "WIDGET_COUNT": "9"}
    assert load(env=env) == Widget()


def test_the_config_file_can_be_named_by_a_variable(tmp_path: Path) -> None:
    path = tmp_path / "named.toml"
    path.write_text("[widget]\ncount = 5\n")
    settings = load_settings(Widget, "widget", environ={"OUTPOST_WIDGET_CONFIG": str(path)})
    assert settings.count == 5


def test_overrides_beat_variables_and_the_file(tmp_path: Path) -> None:
    settings = load(
        "[widget]\ncount = 7\n",
        tmp_path=tmp_path,
        env={"OUTPOST_WIDGET_COUNT": "9"},
        overrides={"count": 12},
    )
    assert settings.count == 12


def test_overrides_that_are_none_are_ignored(tmp_path: Path) -> None:
    settings = load(
        "[widget]\nname = 'from-file'\n",
        tmp_path=tmp_path,
        env={"OUTPOST_WIDGET_COUNT": "9"},
        overrides={"count": None, "name": None, "enabled": True},
    )
    assert (settings.count, settings.name, settings.enabled) == (9, "from-file", True)


# --- conversions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *[("1", True), ("true", True), ("YES", True), (" on ", True)],
        *[("0", False), ("false", False), ("No", False), ("off", False)],
    ],
)
def test_booleans_are_read_from_the_usual_words(text: str, value: bool) -> None:
    assert load(env={"OUTPOST_WIDGET_ENABLED": text}).enabled is value


@pytest.mark.parametrize(
    ("text", "tags"),
    [("a,b,c", ("a", "b", "c")), (" a , b ", ("a", "b")), ("a,,b,", ("a", "b")), ("", ())],
)
def test_a_list_variable_is_comma_separated(text: str, tags: tuple[str, ...]) -> None:
    assert load(env={"OUTPOST_WIDGET_TAGS": text}).tags == tags


def test_blank_items_of_a_list_variable_are_skipped() -> None:
    assert load(env={"OUTPOST_WIDGET_TAGS": "a, ,b, "}).tags == ("a", "b")


def test_a_list_in_the_file_may_be_an_array_or_a_comma_separated_string(tmp_path: Path) -> None:
    assert load('[widget]\ntags = ["x", "y"]\n', tmp_path=tmp_path).tags == ("x", "y")
    assert load('[widget]\ntags = "x, y"\n', tmp_path=tmp_path).tags == ("x", "y")
    assert load("[widget]\ntags = []\n", tmp_path=tmp_path).tags == ()


def test_an_empty_optional_path_is_none() -> None:
    assert load(env={"OUTPOST_WIDGET_CACHE_DIR": ""}).cache_dir is None
    assert load(env={"OUTPOST_WIDGET_CACHE_DIR": "rel/dir"}).cache_dir == Path("rel/dir")


def test_a_float_accepts_an_integer_from_the_file(tmp_path: Path) -> None:
    assert load("[widget]\nratio = 2\n", tmp_path=tmp_path).ratio == 2.0


@pytest.mark.parametrize(
    ("text", "size"),
    [("4096", 4096), ("64MiB", 64 * MiB), ("64 mib", 64 * MiB), ("1k", 1024), ("2KB", 2000)],
)
def test_a_size_field_accepts_size_suffixes(text: str, size: int) -> None:
    assert load(env={"OUTPOST_WIDGET_MAX_BODY_BYTES": text}).max_body_bytes == size


def test_a_size_in_the_file_may_be_a_plain_integer(tmp_path: Path) -> None:
    assert load("[widget]\nmax_body_bytes = 2048\n", tmp_path=tmp_path).max_body_bytes == 2048


# --- errors ------------------------------------------------------------------------------------


def test_unknown_keys_in_the_file_are_named(tmp_path: Path) -> None:
    message = error(toml="[widget]\ncolour = 'red'\nsize = 3\ncount = 1\n", tmp_path=tmp_path)
    assert "['colour', 'size']" in message
    assert "'count'" in message  # the known keys are listed too


def test_unknown_override_keys_are_named() -> None:
    assert "'colour'" in error(overrides={"colour": "red"})


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("OUTPOST_WIDGET_COUNT", "seven", "widget.count"),
        ("OUTPOST_WIDGET_COUNT", "1.5", "widget.count"),
        ("OUTPOST_WIDGET_COUNT", "5k", "widget.count"),  # only *_bytes and *_size take suffixes
        ("OUTPOST_WIDGET_ENABLED", "maybe", "widget.enabled"),
        ("OUTPOST_WIDGET_ENABLED", "", "widget.enabled"),
        ("OUTPOST_WIDGET_RATIO", "half", "widget.ratio"),
        ("OUTPOST_WIDGET_MAX_BODY_BYTES", "64 lightyears", "widget.max_body_bytes"),
        ("OUTPOST_WIDGET_MAX_BODY_BYTES", "1.5MiB", "widget.max_body_bytes"),
        ("OUTPOST_WIDGET_MAX_BODY_BYTES", "-1", "widget.max_body_bytes"),
    ],
)
def test_a_bad_variable_is_an_error_naming_its_key(variable: str, value: str, key: str) -> None:
    message = error(env={variable: value})
    assert key in message
    assert repr(value) in message


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("count = true", "widget.count"),
        ("count = 'many'", "widget.count"),
        ("name = 5", "widget.name"),
        ("enabled = 'sometimes'", "widget.enabled"),
        ("tags = 5", "widget.tags"),
        ("ratio = [1]", "widget.ratio"),
    ],
)
def test_a_bad_file_value_is_an_error_naming_its_key(tmp_path: Path, line: str, key: str) -> None:
    assert key in error(toml=f"[widget]\n{line}\n", tmp_path=tmp_path)


def test_a_missing_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(SettingsError, match=r"missing\.toml"):
        load_settings(Widget, "widget", config_file=missing, environ={})


def test_a_malformed_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    assert "outpost.toml" in error(toml="[widget\ncount = ", tmp_path=tmp_path)


def test_a_section_that_is_not_a_table_is_an_error(tmp_path: Path) -> None:
    assert "[widget] is not a table" in error(toml="widget = 3\n", tmp_path=tmp_path)


# --- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1000", 1000),
        ("1B", 1),
        ("512KiB", 512 * 1024),
        ("512 KiB", 512 * 1024),
        (" 64MiB ", 64 * MiB),
        ("2GiB", 2 * 1024**3),
        ("1KB", 1000),
        ("1MB", 1000**2),
        ("1GB", 1000**3),
        ("1k", 1024),
        ("1M", MiB),
        ("1G", 1024**3),
        ("1kib", 1024),
        (4096, 4096),
    ],
)
def test_parse_size_reads_binary_and_decimal_suffixes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "1.5MiB", "-1", "1 TiB", "1 MiB 2", "0x10", "one"])
def test_parse_size_rejects_anything_else_naming_the_key(text: str) -> None:
    with pytest.raises(SettingsError, match=r"cache\.max_bytes"):
        parse_size(text, "cache.max_bytes")


# --- the origin's settings ---------------------------------------------------------------------

POSITIVE = [
    "port",
    "ttl_short_seconds",
    "ttl_long_seconds",
    "max_body_bytes",
    "max_url_bytes",
    "query_max_rows",
    "statement_timeout_ms",
    "workers",
]


def test_the_origin_defaults_are_valid() -> None:
    OriginSettings()


@pytest.mark.parametrize("name", POSITIVE)
@pytest.mark.parametrize("value", [0, -1])
def test_origin_settings_reject_non_positive_values_naming_them(name: str, value: int) -> None:
    changes: dict[str, Any] = {name: value}
    with pytest.raises(SettingsError, match=rf"origin\.{name}={value}"):
        replace(OriginSettings(), **changes)


@pytest.mark.parametrize("port", [0, 65536, 100_000])
def test_origin_settings_reject_ports_outside_1_to_65535(port: int) -> None:
    with pytest.raises(SettingsError, match=r"origin\.port"):
        OriginSettings(port=port)


@pytest.mark.parametrize("port", [1, 65535])
def test_origin_settings_accept_ports_1_to_65535(port: int) -> None:
    assert OriginSettings(port=port).port == port


def test_origin_settings_allow_zero_settle_time_and_zero_gzip_threshold() -> None:
    settings = OriginSettings(snapshot_settle_seconds=0, gzip_min_bytes=0)
    assert (settings.snapshot_settle_seconds, settings.gzip_min_bytes) == (0, 0)


def test_loading_an_origin_port_of_zero_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match=r"origin\.port=0"):
        load_settings(OriginSettings, "origin", environ={"OUTPOST_ORIGIN_PORT": "0"})


def test_loading_origin_settings_reads_sizes_and_table_lists() -> None:
    settings = load_settings(
        OriginSettings,
        "origin",
        environ={"OUTPOST_ORIGIN_MAX_BODY_BYTES": "16MiB", "OUTPOST_ORIGIN_QUERY_TABLES": "tags"},
    )
    assert (settings.max_body_bytes, settings.query_tables) == (16 * MiB, ("tags",))
