"""The deployment files agree with the code they deploy.

Kubernetes manifests (deploy/kubernetes), systemd units (deploy/systemd) and example settings
(deploy/examples) are checked against the real CLI parser, the real settings loader and the real
token loader: every `outpost` command line parses and builds valid settings (with the TOML files
it would read and the environment it would get), ports agree from settings to containers,
probes and Services, every `OUTPOST_*` variable is one the code reads, and every file is where
the kustomizations and units say it is. docs/operations.md is held to the same CLI, routes and
metric names. Nothing here starts a server or touches a network: the serve functions are
replaced by stubs that record the settings they were given.
"""

from __future__ import annotations

import argparse
import base64
import copy
import dataclasses
import functools
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import generate_latest

from origin.auth import ROLES, TokenBook
from origin.metrics import OriginMetrics
from origin.settings import OriginSettings
from outpost.cli import _parser
from outpost.commands import db as db_command
from outpost.commands import serve
from outpost.config import SettingsError, load_settings
from proxy.core.epochs import EPOCH_HEADER
from proxy.metrics import ProxyMetrics
from proxy.responses import STALE_WARNING
from proxy.settings import ProxySettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
EXAMPLES = DEPLOY / "examples"
OPERATIONS = ROOT / "docs" / "operations.md"

HEALTHZ = "/_outpost/healthz"
READYZ = "/_outpost/readyz"  # the origin's readiness: it reads the database
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet", "Job")
PROXY_INSTANCES = ("node", "site", "central")
WILDCARD_HOSTS = ("0.0.0.0", "::", "", "127.0.0.1", "localhost")
# Stand-ins for values the cluster fills in through the downward API.
FIELD_VALUES = {"spec.nodeName": "farm-node-01", "status.hostIP": "10.1.2.3"}

Settings = OriginSettings | ProxySettings


def allowed_variables() -> set[str]:
    names = {"OUTPOST_RUN_CONTROL_TOKEN", "OUTPOST_ORIGIN_CONFIG", "OUTPOST_PROXY_CONFIG"}
    names |= {"OUTPOST_SERVERS", "OUTPOST_PROXIES"}  # the farm-node client's endpoint lists
    for section, cls in (("ORIGIN", OriginSettings), ("PROXY", ProxySettings)):
        names |= {f"OUTPOST_{section}_{f.name.upper()}" for f in dataclasses.fields(cls)}
    return names


# --- Kubernetes: files, documents, kustomizations ----------------------------------------------


def yaml_files() -> list[Path]:
    return sorted([*KUBERNETES.rglob("*.yaml"), *KUBERNETES.rglob("*.yml")])


@functools.cache
def _documents(path: Path) -> tuple[Any, ...]:
    return tuple(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)


def documents(path: Path) -> list[dict[str, Any]]:
    """The documents of a YAML file (parsed once; callers get fresh copies to mutate)."""
    return copy.deepcopy(list(_documents(path)))


def kustomizations() -> list[Path]:
    return [p for p in yaml_files() if p.name in ("kustomization.yaml", "kustomization.yml")]


def kustomization_references(path: Path) -> tuple[list[Path], list[Path]]:
    """(resources, patches) named by one kustomization, as paths."""
    document = documents(path)[0]
    resources = [path.parent / r for r in document.get("resources", [])]
    patches = [path.parent / p["path"] for p in document.get("patches", []) if "path" in p]
    patches += [path.parent / p for p in document.get("patchesStrategicMerge", [])]
    return resources, patches


def resource_files() -> list[Path]:
    files = []
    for kustomization in kustomizations():
        resources, _ = kustomization_references(kustomization)
        files += [r for r in resources if r.is_file()]
    return sorted(set(files))


