"""Health and Prometheus metrics of the origin."""

from __future__ import annotations

from support.asgi import AppClient

from origin.metrics import route_label
from origin.sample import HLT_GLOBAL_TAG


def test_healthz_answers_ok(client: AppClient) -> None:
    answer = client.get("/_outpost/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


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
    assert route_label("/anything/else/" + "x" * 100) == "other"
