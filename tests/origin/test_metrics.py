"""Health and Prometheus metrics of the origin."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text
from support.asgi import AppClient
from support.origin import MakeClient

from origin.metrics import route_label
from origin.sample import HLT_GLOBAL_TAG


def test_healthz_answers_ok(client: AppClient) -> None:
    answer = client.get("/_outpost/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_readyz_answers_ready_over_a_readable_database(client: AppClient) -> None:
    answer = client.get("/_outpost/readyz")
    assert answer.status_code == 200 and answer.json() == {"status": "ready"}


def not_ready(client: AppClient) -> str:
    """The problem a 503 from readyz names, after checking healthz still says ok."""
    answer = client.get("/_outpost/readyz")
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["error"] == "service unavailable" and answer.headers["retry-after"] == "5"
    assert client.get("/_outpost/healthz").status_code == 200  # liveness: no restart loop
    return str(body["detail"])


def test_readyz_is_503_naming_a_missing_table(sample_db: str, make_client: MakeClient) -> None:
    client = make_client(sample_db)
    engine = create_engine(sample_db.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE global_tag_map"))
    engine.dispose()
    assert "global_tag_map" in not_ready(client)


def test_readyz_is_503_over_a_corrupt_sqlite_file(
    sample_sqlite: str, make_client: MakeClient
) -> None:
    client = make_client(sample_sqlite)
    Path(sample_sqlite.removeprefix("sqlite:///")).write_bytes(b"not a database " * 4096)
    assert "file is not a database" in not_ready(client)


def test_readyz_is_503_when_the_database_directory_is_gone(
    tmp_path: Path, make_client: MakeClient
) -> None:
    client = make_client(f"sqlite:///{tmp_path / 'gone' / 'conditions.sqlite'}")
    assert "unable to open database file" in not_ready(client)


def test_metrics_count_requests_by_route_and_status_and_time_queries(client: AppClient) -> None:
    client.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=5")
    client.get("/v1/resolve/NOPE?run=5")
    text = client.get("/_outpost/metrics").text
    assert (
        'outpost_origin_requests_total{method="GET",route="/v1/resolve",status="200"} 1.0' in text
    )
    assert (
        'outpost_origin_requests_total{method="GET",route="/v1/resolve",status="404"} 1.0' in text
    )
    assert 'outpost_origin_query_seconds_count{route="/v1/resolve"} 1.0' in text


def test_route_labels_stay_bounded() -> None:
    assert route_label("/v1/tags/ABC/iovs") == "/v1/tags/iovs"
    assert route_label("/v1/payloads/" + "a" * 64) == "/v1/payloads"
    assert route_label("/v1/runs/500") == route_label("/v1/runs") == "/v1/runs"
    assert route_label("/anything/else/" + "x" * 100) == "other"