def resources() -> list[dict[str, Any]]:
    """Every resource of the deployment (patches left out)."""
    return [doc for path in resource_files() for doc in documents(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in resources() if doc["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    assert found, f"no {kind} named {name!r} in the manifests"
    return found[0]


def secret_value(name: str, key: str) -> str:
    secret = named("Secret", name)
    if key in secret.get("stringData", {}):
        return str(secret["stringData"][key])
    assert key in secret.get("data", {}), f"Secret {name} has no key {key!r}"
    return base64.b64decode(secret["data"][key]).decode()


def config_map_value(name: str, key: str) -> str:
    data = named("ConfigMap", name).get("data", {})
    assert key in data, f"ConfigMap {name} has no key {key!r}"
    return str(data[key])


# --- Kubernetes: pods and containers -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Container:
    workload: dict[str, Any]
    pod: dict[str, Any]
    spec: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.workload['kind']}/{self.workload['metadata']['name']}:{self.spec['name']}"

    def environment(self) -> dict[str, str]:
        """The container's variables, with Secret values and downward-API stand-ins filled in."""
        environ: dict[str, str] = {}
        for variable in self.spec.get("env", []):
            source = variable.get("valueFrom", {})
            if "value" in variable:
                environ[variable["name"]] = str(variable["value"])
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                environ[variable["name"]] = secret_value(ref["name"], ref["key"])
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                environ[variable["name"]] = config_map_value(ref["name"], ref["key"])
            elif "fieldRef" in source:
                environ[variable["name"]] = FIELD_VALUES[source["fieldRef"]["fieldPath"]]
            else:
                raise AssertionError(f"{self.label}: env {variable['name']} has no usable value")
        return environ

    def argv(self) -> list[str] | None:
        """The `outpost` arguments of this container, or None if it does not run outpost."""
        command = list(self.spec.get("command", []))
        args = [str(a) for a in self.spec.get("args", [])]
        if command:
            return [*map(str, command[1:]), *args] if Path(command[0]).name == "outpost" else None
        return args if self.spec.get("image", "").startswith("outpost") else None

    def volumes(self) -> dict[str, dict[str, Any]]:
        found = {v["name"]: v for v in self.pod.get("volumes", [])}
        for claim in self.workload["spec"].get("volumeClaimTemplates", []):
            found[claim["metadata"]["name"]] = {"persistentVolumeClaim": claim}
        return found

    def files(self) -> dict[str, str]:
        """Path in the container → content, for every file mounted from a ConfigMap or Secret."""
        volumes = self.volumes()
        mounted: dict[str, str] = {}
        for mount in self.spec.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                data = named("ConfigMap", volume["configMap"]["name"]).get("data", {})
            elif "secret" in volume:
                secret = volume["secret"]["secretName"]
                data = {k: secret_value(secret, k) for k in named("Secret", secret)["stringData"]}
            else:
                continue
            if "subPath" in mount:
                mounted[mount["mountPath"]] = data[mount["subPath"]]
            else:
                for key, content in data.items():
                    mounted[f"{mount['mountPath'].rstrip('/')}/{key}"] = content
        return mounted

    def writable_paths(self) -> list[str]:
        volumes = self.volumes()
        return [
            m["mountPath"]
            for m in self.spec.get("volumeMounts", [])
            if not m.get("readOnly") and not {"configMap", "secret"} & set(volumes[m["name"]])
        ]

    def port_number(self, port: int | str) -> int:
        if isinstance(port, int):
            return port
        for declared in self.spec.get("ports", []):
            if declared.get("name") == port:
                return int(declared["containerPort"])
        raise AssertionError(f"{self.label}: no container port named {port!r}")


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers() -> list[Container]:
    found = []
    for workload in resources():
        if workload["kind"] in WORKLOADS:
            pod = pod_spec(workload)
            for spec in [*pod.get("initContainers", []), *pod.get("containers", [])]:
                found.append(Container(workload, pod, spec))
    return found


def outpost_containers() -> list[Container]:
    return [c for c in containers() if c.argv() is not None]


_K8S_VARIABLE = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(argv: list[str], environ: dict[str, str], where: str) -> list[str]:
    """Kubernetes `$(VAR)` expansion; a reference to an undefined variable fails the test."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in environ, f"{where}: $({name}) is not defined in the container's env"
        return environ[name]

    return [_K8S_VARIABLE.sub(value, arg) for arg in argv]


# --- the real CLI, with the servers replaced by stubs ------------------------------------------


def parse(argv: list[str], where: str) -> argparse.Namespace:
    try:
        return _parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{where}: `outpost {shlex.join(argv)}` is rejected by the CLI ({exc})")


@pytest.fixture
def build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Settings | None]:
    """Run an `outpost` command line up to the point where it would serve; its settings.

    Files it names are taken from `files` (path → content) and written to a temporary
    directory; the environment is exactly `environ`. Returns None for commands that do not
    serve (`db init`), after checking they build valid origin settings.
    """
    seen: list[Any] = []
    migrated: list[str] = []

    def record(app: Any, settings: Any, *args: Any, **kwargs: Any) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(serve, "_serve", record)
    monkeypatch.setattr(serve, "_serve_granian", record)
    monkeypatch.setattr(serve, "_export", lambda settings, section: None)
    monkeypatch.setattr(serve, "fill_sample", lambda *args, **kwargs: 0)
    monkeypatch.setattr("origin.db.migrate", migrated.append)
    monkeypatch.setattr("origin.app.create_app", lambda settings, **kwargs: settings)
    monkeypatch.setattr("proxy.app.create_app", lambda settings, **kwargs: settings)
    counter = iter(range(1_000_000))

    def run(
        argv: list[str], *, files: dict[str, str], environ: dict[str, str], where: str
    ) -> Settings | None:
        for name in [n for n in os.environ if n.startswith("OUTPOST_")]:
            monkeypatch.delenv(name)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        local = []
        for arg in argv:
            if arg in files:
                written = tmp_path / f"{next(counter)}-{Path(arg).name}"
                written.write_text(files[arg])
                local.append(str(written))
            else:
                local.append(arg)
        args = parse(local, where)
        seen.clear()
        try:
            if args.command == "db":
                assert isinstance(db_command.origin_settings(args), OriginSettings)
                return None
            assert args.handler(args) == 0, f"{where}: the command did not start"
        except SettingsError as exc:
            pytest.fail(f"{where}: `outpost {shlex.join(argv)}` stops at start-up: {exc}")
        assert len(seen) == 1, f"{where}: expected one server to start"
        found: Settings = seen[0]
        return found

    return run


def container_settings(
    container: Container, build: Callable[..., Settings | None]
) -> Settings | None:
    """The settings a container's `outpost` command line starts with, in its own environment."""
    environ = container.environment()
    argv = expand(container.argv() or [], environ, container.label)
    outpost_variables = {k: v for k, v in environ.items() if k.startswith("OUTPOST_")}
    return build(argv, files=container.files(), environ=outpost_variables, where=container.label)


# --- Kubernetes ---------------------------------------------------------------------------------


def test_there_are_manifests_to_check() -> None:
    assert kustomizations() and resource_files() and outpost_containers()


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(KUBERNETES)))
def test_every_yaml_file_parses_and_every_resource_is_named(path: Path) -> None:
    docs = documents(path)
    assert docs, f"{path} holds no document"
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: a document is not a mapping"
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: apiVersion and kind"
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name"), f"{path}: a {doc['kind']} has no name"


