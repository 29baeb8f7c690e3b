"""A run start in miniature: run control flushes the tree, then every simulated farm node
fetches the run (resolve + every payload, each verified against its hash) through its node
proxy, all at once, as HLT nodes do when a run starts.

The report says what an operator wants to know: how long until the last node had everything,
per-node latency, hit ratio per tier, and how many requests reached the origin per unique URL.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from outpost.client import AsyncClient, ClientError
from outpost.commands.runcontrol import flush
from outpost.localstack import LocalStack

__all__ = ["origin_counters", "origin_requests", "run_demo"]

FIRST_RUN = 500


def origin_counters(origin_url: str) -> dict[str, dict[str, float]]:
    """What the origin answered on its read routes so far: GET requests by status
    (`requests`) and body bytes sent by route (`bytes`), from its Prometheus metrics."""
    text = httpx.get(f"{origin_url}/_outpost/metrics", timeout=10).text
    requests: dict[str, float] = {}
    sent: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if not sample.name.endswith("_total") or not labels.get("route", "").startswith("/v1/"):
                continue
            if family.name == "outpost_origin_requests" and labels.get("method") == "GET":
                requests[labels["status"]] = requests.get(labels["status"], 0.0) + sample.value
            elif family.name == "outpost_origin_response_bytes":
                sent[labels["route"]] = sent.get(labels["route"], 0.0) + sample.value
    return {"requests": requests, "bytes": sent}


def origin_requests(origin_url: str) -> dict[str, float]:
    """GET requests the origin answered on its read routes, by status."""
    return origin_counters(origin_url)["requests"]


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _start_run(
    stack: LocalStack, globaltag: str, run: int, farm_nodes: int
) -> dict[str, Any]:
    nodes = stack.node_proxies or [stack.site]
    latencies: list[float] = []
    failures = 0
    verified = 0
    urls: set[str] = set()
    started = time.perf_counter()

    async def farm_node(index: int) -> None:
        nonlocal failures, verified
        proxies = [nodes[index % len(nodes)].url, stack.site.url]
        began = time.perf_counter()
        try:
            async with AsyncClient(servers=[stack.origin.url], proxies=proxies) as client:
                conditions = await client.fetch_run(globaltag, run)
        except ClientError:
            failures += 1
            return
        latencies.append(time.perf_counter() - began)
        verified += len(conditions.payloads)
        urls.update(f"/v1/payloads/{digest}" for digest in conditions.payloads)

    await asyncio.gather(*(farm_node(i) for i in range(farm_nodes)))
    return {
        "run": run,
        "time_to_configure_s": time.perf_counter() - started,
        "node_p50_ms": _percentile(latencies, 0.50) * 1000,
        "node_p99_ms": _percentile(latencies, 0.99) * 1000,
        "failures": failures,
        "verified": verified,
        "unique_urls": len(urls) + 1,  # the payloads and the resolve answer
    }


def run_demo(stack: LocalStack, globaltag: str, *, farm_nodes: int, runs: int) -> dict[str, Any]:
    before = origin_requests(stack.origin.url)
    results = []
    for offset in range(runs):
        run = FIRST_RUN + offset
        acked = flush(stack.site.url, run, stack.token)
        result = asyncio.run(_start_run(stack, globaltag, run, farm_nodes))
        result["flush_acked"] = acked.get("acked", 0)
        results.append(result)
    after = origin_requests(stack.origin.url)
    requests = sum(after.values()) - sum(before.values())
    unique = sum(r["unique_urls"] for r in results)
    hit_ratio = {
        tier.name: httpx.get(f"{tier.url}/_outpost/status", timeout=10).json()["hit_ratio"]
        for tier in stack.tiers
        if tier.role != "origin"
    }
    return {
        "farm_nodes": farm_nodes,
        "node_proxies": len(stack.node_proxies),
        "runs": results,
        "hit_ratio": hit_ratio,
        "origin": {
            "requests": int(requests),
            "not_modified": int(after.get("304", 0) - before.get("304", 0)),
            "unique_urls": unique,
            "requests_per_unique_url": requests / unique if unique else 0.0,
        },
        "verified_payloads": sum(r["verified"] for r in results),
        "failures": sum(r["failures"] for r in results),
    }
