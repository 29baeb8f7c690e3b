"""Cache-hit throughput of `outpost proxy` against squid and varnish, all in front of the same
origin.

What it measures: requests per second, transfer rate and p99 latency of *cache hits* on
``GET /v1/payloads/{sha256}`` (``Cache-Control: public, max-age=31536000, immutable``), for
payloads of given sizes (default 1 KiB, 100 KiB and 1 MiB), served

- by ``outpost proxy`` (its memory cache, 512 MiB by default),
- by squid (the distribution's ``/usr/sbin/squid``) run as an accelerator (reverse proxy) with
  a 512 MB memory cache and no disk cache, and
- by varnish (the distribution's ``varnishd``, its builtin VCL, ``-b ORIGIN``) with a 512 MiB
  ``malloc`` storage,

- and by a second ``outpost proxy`` with its access log off (``outpost-nolog``): the one
  measured logs every request (the default, one line each, here to its output file), so
  outpost/outpost-nolog is what the access log costs hits,

and the ratios outpost/squid, outpost/varnish and outpost/outpost-nolog of the requests per
second. The requirement
is that the ratio to squid is above 1: a node proxy must serve hits faster than the squid it
replaces. ``--peers`` chooses the peers (default both); a peer that is not installed is skipped
with a message on stderr.

How, so that the ratios mean something: same machine, same run, same load generator, same
origin, same URL path. One temporary directory holds a sqlite database built with
``outpost db load`` (one random payload per size, from a fixed seed, each under its own tag),
one ``outpost origin``, one ``outpost proxy``, one squid and one varnishd, each on a free
``127.0.0.1`` port, each in its own process group, all stopped (SIGTERM, then SIGKILL) when the
run ends, however it ends. For each size, every cache is warmed with plain GETs on fresh
connections until the answers are hits (``Cache-Status: ...; hit`` for outpost,
``X-Cache: HIT`` for squid, two transaction numbers in ``X-Varnish`` for varnish); then,
outpost first, squid second and varnish third, a short wrk warm-up run and the measurement,
``wrk -t1 -c{connections} -d{duration}s --latency``. wrk is pinned to CPU 1 with ``taskset``;
with ``--pin`` (the default) the server under test is pinned to CPU 0, so each side gets one
core and wrk the other. With ``--proxy-workers 2`` outpost is *not* pinned (two workers on one
core would only compete): it then shares both cores with wrk while squid and varnish keep one,
which favours neither cleanly, so compare such runs with care.

Hits are checked, not assumed: the origin's request counter for ``/v1/payloads`` is read before
and after each measurement, and any request that reached the origin during one is reported
(and fails the run). The CPU time the server under test used during the measurement is
reported as a percentage of one core (all processes of its group), and so is wrk's: when
neither the server nor wrk is near 100 %, something else took their cores (another job on the
machine) and the numbers are disturbed; a server well under 100 % with wrk near 100 % means
the load generator, not the server, was the limit.

Usage::

    .venv/bin/python benchmarks/hit_throughput.py [--duration 10] [--connections 64]
        [--proxy-workers 1] [--proxy-server uvicorn|granian] [--sizes 1KiB,100KiB,1MiB]
        [--peers squid,varnish,outpost-nolog] [--warmup 2] [--repeat 1] [--no-pin] [--json]

Exit status: 0 when every measurement saw only 2xx/3xx answers, no socket errors and no
request reaching the origin; 1 otherwise; 2 when the benchmark could not run (a server did not
start, a cache would not hit, wrk missing, no peer installed, wrk's output unreadable).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import HOST, clean_environment, free_port, outpost_command, tail, varnish_command
from wrk import (
    WRK_CPU,
    BenchmarkError,
    WrkResult,
    can_pin,
    find_wrk,
    parse_wrk,
    run_wrk,
    wrk_command,
    wrk_version,
)

from loadtest.peers import PeerMissing, find_peer, prepare_squid

SERVER_CPU = 0
HEALTH_PATH = "/_outpost/healthz"
METRICS_PATH = "/_outpost/metrics"
PAYLOAD_SEED = 20260101
DEFAULT_SIZES = "1KiB,100KiB,1MiB"
MAX_SIZE = 32 * 1024**2
CACHE_MB = 512
WARM_MIN = 3
WARM_MAX = 30
_MIB = 1024**2
_UNITS = {"": 1, "B": 1, "KiB": 1024, "MiB": 1024**2}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB)?\s*$")
_ORIGIN_PAYLOADS = re.compile(
    r'^outpost_origin_requests_total\{[^}]*route="/v1/payloads"[^}]*\}\s+([0-9.e+]+)\s*$', re.M
)
NOLOG = "outpost-nolog"  # outpost proxy with its access log off
PEERS = ("squid", "varnish", NOLOG)


# --- sizes and the database ------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    label: str
    size: int
    digest: str

    @property
    def path(self) -> str:
        return f"/v1/payloads/{self.digest}"


def parse_size(text: str) -> tuple[str, int]:
    """`1KiB` -> ("1KiB", 1024); a bare number is bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size such as 512, 1KiB or 2MiB")
    size = int(match[1]) * _UNITS[match[2] or ""]
    if not 0 < size <= MAX_SIZE:
        raise ValueError(f"{text!r}: sizes go from 1 B to {MAX_SIZE // _MIB} MiB")
    return f"{match[1]}{match[2] or 'B'}", size