def test_kustomizations_reference_only_existing_files_and_every_file_is_referenced() -> None:
    referenced: set[Path] = set()
    for kustomization in kustomizations():
        resources_, patches = kustomization_references(kustomization)
        for path in [*resources_, *patches]:
            assert path.exists(), f"{kustomization} names {path}, which does not exist"
            if path.is_dir():
                assert (path / "kustomization.yaml").is_file(), f"{path} is no kustomization"
                referenced.add((path / "kustomization.yaml").resolve())
            else:
                referenced.add(path.resolve())
    top = (KUBERNETES / "kustomization.yaml").resolve()
    unreferenced = [p for p in yaml_files() if p.resolve() not in referenced | {top}]
    standalone = [p for p in unreferenced if p.name == "kustomization.yaml"]  # overlays
    assert [p for p in unreferenced if p not in standalone] == []


KUSTOMIZE_ENTRIES = {"default": KUBERNETES, "external-db": KUBERNETES / "external-db"}


def test_kustomize_renders_each_variant() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    runs = {
        name: subprocess.Popen(
            [kubectl, "kustomize", str(directory)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, directory in KUSTOMIZE_ENTRIES.items()
    }
    for name, run in runs.items():  # both render at once: kubectl starts slowly
        stdout, stderr = run.communicate(timeout=30)
        assert run.returncode == 0, f"{name}: {stderr}"
        docs = [d for d in yaml.safe_load_all(stdout) if d]
        kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
        assert {("DaemonSet", "outpost-node-proxy"), ("Deployment", "outpost-site")} <= kinds
        namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
        assert namespaces == {"outpost"}, name
        has_postgres = ("StatefulSet", "outpost-postgres") in kinds
        database = next(
            d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "outpost-db"
        )
        host = urlsplit(database["stringData"]["url"]).hostname
        assert has_postgres == (host == "outpost-postgres"), f"{name}: database host {host}"
        assert has_postgres == (name == "default"), name


def test_resource_names_are_unique_per_kind() -> None:
    keys = [(doc["kind"], doc["metadata"]["name"]) for doc in resources()]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_every_env_reference_and_volume_names_an_existing_secret_or_config_map() -> None:
    for container in containers():
        container.environment()  # raises on a missing Secret, ConfigMap or key
        container.files()
        volumes = container.volumes()
        for mount in container.spec.get("volumeMounts", []):
            assert mount["name"] in volumes, f"{container.label}: no volume {mount['name']}"
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in container.pod.get("volumes", [])
            if "persistentVolumeClaim" in v
        }
        for claim in claims:
            named("PersistentVolumeClaim", claim)


@pytest.mark.parametrize("container", outpost_containers(), ids=lambda c: c.label)
def test_every_outpost_command_line_parses_and_builds_valid_settings(
    container: Container, build: Callable[..., Settings | None]
) -> None:
    argv = container.argv() or []
    if "--config" in argv:
        config = argv[argv.index("--config") + 1]
        assert config in container.files(), f"{container.label}: --config {config} not mounted"
    container_settings(container, build)


@pytest.mark.parametrize(
    "container",
    [c for c in outpost_containers() if (c.argv() or [""])[0] in ("origin", "proxy")],
    ids=lambda c: c.label,
)
def test_servers_listen_where_their_ports_probes_and_files_say(
    container: Container, build: Callable[..., Settings | None]
) -> None:
    settings = container_settings(container, build)
    assert settings is not None
    assert settings.host in ("0.0.0.0", "::"), f"{container.label}: probes need all interfaces"
    declared = [p["containerPort"] for p in container.spec.get("ports", [])]
    assert settings.port in declared, f"{container.label}: port {settings.port} not declared"
    for port in container.spec.get("ports", []):
        if container.pod.get("hostNetwork"):
            assert port.get("hostPort", port["containerPort"]) == port["containerPort"]
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = container.spec.get(kind)
        if probe is None:
            assert kind == "startupProbe", f"{container.label} has no {kind}"
            continue
        ready = kind == "readinessProbe" and isinstance(settings, OriginSettings)
        path = READYZ if ready else HEALTHZ
        assert probe["httpGet"]["path"] == path, f"{container.label}: {kind} path"
        assert container.port_number(probe["httpGet"]["port"]) == settings.port, kind
    if isinstance(settings, OriginSettings) and settings.tokens_file is not None:
        tokens = container.files().get(str(settings.tokens_file))
        assert tokens is not None, f"{container.label}: tokens_file is not a mounted file"
    if isinstance(settings, ProxySettings) and settings.state_dir is not None:
        state = str(settings.state_dir)
        writable = container.writable_paths()
        assert any(state == p or state.startswith(p.rstrip("/") + "/") for p in writable), (
            f"{container.label}: state_dir {state} is not on a writable volume"
        )


def test_services_select_pods_and_target_their_container_ports() -> None:
    workloads = [w for w in resources() if w["kind"] in WORKLOADS]
    for service in of_kind("Service"):
        selector = service["spec"]["selector"]
        matched = [
            w
            for w in workloads
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert matched, f"Service {service['metadata']['name']} selects no pod"
        for workload in matched:
            declared = [p for c in pod_spec(workload)["containers"] for p in c.get("ports", [])]
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                key = "containerPort" if isinstance(target, int) else "name"
                assert any(p.get(key) == target for p in declared), (
                    f"Service {service['metadata']['name']}: targetPort {target!r} is no "
                    f"container port of {workload['kind']}/{workload['metadata']['name']}"
                )


def test_workload_selectors_match_their_pod_labels() -> None:
    for workload in resources():
        if workload["kind"] in WORKLOADS and workload["kind"] != "Job":
            labels = workload["spec"]["template"]["metadata"]["labels"]
            assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()


def service_ports() -> dict[str, set[int]]:
    return {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]} for s in of_kind("Service")
    }


