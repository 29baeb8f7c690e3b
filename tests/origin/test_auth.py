"""Bearer tokens: who may write what, and reads that need no token at all.

The HTTP tests run an origin over an empty database (SQLite and PostgreSQL) with the tokens of
`conftest.TOKENS`: a writer limited to `Ecal*` tags and an admin. Every refused write must leave
the database exactly as it was.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.asgi import AppClient
from support.origin import ADMIN_TOKEN, WRITER_TOKEN, MakeClient, admin, writer

from origin.app import create_app
from origin.auth import Action, Principal, TokenBook
from origin.settings import OriginSettings
from outpost.config import SettingsError
from outpost.errors import Forbidden, Unauthorized

PAYLOAD = b"EcalPedestals\x00" * 40
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
ECAL = "EcalPedestals_v1"
HCAL = "Hcal_x"
GT = "TEST_GT"


def tag_body(name: str) -> dict[str, str]:
    return {"name": name, "time_type": "run", "payload_type": "Pedestals", "description": ""}


# One valid request per write endpoint: (method, path, httpx keyword arguments).
WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/payloads?object_type=EcalPedestals", {"content": PAYLOAD}),
    ("POST", "/v1/tags", {"json": tag_body(ECAL)}),
    ("POST", f"/v1/tags/{ECAL}/iovs", {"json": {"iovs": [{"since": 1, "payload": DIGEST}]}}),
    ("POST", f"/v1/tags/{ECAL}/lock", {}),
    ("PUT", f"/v1/globaltags/{GT}", {"json": {"map": [{"record": "R", "tag": ECAL}]}}),
]


@pytest.fixture
def origin(empty_db: str, make_client: MakeClient) -> AppClient:
    return make_client(empty_db)


@pytest.fixture
def no_database(make_client: MakeClient, tmp_path: Path) -> AppClient:
    """An origin whose database is never reached: for what is decided before any SQL."""
    return make_client(f"sqlite:///{tmp_path / 'never-created.sqlite'}")


def send(
    client: AppClient, write: tuple[str, str, dict[str, Any]], **headers: str
) -> httpx.Response:
    method, path, kwargs = write
    return client.request(method, path, headers=headers, **kwargs)


def table(client: AppClient, name: str) -> list[list[Any]]:
    answer = client.get(f"/v1/query/{name}")
    assert answer.status_code == 200, answer.text
    rows: list[list[Any]] = answer.json()["rows"]
    return rows


def assert_nothing_written(client: AppClient) -> None:
    for name in ("payloads", "tags", "iovs", "global_tags", "global_tag_map"):
        assert table(client, name) == [], name


def prepare(client: AppClient) -> None:
    """What the write endpoints of WRITES need to succeed: the payload and the Ecal tag."""
    assert send(client, WRITES[0], **admin()).status_code == 201
    assert send(client, WRITES[1], **admin()).status_code == 201


# --- 401: no usable token ------------------------------------------------------------------


def test_write_without_a_token_is_401_with_a_bearer_challenge(origin: AppClient) -> None:
    for write in WRITES:
        answer = send(origin, write)
        assert answer.status_code == 401, write
        assert answer.headers["www-authenticate"].startswith("Bearer"), write
        assert answer.headers["cache-control"] == "no-store"
        assert answer.json()["error"] == "unauthorized"
    assert_nothing_written(origin)


def test_write_with_a_non_bearer_authorization_is_401(origin: AppClient) -> None:
    for authorization in (f"Basic {ADMIN_TOKEN}", f"Token {ADMIN_TOKEN}", ADMIN_TOKEN, "Bearer"):
        for write in WRITES:
            answer = send(origin, write, Authorization=authorization)
            assert answer.status_code == 401, (authorization, write)
            assert answer.json()["error"] == "unauthorized"
    assert_nothing_written(origin)


def test_write_with_an_unknown_token_is_401(origin: AppClient) -> None:
    unknown = [
        "not-a-token",
        ADMIN_TOKEN.upper(),
        ADMIN_TOKEN + "x",
        hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),  # the stored digest is not the token
    ]
    for token in unknown:
        for write in WRITES:
            answer = send(origin, write, Authorization=f"Bearer {token}")
            assert answer.status_code == 401, (token, write)
            assert answer.json()["detail"] == "unknown token"
    assert_nothing_written(origin)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": f"Basic {ADMIN_TOKEN}"}, {"Authorization": "Bearer not-a-token"}],
    ids=["no-token", "basic", "unknown-token"],
)
def test_every_401_carries_a_www_authenticate_challenge(
    no_database: AppClient, headers: dict[str, str]
) -> None:
    """RFC 9110 §15.5.2: a 401 MUST carry WWW-Authenticate with a challenge."""
    answer = send(no_database, WRITES[0], **headers)
    assert answer.status_code == 401
    assert answer.headers.get("www-authenticate", "").startswith("Bearer")


def test_anonymous_write_is_refused_before_its_body_is_parsed(origin: AppClient) -> None:
    for method, path, _ in WRITES[1:]:
        answer = origin.request(method, path, content=b"{not json")
        assert answer.status_code == 401, (method, path)
    assert_nothing_written(origin)


def test_bearer_scheme_is_case_insensitive(origin: AppClient) -> None:
    answer = send(origin, WRITES[0], Authorization=f"bearer {ADMIN_TOKEN}")
    assert answer.status_code == 201


# --- 403: a token that may not do this -----------------------------------------------------


def test_writer_creating_a_tag_outside_its_globs_is_403_and_the_tag_does_not_exist(
    origin: AppClient,
) -> None:
    for name in (HCAL, "ecalPedestals_lower", "XEcal", "HcalEcal"):
        answer = origin.post("/v1/tags", json=tag_body(name), headers=writer())
        assert answer.status_code == 403, name
        assert answer.json()["accepted"] == ["Ecal*"]
        assert origin.get(f"/v1/tags/{name}").status_code == 404
    assert_nothing_written(origin)


def test_writer_appending_to_a_tag_outside_its_globs_is_403(origin: AppClient) -> None:
    prepare(origin)
    assert origin.post("/v1/tags", json=tag_body(HCAL), headers=admin()).status_code == 201
    batch = {"iovs": [{"since": 1, "payload": DIGEST}]}
    answer = origin.post(f"/v1/tags/{HCAL}/iovs", json=batch, headers=writer())
    assert answer.status_code == 403
    assert table(origin, "iovs") == []


def test_writer_may_not_lock_even_its_own_tags(origin: AppClient) -> None:
    prepare(origin)
    answer = origin.post(f"/v1/tags/{ECAL}/lock", headers=writer())
    assert answer.status_code == 403
    assert answer.json()["accepted"] == "role admin"
    assert origin.get(f"/v1/tags/{ECAL}").json()["state"] == "open"


def test_writer_may_not_edit_global_tags(origin: AppClient) -> None:
    prepare(origin)
    answer = send(origin, WRITES[4], **writer())
    assert answer.status_code == 403
    assert origin.get(f"/v1/globaltags/{GT}").status_code == 404
    assert table(origin, "global_tags") == []


def test_writer_may_upload_payloads_and_write_its_own_tags(origin: AppClient) -> None:
    statuses = [send(origin, write, **writer()).status_code for write in WRITES[:3]]
    assert statuses == [201, 201, 201]
    iovs = origin.get(f"/v1/tags/{ECAL}/iovs").json()["iovs"]
    assert [(i["since"], i["payload"]) for i in iovs] == [(1, DIGEST)]


def test_admin_may_do_every_write(origin: AppClient) -> None:
    statuses = [send(origin, write, **admin()).status_code for write in WRITES]
    assert statuses == [201, 201, 201, 200, 201]
    assert origin.post("/v1/tags", json=tag_body(HCAL), headers=admin()).status_code == 201
    assert origin.get(f"/v1/tags/{ECAL}").json()["state"] == "locked"
    records = origin.get(f"/v1/resolve/{GT}?run=5").json()["records"]
    assert [(r["record"], r["payload"]) for r in records] == [("R", DIGEST)]


# --- reads ---------------------------------------------------------------------------------


def test_reads_need_no_token(origin: AppClient) -> None:
    for write in WRITES:
        assert send(origin, write, **admin()).status_code in (200, 201)
    reads = [
        "/v1/globaltags",
        f"/v1/globaltags/{GT}",
        f"/v1/tags/{ECAL}",
        f"/v1/tags/{ECAL}/iovs",
        f"/v1/resolve/{GT}?run=1",
        f"/v1/payloads/{DIGEST}",
        "/v1/query/tags",
    ]
    for path in reads:
        assert origin.get(path).status_code == 200, path
        assert origin.head(path).status_code == 200, path


def test_reads_ignore_a_bad_token(origin: AppClient) -> None:
    answer = origin.get("/v1/globaltags", headers={"Authorization": "Bearer not-a-token"})
    assert answer.status_code == 200


# --- token files ---------------------------------------------------------------------------


def tokens(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    return path


def test_token_given_by_its_sha256_authorises_over_http(
    empty_db: str, make_client: MakeClient, tmp_path: Path
) -> None:
    digest = hashlib.sha256(b"s3cret-admin").hexdigest().upper()
    path = tokens(tmp_path, f'[[token]]\nname = "ops"\nrole = "admin"\ntoken_sha256 = "{digest}"\n')
    client = make_client(empty_db, tokens_file=path)
    for write in WRITES:
        answer = send(client, write, Authorization="Bearer s3cret-admin")
        assert answer.status_code in (200, 201), (write, answer.text)
    assert send(client, WRITES[0], **admin()).status_code == 401  # conftest's tokens are gone


def test_origin_without_a_tokens_file_refuses_every_write(
    empty_db: str, make_client: MakeClient
) -> None:
    client = make_client(empty_db, tokens_file=None)
    for write in WRITES:
        assert send(client, write, **admin()).status_code == 401, write
    assert_nothing_written(client)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[token]]\nrole = "reader"\ntoken = "t"\n', "role='reader'"),
        ('[[token]]\ntoken = "t"\n', "role=None"),
        ('[[token]]\nrole = "admin"\n', "needs token_sha256"),
        ('[[token]]\nrole = "writer"\ntoken = "t"\ntags = "Ecal*"\n', "tags must be a list"),
        ('[[token]]\nrole = "writer"\ntoken = "t"\ntags = [1]\n', "tags must be a list"),
        ('[[token]\nrole = "admin"\n', "tokens file"),
    ],
    ids=["bad-role", "missing-role", "missing-token", "tags-string", "tags-ints", "bad-toml"],
)
def test_bad_tokens_file_raises_settings_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        TokenBook.from_file(tokens(tmp_path, text))


def test_bad_token_entry_is_named_by_its_position(tmp_path: Path) -> None:
    text = '[[token]]\nrole = "admin"\ntoken = "a"\n\n[[token]]\nrole = "root"\ntoken = "b"\n'
    with pytest.raises(SettingsError, match="token #2"):
        TokenBook.from_file(tokens(tmp_path, text))


def test_missing_tokens_file_raises_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="tokens file"):
        TokenBook.from_file(tmp_path / "nowhere.toml")


def test_origin_refuses_to_start_with_a_bad_tokens_file(tmp_path: Path) -> None:
    path = tokens(tmp_path, '[[token]]\nrole = "root"\ntoken = "t"\n')
    settings = OriginSettings(db=f"sqlite:///{tmp_path / 'unused.sqlite'}", tokens_file=path)
    with pytest.raises(SettingsError, match="role='root'"):
        create_app(settings)


def test_token_sha256_entry_matches_its_plain_token_in_any_hex_case(tmp_path: Path) -> None:
    lower, upper = hashlib.sha256(b"s3cret").hexdigest(), hashlib.sha256(b"other").hexdigest()
    text = (
        f'[[token]]\nname = "ops"\nrole = "admin"\ntoken_sha256 = "{lower}"\n'
        f'[[token]]\nname = "hcal"\nrole = "writer"\ntags = ["Hcal*"]\n'
        f'token_sha256 = "{upper.upper()}"\n'
    )
    book = TokenBook.from_file(tokens(tmp_path, text))
    assert book.authorize("Bearer s3cret", Action.LOCK_TAG).name == "ops"
    assert book.authorize("Bearer other", Action.WRITE_TAG, HCAL).name == "hcal"
    with pytest.raises(Unauthorized):
        book.authorize(f"Bearer {lower}", Action.UPLOAD_PAYLOAD)


def test_plain_token_entry_authorises_and_gets_a_default_name(tmp_path: Path) -> None:
    book = TokenBook.from_file(tokens(tmp_path, '[[token]]\nrole = "writer"\ntoken = "w"\n'))
    principal = book.authorize("Bearer w", Action.UPLOAD_PAYLOAD)
    assert (principal.name, principal.role, principal.tag_globs) == ("token-1", "writer", ())


def test_no_tokens_file_means_no_tokens() -> None:
    with pytest.raises(Unauthorized):
        TokenBook.from_file(None).authorize(f"Bearer {ADMIN_TOKEN}", Action.UPLOAD_PAYLOAD)


def test_missing_header_error_carries_the_bearer_challenge() -> None:
    with pytest.raises(Unauthorized) as raised:
        TokenBook([]).authorize(None, Action.UPLOAD_PAYLOAD)
    assert raised.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_forbidden_names_what_would_have_been_accepted(tokens_file: Path) -> None:
    book = TokenBook.from_file(tokens_file)
    with pytest.raises(Forbidden) as tag:
        book.authorize(f"Bearer {WRITER_TOKEN}", Action.WRITE_TAG, HCAL)
    assert tag.value.accepted == ["Ecal*"]
    assert HCAL in tag.value.detail
    with pytest.raises(Forbidden) as lock:
        book.authorize(f"Bearer {WRITER_TOKEN}", Action.LOCK_TAG, ECAL)
    assert lock.value.accepted == "role admin"


WRITER = Principal("w", "writer", ("Ecal*", "Laser_?"), "0" * 64)
ADMIN = Principal("a", "admin", (), "1" * 64)
RUN_CONTROL = Principal("r", "runcontrol", ("*",), "2" * 64)  # globs give it nothing


@pytest.mark.parametrize(
    ("principal", "action", "tag", "allowed"),
    [
        (WRITER, Action.UPLOAD_PAYLOAD, None, True),
        (WRITER, Action.WRITE_TAG, "EcalGains", True),
        (WRITER, Action.WRITE_TAG, "Laser_1", True),
        (WRITER, Action.WRITE_TAG, "Laser_12", False),
        (WRITER, Action.WRITE_TAG, "ecalGains", False),
        (WRITER, Action.WRITE_TAG, None, False),
        (WRITER, Action.LOCK_TAG, "EcalGains", False),
        (WRITER, Action.EDIT_GLOBAL_TAG, None, False),
        (ADMIN, Action.UPLOAD_PAYLOAD, None, True),
        (ADMIN, Action.WRITE_TAG, "Anything", True),
        (ADMIN, Action.LOCK_TAG, "Anything", True),
        (ADMIN, Action.EDIT_GLOBAL_TAG, None, True),
        (ADMIN, Action.WRITE_RUN_RECORD, None, True),
        (WRITER, Action.WRITE_RUN_RECORD, None, False),
        (RUN_CONTROL, Action.WRITE_RUN_RECORD, None, True),
        (RUN_CONTROL, Action.UPLOAD_PAYLOAD, None, False),
        (RUN_CONTROL, Action.WRITE_TAG, "EcalGains", False),
        (RUN_CONTROL, Action.WRITE_TAG, None, False),
        (RUN_CONTROL, Action.LOCK_TAG, "EcalGains", False),
        (RUN_CONTROL, Action.EDIT_GLOBAL_TAG, None, False),
    ],
)
def test_principal_permissions(
    principal: Principal, action: Action, tag: str | None, allowed: bool
) -> None:
    assert principal.may(action, tag) is allowed
