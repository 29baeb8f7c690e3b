"""The file store of payload bytes: named by their hash, written whole or not at all, checked."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from origin.payloadfiles import PayloadFileError, PayloadFiles, in_files

DATA = b"EcalPedestals " * 1000
DIGEST = hashlib.sha256(DATA).hexdigest()


def test_a_payload_is_stored_under_its_hash_fanned_out_by_prefix(tmp_path: Path) -> None:
    files = PayloadFiles(tmp_path)
    assert files.write(DIGEST, DATA)
    path = tmp_path / DIGEST[:2] / DIGEST[2:4] / DIGEST
    assert path.read_bytes() == DATA
    assert files.read(DIGEST) == DATA
    assert not files.write(DIGEST, DATA)  # there already: nothing written
    assert [p.name for p in path.parent.iterdir()] == [DIGEST]  # no temporary file left


def test_bytes_that_are_not_their_name_are_never_written(tmp_path: Path) -> None:
    files = PayloadFiles(tmp_path)
    with pytest.raises(ValueError, match="hash to"):
        files.write(DIGEST, DATA + b"!")
    assert not any(tmp_path.rglob("*"))


@pytest.mark.parametrize("name", ["../../etc/passwd", DIGEST.upper(), DIGEST[:-1], "", "a" * 65])
def test_only_a_lower_case_sha256_names_a_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a lower-case SHA-256"):
        PayloadFiles(tmp_path).path(name)


def test_a_missing_or_altered_file_is_an_error_not_wrong_bytes(tmp_path: Path) -> None:
    files = PayloadFiles(tmp_path)
    with pytest.raises(PayloadFileError, match="missing"):
        files.read(DIGEST)
    files.write(DIGEST, DATA)
    files.path(DIGEST).write_bytes(DATA[:-1])
    with pytest.raises(PayloadFileError, match="does not hold"):
        files.read(DIGEST)


def test_a_failed_write_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = PayloadFiles(tmp_path)

    def broken_replace(source: object, target: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        files.write(DIGEST, DATA)
    assert not files.has(DIGEST)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_row_says_its_bytes_are_in_the_files_when_its_data_is_empty_and_its_size_is_not() -> None:
    assert in_files(10, b"")
    assert in_files(10, None)
    assert not in_files(10, b"0123456789")
    assert not in_files(0, b"")  # empty bytes are the same wherever they are