def test_urls_between_tiers_name_services_and_their_ports(
    build: Callable[..., Settings | None],
) -> None:
    ports = service_ports()
    urls: list[tuple[str, str]] = []
    for container in outpost_containers():
        settings = container_settings(container, build)
        if isinstance(settings, ProxySettings):
            urls += [(container.label, u) for u in settings.upstreams]
            urls += [(container.label, u) for u in (settings.parent, settings.redis) if u]
        if isinstance(settings, OriginSettings):
            urls.append((container.label, settings.db))
    assert urls
    for where, url in urls:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
        if host in ports:
            assert port in ports[host], f"{where}: {url}: Service {host} has ports {ports[host]}"
        else:
            assert "." in host, f"{where}: {url} names no Service of the manifests"


def test_redis_requires_the_password_the_site_proxies_connect_with(
    build: Callable[..., Settings | None],
) -> None:
    """The shared tier is not open to the cluster: Redis runs with `--requirepass` from Secret
    outpost-redis, and every proxy that uses it has that password in its `--redis` URL."""
    password = secret_value("outpost-redis", "password")
    redis = [c for c in containers() if c.spec["name"] == "redis"]
    assert redis
    for container in redis:
        argv = expand(container.spec["args"], container.environment(), container.label)
        assert argv[argv.index("--requirepass") + 1] == password, container.label
    users = 0
    for container in outpost_containers():
        settings = container_settings(container, build)
        if isinstance(settings, ProxySettings) and settings.redis:
            users += 1
            assert urlsplit(settings.redis).password == password, container.label
    assert users


