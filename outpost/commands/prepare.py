"""`outpost prepare`: flush, warm, prove every cache holds the run's conditions, record the run.

    outpost prepare --run R --globaltag GT --proxy URL [--server ORIGIN] [--repair] [--json]

1. flush the tree below `--proxy` and warm the run into it, as `outpost flush` and `outpost
   warm` do (`--no-flush`, `--no-warm`: run control did it already);
2. read the conditions the run should have from the origin (`--server`, or `OUTPOST_SERVERS`):
   its resolve answer, and their digest (`outpost.conditions`);
3. attest: every cache of the tree works out the digest of what it holds for the run, and the
   answers are counted on the way up (`/_outpost/attest`, `proxy.core.attest`);
4. with `--repair`, the caches that hold something else drop the run's URLs and fetch them
   again, and the tree is attested once more;
5. when every cache holds the conditions, write the run record at the origin
   (`POST /v1/runs/R`, run control's token; the origin checks the digest itself).

Exit status 0 when every cache holds the run's conditions and the record is written; 1 when a
cache differs or did not answer (each is named, with the records it holds otherwise) or the
record could not be written.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

import httpx
import orjson

from outpost.commands.output import CommandFailed
from outpost.commands.runcontrol import (
    WARM_BATCH,
    command_token,
    flush,
    make_console,
    post_command,
    warm,
)
from outpost.conditions import conditions_digest, differences, payload_map
from outpost.redact import redact_text, redact_url
from outpost.urls import Payload, Resolve

__all__ = ["add_parser", "prepare"]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "prepare", help="flush, warm and attest the tree for a run, then record the run"
    )
    parser.add_argument("--run", type=int, required=True, help="the coming run number")
    parser.add_argument("--globaltag", required=True, help="global tag of the run")
    parser.add_argument("--lumi", type=int, default=1, help="luminosity section (default 1)")
    parser.add_argument("--proxy", required=True, help="URL of the top proxy of the tree")
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        help="origin URL, in failover order (repeat; default $OUTPOST_SERVERS)",
    )
    parser.add_argument("--token", help="run-control token ($OUTPOST_RUN_CONTROL_TOKEN)")
    parser.add_argument(
        "--no-flush", action="store_true", help="do not flush first (run control flushed already)"
    )
    parser.add_argument(
        "--no-warm", action="store_true", help="do not warm first (run control warmed already)"
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="make the caches that differ fetch the run again, then attest again",
    )
    parser.add_argument("--no-record", action="store_true", help="attest only: write no run record")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_prepare)


def _servers(args: argparse.Namespace) -> list[str]:
    servers = [s for given in args.server for s in given.split(",") if s.strip()]
    if not servers:
        servers = [s for s in os.environ.get("OUTPOST_SERVERS", "").split(",") if s.strip()]
    if not servers:
        raise CommandFailed(
            "prepare needs the origin (--server URL or OUTPOST_SERVERS): the run's conditions "
            "are read from it and the run record is written there",
            code=2,
        )
    return [s.strip().split("|")[0] for s in servers]


def origin_conditions(
    servers: list[str], globaltag: str, run: int, lumi: int, timeout: float
) -> list[dict[str, Any]]:
    """The records of the run's resolve answer, from the first origin that answers."""
    from outpost.client import Client, ClientError, ClientSettings

    try:
        with Client(servers=servers, settings=ClientSettings(timeout=timeout)) as client:
            resolution = client.resolve(globaltag, run, lumi)
    except ClientError as exc:
        raise CommandFailed(f"prepare: the origin's conditions for run {run}: {exc}") from None
    return [dataclasses.asdict(record) for record in resolution.records]


def attest(args: argparse.Namespace, expected: str, token: str | None) -> dict[str, Any]:
    """Ask the tree below `--proxy` which conditions it holds for the run."""
    body = {"globaltag": args.globaltag, "run": args.run, "lumi": args.lumi, "expected": expected}
    return post_command(args.proxy, "/_outpost/attest", body, token, args.timeout)


def complete(answer: dict[str, Any]) -> bool:
    """Every cache that was asked answered, and holds the expected conditions."""
    return (
        "error" not in answer
        and not answer["failed"]
        and not answer["differ"]
        and answer["agree"] == answer["answered"]
    )


def repair(
    proxy: str, urls: list[str], caches: list[str], token: str | None, timeout: float
) -> dict[str, Any]:
    """Make `caches` drop `urls` and fetch them again (through the tree's warm)."""
    done: dict[str, Any] = {"urls": len(urls), "caches": caches, "failed_urls": []}
    for start in range(0, len(urls), WARM_BATCH):
        batch = {"urls": urls[start : start + WARM_BATCH], "refresh": caches}
        answer = post_command(proxy, "/_outpost/warm", batch, token, timeout)
        if "error" in answer:
            return {**done, "error": answer["error"]}
        done["failed_urls"] += answer["failed_urls"]
    return done