def build_database(root: Path, db_url: str, sizes: Sequence[tuple[str, int]]) -> list[Payload]:
    """One random payload per size (fixed seed), each the single IOV of its own tag."""
    blobs = root / "payloads"
    blobs.mkdir()
    payloads: list[Payload] = []
    document: dict[str, Any] = {"payloads": {}, "tags": []}
    for index, (label, size) in enumerate(sizes):
        data = random.Random(PAYLOAD_SEED + index).randbytes(size)
        name = f"bench_{index}_{label}"
        (blobs / f"{name}.bin").write_bytes(data)
        document["payloads"][name] = {"file": f"payloads/{name}.bin", "object_type": "BenchBlob"}
        document["tags"].append(
            {
                "name": f"BenchHit_{index}_{label}",
                "time_type": "run",
                "payload_type": "BenchBlob",
                "description": f"hit_throughput.py: one {label} payload",
                "iovs": [{"since": 1, "payload": name}],
            }
        )
        payloads.append(Payload(label, size, hashlib.sha256(data).hexdigest()))
    spec = root / "load.json"  # JSON is YAML; `db load` reads both
    spec.write_text(json.dumps(document, indent=1))
    command = [*outpost_command(), "db", "load", str(spec), "--db", db_url]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=120, env=clean_environment()
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError("`outpost db load` did not finish within 120 s") from exc
    if done.returncode != 0:
        raise BenchmarkError(f"`outpost db load` failed:\n{done.stdout}{done.stderr}")
    return payloads


# --- processes -------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    base: str
    process: subprocess.Popen[bytes]
    logs: tuple[Path, ...]  # its output, then any log file of its own
    pinned: bool

    def log_tail(self) -> str:
        return "\n".join(filter(None, (tail(log) for log in self.logs)))

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchmarkError(
                f"{self.name} exited with status {self.process.returncode}:\n{self.log_tail()}"
            )


def start_server(
    name: str,
    command: Sequence[str],
    port: int,
    log: Path,
    pin_cpu: int | None,
    own_logs: Sequence[Path] = (),
) -> Server:
    """Start `command` in its own session (process group), optionally under `taskset -c CPU`."""
    taskset = shutil.which("taskset")
    pinned = pin_cpu is not None and taskset is not None
    if pinned:
        command = [str(taskset), "-c", str(pin_cpu), *command]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=clean_environment(),
            start_new_session=True,  # workers included: stop_server signals the whole group
        )
    return Server(name, f"http://{HOST}:{port}", process, (log, *own_logs), pinned)