def test_a_child_proxy_advertises_an_address_its_parent_can_reach_and_its_own_name(
    build: Callable[..., Settings | None],
) -> None:
    children = 0
    for container in outpost_containers():
        settings = container_settings(container, build)
        if isinstance(settings, ProxySettings) and settings.parent:
            children += 1
            check_child(settings, container.label)
    assert children


def check_child(settings: ProxySettings, where: str) -> None:
    assert settings.advertise_url, f"{where}: a child needs advertise_url"
    advertised = urlsplit(settings.advertise_url)
    assert advertised.hostname not in WILDCARD_HOSTS, f"{where}: {settings.advertise_url}"
    assert advertised.port == settings.port, f"{where}: advertise_url port != port"
    assert settings.name != ProxySettings.name, f"{where}: every child needs its own name"
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}", settings.name), settings.name
    assert settings.register_token, f"{where}: registering with the parent needs its token"
    assert settings.tree_public_key, f"{where}: a child checks its parent's commands"
    assert not settings.run_control_token, f"{where}: run control's token stays at the top"
    if settings.name.startswith("farm"):  # a node proxy has no children to sign for
        assert not settings.tree_signing_key, f"{where}: a leaf holds no signing key"


def test_proxies_get_their_credentials_from_secrets_and_leaves_none_that_command() -> None:
    """Node proxies (a parent, no children): the registration token and the public key only;
    the site proxy: run control's token and the tree's signing key."""
    for container in outpost_containers():
        argv = container.argv() or [""]
        if argv[0] != "proxy":
            continue
        refs = {
            v["name"]: v.get("valueFrom", {}).get("secretKeyRef")
            for v in container.spec.get("env", [])
        }
        assert refs.get("OUTPOST_PROXY_REGISTER_TOKEN"), container.label
        if "--parent" in argv:
            assert refs.get("OUTPOST_PROXY_TREE_PUBLIC_KEY"), container.label
            assert "OUTPOST_RUN_CONTROL_TOKEN" not in refs, container.label
            assert "OUTPOST_PROXY_TREE_SIGNING_KEY" not in refs, container.label
        else:
            assert refs.get("OUTPOST_RUN_CONTROL_TOKEN"), container.label
            assert refs.get("OUTPOST_PROXY_TREE_SIGNING_KEY"), container.label


def test_the_origin_database_url_comes_from_secret_outpost_db() -> None:
    origins = [c for c in outpost_containers() if (c.argv() or [""])[0] in ("origin", "db")]
    assert origins
    for container in origins:
        env = {v["name"]: v.get("valueFrom", {}) for v in container.spec.get("env", [])}
        assert env["OUTPOST_ORIGIN_DB"]["secretKeyRef"] == {"name": "outpost-db", "key": "url"}