def write_record(
    servers: list[str], run: int, body: dict[str, Any], token: str | None, timeout: float
) -> dict[str, Any]:
    """POST the run record to the first origin that answers; its answer, or `{"error"}`."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    problems = []
    for server in servers:
        try:
            response = httpx.post(
                f"{server.rstrip('/')}/v1/runs/{run}", json=body, headers=headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            problems.append(redact_text(f"{redact_url(server)}: {type(exc).__name__}: {exc}"))
            continue
        try:
            answer: dict[str, Any] = response.json()
        except ValueError:
            answer = {}
        if response.status_code in (200, 201):
            return answer
        if response.status_code < 500:
            detail = answer.get("detail") or answer.get("error") or response.text[:300]
            return {
                "error": f"{response.status_code}: {detail}",
                "accepted": answer.get("accepted"),
            }
        problems.append(f"{redact_url(server)}: status {response.status_code}")
    return {"error": "; ".join(problems)}


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Every step's answer; `ok` says whether the run is ready and recorded."""
    servers, token = _servers(args), command_token(args)
    report: dict[str, Any] = {"run": args.run, "globaltag": args.globaltag, "lumi": args.lumi}
    if not args.no_flush:
        report["flush"] = flush(args.proxy, args.run, token, args.timeout)
    if not args.no_warm:
        report["warm"] = warm(args.proxy, args.globaltag, args.run, token, args.timeout)
    records = origin_conditions(servers, args.globaltag, args.run, args.lumi, args.timeout)
    expected = conditions_digest(records)
    report["digest"] = expected
    answer = attest(args, expected, token)
    if args.repair and "error" not in answer and answer["differ"]:
        names = sorted({name for group in answer["differ"] for name in group["caches"]})
        resolve = Resolve(args.globaltag, args.run, args.lumi).url()
        payloads = dict.fromkeys(r["payload"] for r in records if r["payload"])
        urls = [resolve, *(Payload(digest).url() for digest in payloads)]
        report["repair"] = repair(args.proxy, urls, names, token, args.timeout)
        report["first_attestation"] = _summary(answer)
        answer = attest(args, expected, token)
    report["attestation"] = _explained(answer, payload_map(records))
    report["ok"] = complete(answer)
    if report["ok"] and not args.no_record:
        body = {
            "globaltag": args.globaltag,
            "lumi": args.lumi,
            "digest": expected,
            "attestation": _summary(answer),
        }
        report["record"] = write_record(servers, args.run, body, token, args.timeout)
        report["ok"] = "error" not in report["record"]
    return report


def _summary(answer: dict[str, Any]) -> dict[str, Any]:
    """What a run record keeps of an attestation: counts, and who differed or did not answer."""
    if "error" in answer:
        return {"error": answer["error"]}
    return {
        "caches": answer["answered"] + len(answer["failed"]),
        "agree": answer["agree"],
        "differ": sorted(name for group in answer["differ"] for name in group["caches"]),
        "failed": [failure["name"] for failure in answer["failed"]],
    }


def _explained(answer: dict[str, Any], expected: dict[str, str | None]) -> dict[str, Any]:
    """The attestation with, for each group of caches that differ, the records that differ."""
    if "error" in answer:
        return answer
    groups = []
    for group in answer["differ"]:
        held = group.get("held")
        if held is None:
            what = ["no resolve answer held" if group["digest"] == "not-held" else "not shown"]
        else:
            what = [d.describe() for d in differences(expected, held, absent="not in its answer")]
        groups.append({**group, "differences": what})
    return {**answer, "differ": groups}


def _prepare(args: argparse.Namespace) -> int:
    report = prepare(args)
    if args.json:
        print(orjson.dumps(report).decode())
        return 0 if report["ok"] else 1
    console = make_console()
    for step in ("flush", "warm"):
        if "error" in report.get(step, {}):
            console.print(f"[red]{step} failed:[/red] {report[step]['error']}")
    answer = report["attestation"]
    if "error" in answer:
        console.print(f"[red]attestation failed:[/red] {answer['error']}")
        return 1
    if "repair" in report:
        first = report["first_attestation"]
        console.print(f"repaired {len(first['differ'])} caches: {', '.join(first['differ'])}")
    total = answer["answered"] + len(answer["failed"])
    digest = report["digest"]
    console.print(
        f"{answer['agree']}/{total} caches hold conditions {digest[:16]} "
        f"for {report['globaltag']} run {report['run']}",
        highlight=False,
    )
    for group in answer["differ"]:
        caches = group["caches"]
        shown = ", ".join(caches[:20]) + (
            f" and {len(caches) - 20} more" if len(caches) > 20 else ""
        )
        console.print(
            f"[red]{len(caches)} hold {group['digest'][:16]}[/red]: {shown}", highlight=False
        )
        for line in group["differences"]:
            console.print(f"    {line}", highlight=False)
    for failure in answer["failed"]:
        console.print(
            f"[red]{failure['name']} did not answer[/red]: {failure.get('url', '')} "
            f"{failure.get('error', '')}",
            highlight=False,
        )
    record = report.get("record")
    if record is not None:
        if "error" in record:
            console.print(f"[red]run record not written:[/red] {record['error']}")
        else:
            state = "written" if record.get("created", True) else "already written"
            console.print(f"run record {report['run']} {state} (snapshot {record.get('snapshot')})")
    elif not report["ok"]:
        console.print("run record not written: the attestation is not complete")
    return 0 if report["ok"] else 1
