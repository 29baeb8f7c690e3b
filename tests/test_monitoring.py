"""deploy/monitoring: alert rules and dashboard that promtool accepts and that watch only metrics
the code exports, and an exposition with process metrics and build_info but no `_created` series.

promtool comes from Debian's `prometheus` package, which `scripts/bootstrap --servers` installs.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from support.asgi import AppClient
from support.inprocess import InProcessUpstream
from support.origin import MakeClient
from support.scripted import Answer, ScriptedOrigin

from origin.metrics import OriginMetrics
from origin.sample import HLT_GLOBAL_TAG
from proxy.app import create_app
from proxy.metrics import ProxyMetrics
from proxy.settings import ProxySettings

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
ALERTS = MONITORING / "outpost-alerts.yml"
DASHBOARD = MONITORING / "outpost-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"

METRIC = re.compile(r"\b(?:outpost|process)_[a-z0-9_]+")
SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
}
PROCESS_METRICS = ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `scripts/bootstrap --servers` installs it (prometheus)")
    return subprocess.run([path, *map(str, args)], capture_output=True, text=True, timeout=60)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def dashboard_targets() -> list[dict[str, Any]]:
    return [target for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def dashboard_queries() -> list[str]:
    """The PromQL of every panel target and of every query variable."""
    variables = [
        v["query"]["query"] for v in dashboard()["templating"]["list"] if v["type"] == "query"
    ]
    return [target["expr"] for target in dashboard_targets()] + variables


def as_promql(grafana_query: str) -> str:
    """A panel's query with Grafana's variables filled in as Grafana would."""
    return (
        grafana_query.replace("$__rate_interval", "5m")
        .replace("$tier", ".*")
        .replace("$instance", ".*")
    )


def exported_names(*registries: CollectorRegistry) -> set[str]:
    """Every sample name the registries can expose, labelled families without children too."""
    return {
        family.name + suffix
        for registry in registries
        for family in registry.collect()
        for suffix in SAMPLE_SUFFIXES[family.type]
    }


def test_promtool_accepts_the_alert_rules() -> None:
    checked = promtool("check", "rules", ALERTS)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_every_dashboard_query_is_promql_that_promtool_accepts(tmp_path: Path) -> None:
    queries = [as_promql(target["expr"]) for target in dashboard_targets()]
    rules = [{"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)]
    recorded = tmp_path / "dashboard-queries.yml"
    recorded.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = promtool("check", "rules", recorded)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_has_a_severity_a_duration_and_says_what_to_do() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), names
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert re.fullmatch(r"\d+m", rule["for"]), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_dashboard_panel_queries_prometheus_through_the_datasource_variable() -> None:
    panels = [panel for panel in dashboard()["panels"] if panel["type"] != "row"]
    variables = {v["name"] for v in dashboard()["templating"]["list"]}
    assert {"datasource", "tier", "instance"} <= variables
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_named_by_the_alerts_and_the_dashboard_is_exported(source: str) -> None:
    queries = [r["expr"] for r in alert_rules()] if source == "alerts" else dashboard_queries()
    named = {name for query in queries for name in METRIC.findall(query)}
    exported = exported_names(ProxyMetrics().registry, OriginMetrics().registry)
    assert named, f"the {source} name no metric"
    assert named <= exported, sorted(named - exported)


def test_every_alert_watches_metrics_the_guide_explains() -> None:
    text = OPERATIONS.read_text()
    section = text.split("\n## Metrics to watch\n", 1)[1].split("\n## ", 1)[0]
    explained = set(METRIC.findall(section))
    for rule in alert_rules():
        watched = set(METRIC.findall(rule["expr"]))
        assert watched <= explained, (rule["alert"], sorted(watched - explained))


def series(metric: str, values: str, **labels: str) -> dict[str, str]:
    """An input series of `promtool test rules`, in its expanding notation (`1x4 2x40`)."""
    selector = ",".join(f'{name}="{value}"' for name, value in labels.items())
    return {"series": f"{metric}{{{selector}}}", "values": values}


def expect(alert: str, at: str, *firing: dict[str, str]) -> dict[str, Any]:
    """`alert` evaluated at `at` fires once per label set of `firing` (none: it does not)."""
    alerts = [{"exp_labels": labels} for labels in firing]
    return {"eval_time": at, "alertname": alert, "exp_alerts": alerts}


SITE = {"job": "outpost", "tier": "site", "instance": "site"}
NODE1 = {"job": "outpost", "tier": "node", "instance": "node-1"}
NODE2 = {"job": "outpost", "tier": "node", "instance": "node-2"}
WARNING = {"severity": "warning"}

# Situations the trickier alerts must tell apart, for `promtool test rules` (annotations are
# left out: the expressions are under test, and promtool compares annotations verbatim).
ALERT_CASES: list[tuple[list[dict[str, str]], list[dict[str, Any]]]] = [
    (  # a flush reached site and node-1 at 5m; node-2 never caught up
        [
            series("outpost_proxy_epoch", "1x4 2x40", **SITE),
            series("outpost_proxy_epoch", "1x4 2x40", **NODE1),
            series("outpost_proxy_epoch", "1x45", **NODE2),
        ],
        [
            expect("OutpostCacheMissedFlush", "15m"),
            expect("OutpostCacheMissedFlush", "30m", NODE2 | WARNING),
        ],
    ),
    (  # node-1 fails 2 answers in 100, node-2 1 in 1000
        [
            series("outpost_proxy_requests_total", "0+98x30", result="hit", **NODE1),
            series("outpost_proxy_requests_total", "0+2x30", result="error", **NODE1),
            series("outpost_proxy_requests_total", "0+999x30", result="hit", **NODE2),
            series("outpost_proxy_requests_total", "0+1x30", result="error", **NODE2),
        ],
        [
            expect(
                "OutpostProxyAnswersFailing",
                "20m",
                {"tier": "node", "instance": "node-1"} | WARNING,
            )
        ],
    ),
    (  # the site lost 2 of its 40 nodes at 30m; a node proxy has no children at all
        [
            series("outpost_proxy_children", "40x29 38x40", **SITE),
            series("outpost_proxy_children", "0x70", **NODE1),
        ],
        [
            expect("OutpostSiteLostChildren", "25m"),
            expect("OutpostSiteLostChildren", "50m", SITE | WARNING),
        ],
    ),
    (  # a slow last push alerts while changes flow, not once the feed is quiet
        [
            series("outpost_proxy_feed_lag_seconds", "120x60", **NODE1),
            series("outpost_proxy_feed_position", "1+1x10 11x50", **NODE1),
        ],
        [
            expect("OutpostFeedPushSlow", "10m", NODE1 | WARNING),
            expect("OutpostFeedPushSlow", "40m"),
        ],
    ),
    (  # open files near the limit: only Outpost's processes (those with build_info) count
        [
            series("process_open_fds", "900x20", job="outpost", instance="site"),
            series("process_max_fds", "1000x20", job="outpost", instance="site"),
            series("outpost_build_info", "1x20", job="outpost", instance="site", role="proxy"),
            series("process_open_fds", "950x20", job="other", instance="db"),
            series("process_max_fds", "1000x20", job="other", instance="db"),
        ],
        [
            expect(
                "OutpostOpenFilesNearLimit", "15m", {"job": "outpost", "instance": "site"} | WARNING
            )
        ],
    ),
]


def test_the_alerts_fire_in_the_situations_they_name_and_not_otherwise(tmp_path: Path) -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    for group in groups:
        for rule in group["rules"]:
            del rule["annotations"]
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump({"groups": groups}))
    tests = [
        {"interval": "1m", "input_series": inputs, "alert_rule_test": expected}
        for inputs, expected in ALERT_CASES
    ]
    cases = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "cases.yml").write_text(yaml.safe_dump(cases))
    tested = promtool("test", "rules", tmp_path / "cases.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def check_exposition(text: str, role: str) -> None:
    """Process metrics and build_info present; no `_created` series, each HELP once."""
    helps = re.findall(r"^# HELP (\S+) ", text, re.MULTILINE)
    assert len(helps) == len(set(helps)), sorted(h for h in helps if helps.count(h) > 1)
    samples = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    assert not [name for name in samples if name.endswith("_created")]
    assert set(PROCESS_METRICS) <= set(samples)
    assert samples["outpost_build_info"].value == 1
    assert samples["outpost_build_info"].labels == {
        "version": version("outpost"),
        "python": platform.python_version(),
        "role": role,
    }


@pytest.fixture
def proxy() -> Iterator[AppClient]:
    origin = ScriptedOrigin()
    origin.script("/broken", Answer(status=503))
    settings = ProxySettings(name="edge", upstreams=("http://upstream.test",), retries=0)
    upstream = InProcessUpstream(httpx.AsyncClient(transport=httpx.ASGITransport(app=origin)))
    with AppClient(create_app(settings, upstream_client=upstream)) as app:
        yield app


def test_the_proxys_exposition_has_process_metrics_and_build_info_but_no_created_series(
    proxy: AppClient,
) -> None:
    proxy.get("/broken")  # an upstream error and an answer: counters and histograms with children
    text = proxy.get("/_outpost/metrics").text
    assert "outpost_proxy_upstream_errors_total{" in text
    check_exposition(text, "proxy")


def test_the_origins_exposition_has_process_metrics_and_build_info_but_no_created_series(
    sample_sqlite: str, make_client: MakeClient
) -> None:
    origin = make_client(sample_sqlite)
    origin.get(f"/v1/resolve/{HLT_GLOBAL_TAG}?run=5")  # a counted request and a timed query
    text = origin.get("/_outpost/metrics").text
    assert "outpost_origin_query_seconds_count{" in text
    check_exposition(text, "origin")