def test_a_migration_runs_before_the_origin() -> None:
    commands = [c.argv() or [] for c in outpost_containers()]
    assert any(argv[:2] == ["db", "init"] and "--db" in argv for argv in commands)


def test_every_outpost_container_sets_resources() -> None:
    for container in containers():
        resources_ = container.spec.get("resources", {})
        assert resources_.get("requests", {}).get("memory"), container.label
        assert resources_.get("limits", {}).get("memory"), container.label


def test_node_proxies_run_on_the_host_network_with_cluster_dns() -> None:
    daemonsets = of_kind("DaemonSet")
    assert daemonsets
    for daemonset in daemonsets:
        pod = pod_spec(daemonset)
        assert pod["hostNetwork"] is True
        assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
        env = {v["name"]: v for c in pod["containers"] for v in c.get("env", [])}
        paths = {
            v["valueFrom"]["fieldRef"]["fieldPath"]
            for v in env.values()
            if "valueFrom" in v and "fieldRef" in v["valueFrom"]
        }
        assert {"spec.nodeName", "status.hostIP"} <= paths


# --- settings in TOML: examples, ConfigMaps, Secrets --------------------------------------------


def section_of(filename: str) -> str:
    return "origin" if filename.startswith("origin") else "proxy"


def check_settings_toml(text: str, section: str, where: str, tmp_path: Path) -> None:
    document = tomllib.loads(text)
    assert list(document) == [section], f"{where}: expected only a [{section}] table"
    cls = OriginSettings if section == "origin" else ProxySettings
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(document[section]) - fields
    assert not unknown, f"{where}: {sorted(unknown)} are not {cls.__name__} fields"
    path = tmp_path / "settings.toml"
    path.write_text(text)
    # Every value converts and validates; a proxy file may leave the upstreams to the CLI.
    overrides: dict[str, Any] = {}
    if section == "proxy" and "upstreams" not in document[section]:
        overrides["upstreams"] = ("http://upstream.example.org:8080",)
    environ = {}
    if section == "proxy" and "redis" in document[section]:  # a secret: never in the file
        environ["OUTPOST_PROXY_SHARED_TIER_KEY"] = "from-outpost.env-0123456789"
    load_settings(cls, section, config_file=path, environ=environ, overrides=overrides)


def example_tomls() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*.toml") if p.name != "tokens.toml")


def test_the_examples_are_all_there() -> None:
    names = {p.name for p in EXAMPLES.iterdir()}
    expected = {f"proxy-{i}.toml" for i in PROXY_INSTANCES}
    assert {"origin.toml", "tokens.toml", "outpost.env", *expected} <= names


@pytest.mark.parametrize("path", example_tomls(), ids=lambda p: p.name)
def test_example_settings_parse_and_name_only_real_settings(path: Path, tmp_path: Path) -> None:
    check_settings_toml(path.read_text(), section_of(path.name), str(path), tmp_path)


def config_map_tomls() -> list[tuple[str, str]]:
    return [
        (f"ConfigMap/{cm['metadata']['name']}:{key}", str(value))
        for cm in of_kind("ConfigMap")
        for key, value in cm.get("data", {}).items()
        if key.endswith(".toml")
    ]


@pytest.mark.parametrize("where,text", config_map_tomls(), ids=[w for w, _ in config_map_tomls()])
def test_config_map_settings_parse_and_name_only_real_settings(
    where: str, text: str, tmp_path: Path
) -> None:
    check_settings_toml(text, section_of(where.rsplit(":", 1)[1]), where, tmp_path)


def token_files() -> list[tuple[str, str]]:
    found = [("deploy/examples/tokens.toml", (EXAMPLES / "tokens.toml").read_text())]
    for secret in of_kind("Secret"):
        for key, value in secret.get("stringData", {}).items():
            if key.endswith(".toml"):
                found.append((f"Secret/{secret['metadata']['name']}:{key}", str(value)))
    return found


