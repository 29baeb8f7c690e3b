"""The peers Outpost is measured against, as configuration files: squid and nginx.

    prepare_squid(directory, port=…, parent_port=…, name=…)   -> squid.conf path
    prepare_nginx_static(directory, port=…, root=…)            -> nginx.conf path
    prepare_nginx_proxy_cache(directory, port=…, parent_port=…) -> nginx.conf path

Both run on 127.0.0.1 only, with memory caches, no access logs and every file of theirs in
`directory`. squid is an accelerator (reverse proxy) in front of one parent, the way a Frontier
squid hierarchy is chained (node squid → site squid → origin), with `collapsed_forwarding on`
as frontier-squid ships it. Run as root, squid drops to the `proxy` user (or `nobody`), so its
directory is made theirs.
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

__all__ = [
    "SQUID_SITE",
    "PeerMissing",
    "find_peer",
    "nginx_proxy_cache_config",
    "nginx_static_config",
    "prepare_nginx_proxy_cache",
    "prepare_nginx_static",
    "prepare_squid",
    "squid_config",
]

HOST = "127.0.0.1"
# Every squid builds its cache keys from this site name (accel, no-vhost), so a node squid and
# the site squid key an object alike whatever port the client reached them on.
SQUID_SITE = "outpost-origin"
_COMMON_PATHS = {
    "squid": "/usr/sbin/squid",
    "nginx": "/usr/sbin/nginx",
    "varnishd": "/usr/sbin/varnishd",
}
_PACKAGES = {"nginx": "nginx-light", "varnishd": "varnish"}


class PeerMissing(RuntimeError):
    """A peer program is not installed; the message says how to install it."""


def find_peer(program: str) -> str:
    """The path of `squid`, `nginx` or `varnishd` (Debian's packages), or PeerMissing."""
    found = shutil.which(program) or _COMMON_PATHS.get(program)
    if found and Path(found).exists():
        return found
    package = _PACKAGES.get(program, program)
    raise PeerMissing(f"{program} is not installed: apt-get install {package}")


def squid_config(
    directory: Path,
    *,
    port: int,
    parent_port: int | None,
    name: str,
    cache_mb: int = 512,
    object_mb: int = 64,
    collapsed_forwarding: bool = True,
    user: str | None = None,
) -> str:
    """An accelerator on 127.0.0.1:`port` in front of 127.0.0.1:`parent_port`, memory cache only;
    with `parent_port=None` a forward proxy instead, as a site squid is to Frontier clients,
    allowed to reach 127.0.0.1 only (frontier-squid's RESTRICT_DEST)."""
    if parent_port is None:
        route = [
            f"http_port {HOST}:{port}",
            f"acl restrict_dest dst {HOST}/32",
            "http_access deny !restrict_dest",
            "http_access allow all",
        ]
    else:
        route = [
            f"http_port {HOST}:{port} accel defaultsite={SQUID_SITE} no-vhost",
            f"cache_peer {HOST} parent {parent_port} 0 no-query originserver "
            f"forceddomain={SQUID_SITE} name=parent",
            "cache_peer_access parent allow all",
            "http_access allow all",
        ]
    lines = [
        *route,
        f"collapsed_forwarding {'on' if collapsed_forwarding else 'off'}",
        f"cache_mem {cache_mb} MB",
        f"maximum_object_size_in_memory {object_mb} MB",
        f"maximum_object_size {object_mb} MB",
        "# no cache_dir: memory cache only",
        "workers 1",
        "max_filedescriptors 16384",
        f"pid_filename {directory / 'squid.pid'}",
        "access_log none",
        "cache_store_log none",
        f"cache_log {directory / 'cache.log'}",
        f"coredump_dir {directory}",
        "shutdown_lifetime 1 seconds",
        f"visible_hostname {name}",
        "pinger_enable off",
        "netdb_filename none",
        "logfile_rotate 0",
    ]
    if user:
        lines.append(f"cache_effective_user {user}")
    return "\n".join(lines) + "\n"


def _unprivileged_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("proxy")
    except KeyError:
        return pwd.getpwnam("nobody")


def prepare_squid(
    directory: Path,
    *,
    port: int,
    parent_port: int | None,
    name: str = "squid",
    object_mb: int = 64,
    collapsed_forwarding: bool = True,
) -> Path:
    """Write `directory/squid.conf` (creating `directory`) and return its path."""
    directory.mkdir(parents=True)
    user = None
    if os.geteuid() == 0:
        account = _unprivileged_user()
        user = account.pw_name
        directory.parent.chmod(0o711)  # traversable, not listable
        os.chown(directory, account.pw_uid, account.pw_gid)
    conf = directory / "squid.conf"
    conf.write_text(
        squid_config(
            directory,
            port=port,
            parent_port=parent_port,
            name=name,
            object_mb=object_mb,
            collapsed_forwarding=collapsed_forwarding,
            user=user,
        )
    )
    conf.chmod(0o644)
    return conf


def _nginx_preamble(directory: Path, workers: int) -> str:
    """What both nginx peers share: the main context and the start of `http`, every file of
    nginx's in `directory`. Started as root, its workers stay root (private directories)."""
    temp = directory / "temp"
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""daemon off;
{user}worker_processes {workers};
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 16384; }}
worker_rlimit_nofile 32768;
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;"""


def nginx_static_config(directory: Path, *, port: int, root: Path, workers: int = 2) -> str:
    """nginx serving `root` as static files; a URL with a query string is the file
    `<path>/<query>` (`/v1/resolve/GT?run=500` → `root/v1/resolve/GT/run=500`). Started as
    root, its workers stay root: they read files under a private temporary directory."""
    return f"""{_nginx_preamble(directory, workers)}
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    server {{
        listen {HOST}:{port} backlog=4096;
        root {root};
        location / {{ try_files "$uri/$args" $uri =404; }}
    }}
}}
"""


def prepare_nginx_static(directory: Path, *, port: int, root: Path, workers: int = 2) -> Path:
    """Write `directory/nginx.conf` (creating `directory`) and return its path."""
    (directory / "temp").mkdir(parents=True)
    conf = directory / "nginx.conf"
    conf.write_text(nginx_static_config(directory, port=port, root=root, workers=workers))
    return conf


def nginx_proxy_cache_config(
    directory: Path, *, port: int, parent_port: int, workers: int = 1, cache_mb: int = 256
) -> str:
    """nginx as a caching reverse proxy in front of 127.0.0.1:`parent_port`: `proxy_cache` (its
    file cache, in `directory/cache`) with `proxy_cache_lock on`, so concurrent misses of one URL
    send one request upstream and the others wait for it (up to 60 s, then they would fetch
    themselves); keep-alive connections to the parent; `X-Cache-Status` on every answer."""
    return f"""{_nginx_preamble(directory, workers)}
    proxy_cache_path {directory / "cache"} levels=1:2 keys_zone=peer:16m max_size={cache_mb}m
                     inactive=10m use_temp_path=off;
    upstream parent {{
        server {HOST}:{parent_port};
        keepalive 256;
    }}
    server {{
        listen {HOST}:{port} backlog=4096;
        location / {{
            proxy_pass http://parent;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache peer;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 60s;
            proxy_cache_lock_age 60s;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}
}}
"""


def prepare_nginx_proxy_cache(
    directory: Path, *, port: int, parent_port: int, workers: int = 1, cache_mb: int = 256
) -> Path:
    """Write `directory/nginx.conf` (creating `directory` and its cache and temp directories)
    and return its path."""
    (directory / "temp").mkdir(parents=True)
    (directory / "cache").mkdir()
    conf = directory / "nginx.conf"
    conf.write_text(
        nginx_proxy_cache_config(
            directory, port=port, parent_port=parent_port, workers=workers, cache_mb=cache_mb
        )
    )
    return conf
