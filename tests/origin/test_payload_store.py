"""Payload bytes in the file store (`payload_store = "files"`): uploads land in files named by
their hash, the table keeps the metadata, reads answer the same bytes and headers as from the
table, and `outpost db payloads` moves them both ways, all or nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from support.asgi import AppClient
from support.origin import MakeClient, writer

from origin.db import create_engines
from origin.payloadfiles import PayloadFileError, PayloadFiles
from origin.payloadmove import move_payloads
from origin.schema import payloads
from origin.settings import OriginSettings
from outpost.config import SettingsError

OBJECTS = [b"EcalPedestals %d " % i * 3000 for i in range(3)]


def upload(client: AppClient, data: bytes) -> str:
    answer = client.post("/v1/payloads?object_type=Calib", content=data, headers=writer())
    assert answer.status_code == 201, answer.text
    return str(answer.json()["hash"])


def row_data(db: str, digest: str) -> bytes:
    engines = create_engines(db)
    try:
        with engines.reader.connect() as conn:
            data = conn.scalar(select(payloads.c.data).where(payloads.c.hash == digest))
            return bytes(data)
    finally:
        engines.dispose()


def test_an_upload_lands_in_a_file_and_reads_answer_it_as_from_the_table(
    empty_db: str, make_client: MakeClient, tmp_path: Path
) -> None:
    store = tmp_path / "payloads"
    files_origin = make_client(empty_db, payload_store="files", payload_dir=store)
    digest = upload(files_origin, OBJECTS[0])
    assert PayloadFiles(store).read(digest) == OBJECTS[0]
    assert row_data(empty_db, digest) == b""  # the table keeps the metadata only
    from_file = files_origin.get(f"/v1/payloads/{digest}")
    assert from_file.status_code == 200 and from_file.content == OBJECTS[0]
    head = files_origin.head(f"/v1/payloads/{digest}")
    assert head.headers["content-length"] == str(len(OBJECTS[0]))

    table_origin = make_client(empty_db, payload_store="database")
    other = upload(table_origin, OBJECTS[1])
    assert row_data(empty_db, other) == OBJECTS[1]
    from_table = files_origin.get(f"/v1/payloads/{other}")  # a files origin reads both
    assert from_table.content == OBJECTS[1]
    same = ("etag", "cache-control", "content-type", "repr-digest", "last-modified")
    as_table = table_origin.get(f"/v1/payloads/{other}")
    assert {k: from_table.headers[k] for k in same} == {k: as_table.headers[k] for k in same}
    assert from_file.headers["etag"] == f'"{digest}"'
    assert from_file.headers["cache-control"] == as_table.headers["cache-control"]
    revalidated = files_origin.get(
        f"/v1/payloads/{digest}", headers={"if-none-match": f'"{digest}"'}
    )
    assert revalidated.status_code == 304


def test_a_missing_file_is_a_clear_error_not_a_traceback_or_wrong_bytes(
    empty_db: str, make_client: MakeClient, tmp_path: Path
) -> None:
    store = tmp_path / "payloads"
    files_origin = make_client(empty_db, payload_store="files", payload_dir=store)
    digest = upload(files_origin, OBJECTS[0])
    PayloadFiles(store).path(digest).unlink()
    answer = files_origin.get(f"/v1/payloads/{digest}")
    assert answer.status_code == 500
    assert "missing" in answer.json()["detail"]
    table_origin = make_client(empty_db)  # an origin without the store cannot serve it either
    answer = table_origin.get(f"/v1/payloads/{digest}")
    assert answer.status_code == 500
    assert "payload_store = files" in answer.json()["detail"]


def test_payloads_move_to_files_and_back_with_the_same_bytes(
    empty_db: str, make_client: MakeClient, tmp_path: Path
) -> None:
    digests = [upload(make_client(empty_db), data) for data in OBJECTS]
    files = PayloadFiles(tmp_path / "payloads")
    engines = create_engines(empty_db)
    try:
        moved = move_payloads(engines.writer, files, "files")
        assert moved.moved == 3 and moved.bytes == sum(map(len, OBJECTS))
        assert all(row_data(empty_db, d) == b"" for d in digests)
        served = make_client(empty_db, payload_store="files", payload_dir=files.root)
        assert [served.get(f"/v1/payloads/{d}").content for d in digests] == OBJECTS
        back = move_payloads(engines.writer, files, "database")
        assert back.moved == 3
        assert [row_data(empty_db, d) for d in digests] == OBJECTS
        assert not any(files.has(d) for d in digests)  # removed once the table held them
    finally:
        engines.dispose()


def test_a_move_to_the_database_with_a_file_missing_changes_nothing(
    empty_db: str, make_client: MakeClient, tmp_path: Path
) -> None:
    store = tmp_path / "payloads"
    origin = make_client(empty_db, payload_store="files", payload_dir=store)
    digests = [upload(origin, data) for data in OBJECTS]
    files = PayloadFiles(store)
    files.path(digests[1]).unlink()
    engines = create_engines(empty_db)
    try:
        with pytest.raises(PayloadFileError, match="missing"):
            move_payloads(engines.writer, files, "database")
    finally:
        engines.dispose()
    assert all(row_data(empty_db, d) == b"" for d in digests)  # rolled back
    assert files.read(digests[0]) == OBJECTS[0] and files.read(digests[2]) == OBJECTS[2]


def test_the_command_moves_a_sqlite_databases_payloads(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'conditions.sqlite'}"
    command = [sys.executable, "-m", "outpost", "db"]
    subprocess.run([*command, "sample", "--db", db], check=True, capture_output=True)
    done = subprocess.run(
        [*command, "payloads", "--to", "files", "--db", db], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "moved" in done.stdout and str(tmp_path / "payloads") in done.stdout
    engines = create_engines(db)
    try:
        with engines.reader.connect() as conn:
            rows = conn.execute(select(payloads.c.hash, payloads.c.data)).all()
    finally:
        engines.dispose()
    files = PayloadFiles(tmp_path / "payloads")
    assert rows and all(data == b"" and files.has(h) for h, data in rows)
    for digest, _ in rows:
        assert hashlib.sha256(files.read(digest)).hexdigest() == digest


def test_a_file_store_needs_a_directory_unless_the_database_is_sqlite() -> None:
    with pytest.raises(SettingsError, match="payload_dir"):
        OriginSettings(db="postgresql+psycopg://u@h/db", payload_store="files")
    with pytest.raises(SettingsError, match="payload_store"):
        OriginSettings(payload_store="s3")
    settings = OriginSettings(db="sqlite:////data/outpost.sqlite", payload_store="files")
    assert settings.payload_files_dir() == Path("/data/payloads")


def test_readiness_says_when_the_file_store_cannot_be_written(
    empty_db: str, make_client: MakeClient, tmp_path: Path
) -> None:
    store = tmp_path / "payloads"
    origin = make_client(empty_db, payload_store="files", payload_dir=store)
    assert store.is_dir()  # made when the origin starts
    assert origin.get("/_outpost/readyz").status_code == 200
    store.rmdir()
    store.write_text("not a directory")
    answer = origin.get("/_outpost/readyz")
    assert answer.status_code == 503
    assert "payload store" in answer.json()["detail"]


def test_an_origin_whose_file_store_cannot_be_made_says_so(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    db = f"sqlite:///{tmp_path / 'conditions.sqlite'}"
    subprocess.run([sys.executable, "-m", "outpost", "db", "init", "--db", db], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "outpost", "origin", "--db", db, "--port", "1"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "OUTPOST_ORIGIN_PAYLOAD_STORE": "files",
            "OUTPOST_ORIGIN_PAYLOAD_DIR": str(tmp_path / "file" / "payloads"),
        },
        timeout=60,
    )
    assert done.returncode == 2
    assert "payload_dir" in done.stderr and "Traceback" not in done.stderr