@pytest.mark.parametrize("where,text", token_files(), ids=[w for w, _ in token_files()])
def test_token_files_load_with_the_origins_token_book(
    where: str, text: str, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    book = TokenBook.from_file(path)
    entries = tomllib.loads(text)["token"]
    assert {"writer", "admin"} <= {e["role"] for e in entries} <= set(ROLES), where
    for entry in entries:
        assert re.fullmatch(r"[0-9a-f]{64}", entry["token_sha256"]), f"{where}: {entry['name']}"
        assert "token" not in entry, f"{where}: plain-text tokens do not belong in deployment"
    # The comments say which placeholder each digest is of; they must be right.
    placeholders = re.findall(r'"(CHANGE-ME-[a-z-]+)"', text)
    names = {book.authenticate(f"Bearer {p}").name for p in placeholders}
    assert names == {e["name"] for e in entries}, where


# --- systemd ------------------------------------------------------------------------------------


def unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) of a unit file, in order; continuation lines joined."""
    entries, section, pending = [], "", ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_values(path: Path, key: str, instance: str = "") -> list[str]:
    return [
        v.replace("%i", instance).replace("%%", "%") for _, k, v in unit_entries(path) if k == key
    ]


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"')
    return values


def unit_ids() -> list[str]:
    return [f"{path.name}:{instance}" if instance else path.name for path, instance in units()]


def units() -> list[tuple[Path, str]]:
    """(unit file, instance) pairs: a template once per proxy role it is documented for."""
    found = []
    for path in sorted(SYSTEMD.glob("*.service")):
        if path.name.endswith("@.service"):
            found += [(path, instance) for instance in PROXY_INSTANCES]
        else:
            found.append((path, ""))
    return found


def example_for(path: str) -> Path:
    """The example shipped for a file the units read under /etc/outpost."""
    assert path.startswith("/etc/outpost/"), path
    return EXAMPLES / path.removeprefix("/etc/outpost/")


def test_there_are_units_for_the_origin_and_the_proxies() -> None:
    names = {p.name for p in SYSTEMD.glob("*.service")}
    assert {"outpost-origin.service", "outpost-proxy@.service"} <= names


@pytest.mark.parametrize("path,instance", units(), ids=unit_ids())
def test_unit_command_lines_parse_and_build_valid_settings(
    path: Path, instance: str, build: Callable[..., Settings | None]
) -> None:
    environ: dict[str, str] = {}
    for file in unit_values(path, "EnvironmentFile", instance):
        optional, name = file.startswith("-"), file.removeprefix("-")
        example = example_for(name)
        assert optional or example.is_file(), f"{path.name}: {name} has no example"
        if example.is_file():
            environ |= env_file(example)
    commands = [*unit_values(path, "ExecStartPre", instance)]
    commands += unit_values(path, "ExecStart", instance)
    assert unit_values(path, "ExecStart", instance), f"{path.name}: no ExecStart"
    for line in commands:
        argv = shlex.split(line.lstrip("-@:+!"))
        assert Path(argv[0]).name == "outpost", f"{path.name}: {argv[0]} is not outpost"
        files = {a: example_for(a).read_text() for a in argv if a.startswith("/etc/outpost/")}
        where = f"{path.name} ({instance or 'origin'})"
        settings = build(argv[1:], files=files, environ=environ, where=where)
        if isinstance(settings, ProxySettings):
            assert settings.host == "0.0.0.0" or settings.advertise_url, where
            if settings.parent:
                check_child(settings, where)
            if settings.state_dir is not None:
                writable = unit_values(path, "ReadWritePaths", instance)
                state = [f"/var/lib/{d}" for d in unit_values(path, "StateDirectory", instance)]
                assert str(settings.state_dir) in {*writable, *state}, where


@pytest.mark.parametrize("path", sorted(SYSTEMD.glob("*.service")), ids=lambda p: p.name)
def test_units_are_hardened_and_restart_on_failure(path: Path) -> None:
    settings = {k: v for _, k, v in unit_entries(path)}
    assert settings.get("Restart") == "on-failure"
    assert settings.get("NoNewPrivileges") == "yes"
    assert settings.get("ProtectSystem") == "strict"
    assert settings.get("PrivateTmp") == "yes"
    assert settings.get("DynamicUser") == "yes" or settings.get("User"), path.name
    assert "-/etc/outpost/outpost.env" in unit_values(path, "EnvironmentFile")
    writable = unit_values(path, "ReadWritePaths", "x")
    assert writable and all(p.startswith("/var/lib/outpost") for p in writable)


# --- OUTPOST_* variables everywhere -------------------------------------------------------------

_VARIABLE = re.compile(r"\bOUTPOST_[A-Z0-9_]+")


def deployment_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


@pytest.mark.parametrize("path", deployment_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_outpost_variable_named_in_deployment_files_is_read_by_the_code(path: Path) -> None:
    named_here = {m for m in _VARIABLE.findall(path.read_text()) if not m.endswith("_")}
    unknown = named_here - allowed_variables()
    assert not unknown, f"{path}: {sorted(unknown)} are read by nothing"


# --- docs/operations.md -------------------------------------------------------------------------


def doc_command_lines() -> Iterator[str]:
    """Every `outpost …` line in the shell code blocks of docs/operations.md (continuations
    joined)."""
    in_block, shell, pending = False, False, ""
    for raw in OPERATIONS.read_text().splitlines():
        if raw.lstrip().startswith("```"):
            in_block, pending = not in_block, ""
            shell = raw.strip().removeprefix("```") in ("", "sh", "bash", "console", "shell")
            continue
        if not in_block or not shell:  # ```text, ```toml, …: no commands to run
            continue
        line = pending + raw.split(" #")[0].strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        words = shlex.split(line) if line else []
        for index, word in enumerate(words):
            if word in ("|", "||", "&&", ";", ">", "2>"):
                words = words[:index]
                break
        while words and ("=" in words[0] or words[0] in ("exec", "sudo", "--")):
            words = words[1:]  # VAR=value prefixes, `kubectl exec … --`
        if words and words[0] == "kubectl":
            words = words[words.index("--") + 1 :] if "--" in words else []
        if words and Path(words[0]).name == "outpost":
            yield shlex.join(words[1:])


def test_operations_guide_exists() -> None:
    assert OPERATIONS.is_file()
    assert list(doc_command_lines())


@pytest.mark.parametrize("line", list(doc_command_lines()) if OPERATIONS.is_file() else [])
def test_every_command_in_the_operations_guide_parses(line: str) -> None:
    parse(shlex.split(line), f"docs/operations.md: outpost {line}")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_commands_and_options_named_in_the_guides_prose_exist() -> None:
    spans = re.findall(r"`outpost ([^`]+)`", OPERATIONS.read_text())
    assert spans
    commands = subcommands(_parser())
    for span in spans:
        words = span.split()
        assert words[0] in commands, f"docs/operations.md: `outpost {span}`"
        command = commands[words[0]]
        if subcommands(command):
            command = subcommands(command)[words[1]]
        options = set(command._option_string_actions)
        for word in words:
            if word.startswith("--"):
                assert word in options, f"docs/operations.md: `outpost {span}`: {word}"


def routes() -> set[str]:
    source = (ROOT / "proxy" / "admin.py").read_text() + (ROOT / "origin" / "app.py").read_text()
    return set(re.findall(r'"(/_outpost/[a-z]+)"', source))


def metric_names() -> set[str]:
    text = generate_latest(ProxyMetrics().registry) + generate_latest(OriginMetrics().registry)
    families = set(re.findall(r"^# TYPE (\S+) ", text.decode(), re.MULTILINE))
    suffixes = ("", "_total", "_bucket", "_sum", "_count")
    return {family + suffix for family in families for suffix in suffixes}


def test_admin_paths_and_metrics_named_in_the_guide_and_manifests_exist() -> None:
    texts = [OPERATIONS.read_text(), *(p.read_text() for p in deployment_files())]
    text = "\n".join(texts)
    assert set(re.findall(r"/_outpost/[a-z]+", text)) <= routes()
    mentioned = set(re.findall(r"\boutpost_(?:proxy|origin)_[a-z_]+", text))
    assert mentioned, "the guide names no metric"
    assert mentioned <= metric_names(), sorted(mentioned - metric_names())


def test_headers_quoted_in_the_guide_are_the_ones_the_proxy_sends() -> None:
    text = OPERATIONS.read_text()
    assert f"Warning: {STALE_WARNING[1].decode()}" in text
    assert EPOCH_HEADER.decode() == "outpost-epoch" and "Outpost-Epoch" in text