def stop_server(server: Server, timeout: float = 10.0) -> None:
    """SIGTERM to the server's process group, SIGKILL if it is still there after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):  # the whole group is already gone
            os.killpg(server.process.pid, sig)
        try:
            server.process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of the live processes of a process group (Linux /proc)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited meanwhile
        if len(fields) > 12 and int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's waited-for children: across one wrk run (the
    servers are only waited for at the end), wrk's own CPU time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- HTTP checks -----------------------------------------------------------------------------


@contextlib.contextmanager
def wrk_like_client() -> Iterator[httpx.Client]:
    """A client sending what wrk sends (Host only) on a fresh connection per request: the same
    cache variant as wrk's requests, and with several workers, a chance to reach each."""
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(trust_env=False, timeout=10.0, limits=limits) as client:
        for name in ("accept", "accept-encoding", "connection", "user-agent"):
            client.headers.pop(name, None)
        yield client


def wait_ready(client: httpx.Client, server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            response = client.get(server.base + HEALTH_PATH, timeout=1.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise BenchmarkError(
        f"{server.name} did not answer 200 on {server.base}{HEALTH_PATH} within {timeout:g} s "
        f"(last: {last}); its log:\n{server.log_tail()}"
    )


def outpost_status(response: httpx.Response) -> str:
    return str(response.headers.get("cache-status", ""))


def squid_status(response: httpx.Response) -> str:
    return str(response.headers.get("x-cache", ""))


def outpost_hit(status: str) -> bool:
    """`bench; hit; ttl=...`: the first (nearest) cache's entry has the `hit` parameter."""
    first = status.split(",")[0]
    return "hit" in (part.strip() for part in first.split(";")[1:])


def squid_hit(status: str) -> bool:
    return status.upper().startswith("HIT")


def varnish_status(response: httpx.Response) -> str:
    return str(response.headers.get("x-varnish", ""))


def varnish_hit(status: str) -> bool:
    """`32770 3`: this request's transaction and the one that stored the object (a miss has
    only the first)."""
    numbers = status.split()
    return len(numbers) == 2 and all(n.isdigit() for n in numbers)


@dataclass(frozen=True)
class CacheProbe:
    header: Callable[[httpx.Response], str]
    is_hit: Callable[[str], bool]


PROBES = {
    "outpost": CacheProbe(outpost_status, outpost_hit),
    NOLOG: CacheProbe(outpost_status, outpost_hit),
    "squid": CacheProbe(squid_status, squid_hit),
    "varnish": CacheProbe(varnish_status, varnish_hit),
}


def warm(client: httpx.Client, server: Server, payload: Payload) -> list[str]:
    """GET until the last WARM_MIN answers in a row were hits (at most WARM_MAX GETs)."""
    probe = PROBES[server.name]
    statuses: list[str] = []
    streak = 0
    url = server.base + payload.path
    for _ in range(WARM_MAX):
        response = client.get(url)
        if response.status_code != 200 or len(response.content) != payload.size:
            raise BenchmarkError(
                f"GET {url} through {server.name}: HTTP {response.status_code}, "
                f"{len(response.content)} bytes, not {payload.size}"
            )
        status = probe.header(response)
        statuses.append(status)
        streak = streak + 1 if probe.is_hit(status) else 0
        if streak >= WARM_MIN:
            return statuses
    raise BenchmarkError(
        f"{server.name} did not answer {payload.path} from its cache after {WARM_MAX} GETs; "
        f"its cache statuses: {statuses}"
    )


def origin_payload_requests(client: httpx.Client, origin: Server) -> int:
    """How many /v1/payloads requests the origin has answered (its Prometheus counter)."""
    response = client.get(origin.base + METRICS_PATH)
    if response.status_code != 200:
        raise BenchmarkError(f"GET {origin.base}{METRICS_PATH}: HTTP {response.status_code}")
    return round(sum(float(m[1]) for m in _ORIGIN_PAYLOADS.finditer(response.text)))


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Measurement:
    server: str
    url: str
    result: WrkResult
    origin_requests: int
    cpu_percent: float
    wrk_cpu_percent: float
    warm_statuses: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.result.errors or self.origin_requests)


@dataclass
class SizeResult:
    payload: Payload
    runs: dict[str, Measurement]  # outpost, then the peers measured, in that order

    def ratio(self, peer: str) -> float | None:
        """outpost/`peer` in requests per second; None when the peer was not measured."""
        run = self.runs.get(peer)
        if run is None or not run.result.requests_per_sec:
            return None
        return self.runs["outpost"].result.requests_per_sec / run.result.requests_per_sec


@dataclass
class Setup:
    wrk: str
    peers: dict[str, str]  # the peers to measure, in order: name -> program
    pin_wrk: bool
    pin_servers: bool


def progress(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"[bench] {message}", file=sys.stderr, flush=True)


def measure(
    args: argparse.Namespace,
    setup: Setup,
    client: httpx.Client,
    origin: Server,
    server: Server,
    payload: Payload,
    warm_statuses: list[str],
) -> Measurement:
    url = server.base + payload.path
    if args.warmup > 0:
        progress(args, f"{payload.label} {server.name}: warm-up {args.warmup} s")
        run_wrk(
            wrk_command(setup.wrk, url, args.connections, args.warmup, setup.pin_wrk), args.warmup
        )
    progress(args, f"{payload.label} {server.name}: measuring {args.duration} s on {url}")
    before = origin_payload_requests(client, origin)
    cpu_before = group_cpu_seconds(server.process.pid)
    wrk_before = children_cpu_seconds()
    output = run_wrk(
        wrk_command(setup.wrk, url, args.connections, args.duration, setup.pin_wrk), args.duration
    )
    wrk_cpu = children_cpu_seconds() - wrk_before
    cpu = group_cpu_seconds(server.process.pid) - cpu_before
    after = origin_payload_requests(client, origin)
    server.check_alive()
    result = parse_wrk(output)
    seconds = result.duration_s or float(args.duration)
    return Measurement(
        server=server.name,
        url=url,
        result=result,
        origin_requests=after - before,
        cpu_percent=100.0 * cpu / seconds,
        wrk_cpu_percent=100.0 * wrk_cpu / seconds,
        warm_statuses=warm_statuses,
    )


def start_peer(
    name: str, program: str, root: Path, origin_port: int, largest: int, pin: bool
) -> Server:
    """squid or varnish on a free port in front of the origin, with a CACHE_MB memory cache;
    or `outpost-nolog`, outpost proxy as measured, with its access log off."""
    port = free_port()
    cpu = SERVER_CPU if pin else None
    if name == NOLOG:
        config = root / "nolog.toml"
        config.write_text('[proxy]\naccess_log = "off"\n')
        command = [*outpost_command(), "proxy", "--name", "bench", "--host", HOST]
        command += ["--port", str(port), "--upstream", f"http://{HOST}:{origin_port}"]
        command += ["--config", str(config), "--log-level", "warning"]
        return start_server(name, command, port, root / "nolog.log", cpu)
    if name == "squid":
        conf = prepare_squid(
            root / "squid",
            port=port,
            parent_port=origin_port,
            name="outpost-bench",
            object_mb=max(8, 2 * math.ceil(largest / _MIB)),
        )
        command = [program, "-N", "-f", str(conf)]
        own = [conf.parent / "cache.log"]
        return start_server(name, command, port, root / "squid.out", cpu, own_logs=own)
    if name == "varnish":
        command = varnish_command(
            program, root / "varnish", port=port, origin_port=origin_port, storage_mb=CACHE_MB
        )
        return start_server(name, command, port, root / "varnish.out", cpu)
    raise ValueError(name)


def benchmark(args: argparse.Namespace, setup: Setup) -> list[SizeResult]:
    results: list[SizeResult] = []
    servers: list[Server] = []
    with (
        tempfile.TemporaryDirectory(prefix="outpost-hit-bench-") as tmp,
        wrk_like_client() as client,
    ):
        root = Path(tmp)
        try:
            db_url = f"sqlite:///{root / 'outpost.sqlite'}"
            progress(args, f"building the database in {root}: {', '.join(args.size_labels)}")
            payloads = build_database(root, db_url, args.sizes)

            origin_port = free_port()
            origin_command = [*outpost_command(), "origin", "--db", db_url, "--host", HOST]
            origin_command += ["--port", str(origin_port), "--log-level", "warning"]
            origin = start_server("origin", origin_command, origin_port, root / "origin.log", None)
            servers.append(origin)
            wait_ready(client, origin, args.startup_timeout)
            for payload in payloads:  # the origin serves what we loaded
                response = client.get(origin.base + payload.path)
                if response.status_code != 200 or len(response.content) != payload.size:
                    raise BenchmarkError(
                        f"origin: GET {payload.path}: HTTP {response.status_code}, "
                        f"{len(response.content)} bytes, not {payload.size}"
                    )

            proxy_port = free_port()
            proxy_command = [*outpost_command(), "proxy", "--name", "bench", "--host", HOST]
            proxy_command += ["--port", str(proxy_port), "--upstream", origin.base]
            proxy_command += ["--workers", str(args.proxy_workers), "--log-level", "warning"]
            proxy_command += ["--server", args.proxy_server]
            if args.proxy_workers > 1:
                proxy_command += ["--state-dir", str(root / "proxy-state")]
            pin_outpost = setup.pin_servers and args.proxy_workers == 1
            progress(
                args,
                f"starting outpost proxy ({args.proxy_workers} worker(s), "
                f"{'pinned to CPU 0' if pin_outpost else 'not pinned'})",
            )
            outpost = start_server(
                "outpost",
                proxy_command,
                proxy_port,
                root / "proxy.log",
                SERVER_CPU if pin_outpost else None,
            )
            servers.append(outpost)

            largest = max(p.size for p in payloads)
            pinning = "pinned to CPU 0" if setup.pin_servers else "not pinned"
            peers = []
            for name, program in setup.peers.items():
                progress(args, f"starting {name} ({pinning})")
                peer = start_peer(name, program, root, origin_port, largest, setup.pin_servers)
                servers.append(peer)
                peers.append(peer)
            for server in (outpost, *peers):
                wait_ready(client, server, args.startup_timeout)

            for payload in payloads:
                statuses = {s.name: warm(client, s, payload) for s in (outpost, *peers)}
                rounds: dict[str, list[Measurement]] = {s.name: [] for s in (outpost, *peers)}
                for _ in range(args.repeat):  # interleaved: a slow moment hits every server
                    for s in (outpost, *peers):
                        m = measure(args, setup, client, origin, s, payload, statuses[s.name])
                        rounds[s.name].append(m)
                runs = {name: median_run(taken) for name, taken in rounds.items()}
                results.append(SizeResult(payload, runs))
        finally:
            for server in reversed(servers):
                stop_server(server)
    return results


# --- output ----------------------------------------------------------------------------------


def median_run(taken: Sequence[Measurement]) -> Measurement:
    """The measurement with the median rate of those taken (the lower middle of an even
    count); a failed one is kept if any failed, so a failure is never hidden."""
    failed = [m for m in taken if m.failed]
    if failed:
        return failed[0]
    ordered = sorted(taken, key=lambda m: m.result.requests_per_sec)
    return ordered[(len(ordered) - 1) // 2]


def render_table(results: Sequence[SizeResult]) -> str:
    servers = list(results[0].runs) if results else ["outpost"]
    peers = servers[1:]
    header = ["size"]
    for name in servers:
        header += [f"{name} req/s", "MiB/s", "p99 ms", "cpu%", "wrk%"]
    header += [f"outpost/{peer}" for peer in peers]
    rows = []
    for r in results:
        cells = [r.payload.label]
        for name in servers:
            m = r.runs[name]
            cells += [
                f"{m.result.requests_per_sec:.0f}",
                f"{m.result.transfer_mib_per_sec:.1f}",
                f"{m.result.latency_ms['p99']:.2f}",
                f"{m.cpu_percent:.0f}",
                f"{m.wrk_cpu_percent:.0f}",
            ]
        for peer in peers:
            ratio = r.ratio(peer)
            cells.append(f"{ratio:.2f}" if ratio is not None else "-")
        rows.append(cells)
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = []
    for row in (header, *rows):
        first = row[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def problems(results: Sequence[SizeResult]) -> list[str]:
    found = []
    for r in results:
        for name, m in r.runs.items():
            if m.result.non_2xx_3xx:
                found.append(f"{r.payload.label} {name}: {m.result.non_2xx_3xx} non-2xx/3xx")
            for kind, count in asdict(m.result.socket_errors).items():
                if count:
                    found.append(f"{r.payload.label} {name}: {count} socket {kind} errors")
            if m.origin_requests:
                found.append(
                    f"{r.payload.label} {name}: {m.origin_requests} request(s) reached the "
                    "origin during the measurement (not all hits)"
                )
    return found


def to_json(config: dict[str, Any], results: Sequence[SizeResult]) -> dict[str, Any]:
    sizes = []
    for r in results:
        entry: dict[str, Any] = {
            "size": r.payload.label,
            "bytes": r.payload.size,
            "path": r.payload.path,
            "ratio_rps": r.ratio("squid"),  # outpost/squid, the requirement
            "ratio_rps_varnish": r.ratio("varnish"),
            "ratio_rps_log_on_off": r.ratio(NOLOG),  # the access log's cost: >= 0.8 wanted
        }
        for name, m in r.runs.items():
            entry[name] = {
                "url": m.url,
                **asdict(m.result),
                "errors": m.result.errors,
                "body_mib_per_sec": m.result.requests_per_sec * r.payload.size / _MIB,
                "origin_requests_during_run": m.origin_requests,
                "server_cpu_percent": m.cpu_percent,
                "wrk_cpu_percent": m.wrk_cpu_percent,
                "warm_cache_statuses": m.warm_statuses,
            }
        sizes.append(entry)
    return {
        "benchmark": "outpost-proxy-hit-throughput",
        "config": config,
        "ok": not problems(results),
        "problems": problems(results),
        "sizes": sizes,
    }


def peer_version(name: str, program: str) -> str:
    """The first line of `squid -v` or `varnishd -V`."""
    flag = "-V" if name == "varnish" else "-v"
    done = subprocess.run([program, flag], capture_output=True, text=True, timeout=10)
    first = (done.stdout + done.stderr).strip().splitlines()
    return first[0] if first else "unknown"


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Cache-hit throughput of outpost proxy vs squid and varnish (wrk, same origin)."
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (-c)")
    parser.add_argument(
        "--proxy-workers", type=int, default=1, help="outpost proxy worker processes"
    )
    parser.add_argument(
        "--proxy-server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="HTTP server under outpost proxy (default uvicorn, the faster for hits)",
    )
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help=f"payload sizes (default {DEFAULT_SIZES})"
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"caches to compare outpost with (default {','.join(PEERS)})",
    )
    parser.add_argument("--warmup", type=int, default=2, help="wrk warm-up seconds per run")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure every server this many times, interleaved, and keep each one's median",
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pin the server under test to CPU 0 (outpost only with 1 worker)",
    )
    parser.add_argument("--squid", default=None, help="squid binary (default: squid on PATH)")
    parser.add_argument(
        "--startup-timeout", type=float, default=30.0, help="seconds to wait for each server"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    for name in ("duration", "connections", "proxy_workers", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.startup_timeout <= 0:
        parser.error("--warmup must be >= 0 and --startup-timeout > 0")
    try:
        args.sizes = [parse_size(text) for text in args.sizes.split(",") if text.strip()]
    except ValueError as exc:
        parser.error(f"--sizes: {exc}")
    if not args.sizes or len({label for label, _ in args.sizes}) != len(args.sizes):
        parser.error("--sizes: give one or more distinct sizes")
    args.size_labels = [label for label, _ in args.sizes]
    chosen = {name.strip() for name in args.peers.split(",") if name.strip()}
    if not chosen or not chosen <= set(PEERS):
        parser.error(f"--peers: one or more of {', '.join(PEERS)}")
    args.peers = [name for name in PEERS if name in chosen]
    return args


def find_squid(given: str | None) -> str | None:
    if given:
        return given if Path(given).exists() else shutil.which(given)
    return shutil.which("squid") or (
        "/usr/sbin/squid" if Path("/usr/sbin/squid").exists() else None
    )


def find_peers(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    """The programs of the chosen peers, and why the others are skipped (not installed)."""
    found: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in args.peers:
        try:
            if name == NOLOG:
                program = "outpost"  # the same program, started by start_peer
            elif name == "squid" and args.squid:
                program = find_squid(args.squid)
                if program is None:
                    raise PeerMissing(f"--squid {args.squid}: no such program")
            else:
                program = find_peer("varnishd" if name == "varnish" else name)
        except PeerMissing as exc:
            skipped[name] = str(exc)
            continue
        found[name] = program
    return found, skipped


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = find_wrk()
    if wrk is None:
        print("benchmark: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    peers, skipped = find_peers(args)
    for name, why in skipped.items():
        print(f"benchmark: skipping {name}: {why}", file=sys.stderr)
    if not peers:
        print("benchmark: no peer to compare outpost with", file=sys.stderr)
        return 2
    pin_wrk = can_pin()
    pin_servers = args.pin and pin_wrk and SERVER_CPU in os.sched_getaffinity(0)
    if not pin_wrk:
        progress(args, f"not pinning: taskset missing or CPU {WRK_CPU} unavailable")
    setup = Setup(wrk=wrk, peers=peers, pin_wrk=pin_wrk, pin_servers=pin_servers)
    load_before = os.getloadavg()
    try:
        results = benchmark(args, setup)
    except BenchmarkError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    load_after = os.getloadavg()
    peer_cpu = SERVER_CPU if pin_servers else None
    config = {
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "repeat": args.repeat,
        "connections": args.connections,
        "wrk_threads": 1,
        "proxy_workers": args.proxy_workers,
        "proxy_server": args.proxy_server,
        "cache_mb": CACHE_MB,
        "peers": list(peers),
        "skipped": skipped,
        "wrk_pinned_cpu": WRK_CPU if pin_wrk else None,
        "outpost_pinned_cpu": SERVER_CPU if pin_servers and args.proxy_workers == 1 else None,
        "squid_pinned_cpu": peer_cpu if "squid" in peers else None,
        "varnish_pinned_cpu": peer_cpu if "varnish" in peers else None,
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "wrk": wrk_version(wrk),
        "squid": peer_version("squid", peers["squid"]) if "squid" in peers else None,
        "varnish": peer_version("varnish", peers["varnish"]) if "varnish" in peers else None,
        "python": platform.python_version(),
    }
    found = problems(results)
    if args.json:
        print(json.dumps(to_json(config, results)))
    else:

        def pinned(name: str) -> str:
            pinned_cpu = config.get(f"{name.replace('-nolog', '')}_pinned_cpu")
            return "CPU 0" if pinned_cpu is not None else "not pinned"

        wrk_pin = f"CPU {WRK_CPU}" if pin_wrk else "not pinned"
        print(
            f"cache hits, GET /v1/payloads/{{sha256}}; wrk -t1 -c{args.connections} "
            f"-d{args.duration}s after {args.warmup}s warm-up (wrk: {wrk_pin}); "
            f"outpost proxy on {args.proxy_server}, {args.proxy_workers} worker(s) "
            f"({pinned('outpost')}); "
            + "".join(f"{config.get(name) or name} ({pinned(name)}); " for name in peers)
            + f"{os.cpu_count()} CPUs; "
            f"load average {load_before[0]:.2f} -> {load_after[0]:.2f}"
        )
        print(render_table(results))
        print(
            "MiB/s: wrk's Transfer/sec (headers included); cpu%, wrk%: CPU time of the "
            "server's processes and of wrk during the measurement, % of one core; origin "
            "requests during the measurements: "
            + ", ".join(
                f"{r.payload.label} {name} {m.origin_requests}"
                for r in results
                for name, m in r.runs.items()
            )
        )
    if found:
        print("benchmark: " + "; ".join(found), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
