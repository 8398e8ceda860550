"""Images as host programs: what a container of a given image runs here.

Rules:
- meshgate pulls no image. A container runs host programs (Debian's or PyPI's, installed by
  `make deps`) in its sandbox; this table says, for each well-known image, which program it
  is, its default ENTRYPOINT and CMD, and the few files of the image that program needs (its
  layer: log directories, default config, the default page), made fresh for each run of a
  container as its writable layer would be.
- A reference is normalised as a container runtime names it: registry (`docker.io`, a
  first part with a dot or a port, `localhost`) and the `library/` of official images
  dropped, then tag and digest: `docker.io/library/nginx:1.25` is `nginx`.
- Kubernetes' rules for the argv: `command` replaces ENTRYPOINT (and the image's CMD is not
  used), `args` replaces CMD; an empty list counts as not given.
- More images are mapped in `$MESHGATE_HOME/images.yaml` (read at each container start, so
  an edit is picked up by the next retry): an entry gives `entrypoint`/`cmd`, or `like` a
  built-in image to run as it (its program and layer). A user entry overrides a built-in.
  A broken file is reported (file, field, reason) in the message of every image it would
  have to map; the built-in table keeps working.
- An image with no mapping, or whose program is not installed, cannot run: `ImageError`,
  whose message names the image and how to map it (the kubelet's ErrImagePull).
- The image's USER, WORKDIR and ENV are not modelled: a container runs as root in `/` unless
  its securityContext and workingDir say otherwise (as meshgate always did).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

USER_FILE = "images.yaml"
_REGISTRY = re.compile(r"[.:]|^localhost$")
_REFERENCE = re.compile(r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*")


class ImageError(Exception):
    """The container cannot run this image here (the kubelet's ErrImagePull)."""


@dataclass(frozen=True)
class LayerDir:
    """A directory of the image, made fresh (owner, mode) for each run of a container and
    bound writable at `path`: `files` (name -> text), `links` (name -> target) and `copies`
    (name -> a host file copied in, when the host has it). Names may hold `/`."""

    path: str
    owner: str = "root"
    mode: int = 0o755
    files: tuple[tuple[str, str], ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    copies: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Image:
    name: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    # (host path, where it comes from): each must be installed for the image to run.
    programs: tuple[tuple[str, str], ...] = ()
    layer: tuple[LayerDir, ...] = ()
    source: str = "built-in"


def normalise(ref: str) -> str:
    """The repository an image reference names, without registry, `library/`, tag, digest."""
    name = ref.strip().split("@", 1)[0]
    parts = name.split("/")
    if len(parts) > 1 and _REGISTRY.search(parts[0]):
        parts = parts[1:]
    last = parts[-1].split(":", 1)[0]
    parts[-1] = last
    if len(parts) == 2 and parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts).lower()


def argv(image: Image, command: Sequence[str] | None, args: Sequence[str] | None) -> list[str]:
    """What a container runs: Kubernetes' rule for command/args over ENTRYPOINT/CMD."""
    if command:
        return [*command, *(args or [])]
    return [*image.entrypoint, *(args if args else image.cmd)]


# --- the built-in table ------------------------------------------------------------------

_CURL_ENTRY = (
    # curlimages/curl's entrypoint: arguments that start with "-" are curl's.
    "/bin/sh",
    "-c",
    'if [ "${1#-}" != "$1" ]; then set -- curl "$@"; fi; exec "$@"',
    "/entrypoint.sh",
)

_NGINX_CONF = """\
user www-data;
worker_processes auto;
error_log /var/log/nginx/error.log notice;
pid /run/nginx.pid;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    sendfile on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
"""

_NGINX_DEFAULT_SITE = """\
server {
    listen 80;
    server_name localhost;

    location / {
        root /usr/share/nginx/html;
        index index.html index.htm;
    }

    error_page 500 502 503 504 /50x.html;
    location = /50x.html {
        root /usr/share/nginx/html;
    }
}
"""

_NGINX_INDEX = """\
<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, nginx is running in a meshgate pod (the image's default page).</p>
</body>
</html>
"""

_NGINX_50X = """\
<!DOCTYPE html>
<html>
<head><title>Error</title></head>
<body>
<h1>An error occurred.</h1>
<p>The page you are looking for is currently unavailable.</p>
</body>
</html>
"""

_NGINX = Image(
    name="nginx",
    cmd=("nginx", "-g", "daemon off;"),
    programs=(("/usr/sbin/nginx", "Debian's nginx"),),
    layer=(
        LayerDir(
            "/etc/nginx",
            files=(("nginx.conf", _NGINX_CONF), ("conf.d/default.conf", _NGINX_DEFAULT_SITE)),
            copies=(("mime.types", "/etc/nginx/mime.types"),),
        ),
        LayerDir(
            "/usr/share/nginx/html",
            files=(("index.html", _NGINX_INDEX), ("50x.html", _NGINX_50X)),
        ),
        # As in the image: the logs are the container's output (`meshgate logs`).
        LayerDir(
            "/var/log/nginx",
            links=(("access.log", "/dev/stdout"), ("error.log", "/dev/stderr")),
        ),
        LayerDir("/var/lib/nginx"),
        LayerDir("/var/cache/nginx"),
    ),
)

_SQUID_LAYER = (
    LayerDir("/var/log/squid", owner="proxy"),
    LayerDir("/var/spool/squid", owner="proxy"),
    LayerDir("/var/cache/squid", owner="proxy"),
)
_SQUID_PROGRAMS = (("/usr/sbin/squid", "Debian's squid"),)

_HTTPBIN_PROGRAMS = (
    ("/usr/bin/gunicorn", "Debian's gunicorn"),
    ("/usr/lib/python3/dist-packages/httpbin", "Debian's python3-httpbin (PyPI's httpbin)"),
)
_GUNICORN_HTTPBIN = ("gunicorn", "--threads", "8", "--access-logfile", "-", "httpbin:app")

BUILTIN: dict[str, Image] = {
    i.name: i
    for i in (
        Image(
            name="curlimages/curl",
            entrypoint=_CURL_ENTRY,
            cmd=("curl",),
            programs=(("/usr/bin/curl", "Debian's curl"),),
        ),
        Image(name="busybox", cmd=("sh",), programs=(("/bin/sh", "Debian's dash"),)),
        Image(name="alpine", cmd=("/bin/sh",), programs=(("/bin/sh", "Debian's dash"),)),
        Image(name="debian", cmd=("bash",), programs=(("/bin/bash", "Debian's bash"),)),
        Image(name="ubuntu", cmd=("/bin/bash",), programs=(("/bin/bash", "Debian's bash"),)),
        Image(
            name="python", cmd=("python3",), programs=(("/usr/bin/python3", "Debian's python3"),)
        ),
        _NGINX,
        Image(
            name="ubuntu/squid",
            # Its entrypoint.sh ends in `exec squid "$@"`.
            entrypoint=("/bin/sh", "-c", 'exec squid "$@"', "entrypoint.sh"),
            cmd=("-f", "/etc/squid/squid.conf", "-NYC"),
            programs=_SQUID_PROGRAMS,
            layer=_SQUID_LAYER,
        ),
        Image(
            name="sameersbn/squid",
            # Its entrypoint: no arguments, or squid's options, run squid in the foreground
            # with its config; anything else is run as given.
            entrypoint=(
                "/bin/sh",
                "-c",
                'case "$1" in ""|-*) exec squid -f /etc/squid/squid.conf -NYCd 1 "$@";; '
                'squid|/usr/sbin/squid) shift; exec squid -f /etc/squid/squid.conf -NYCd 1 "$@";; '
                'esac; exec "$@"',
                "/sbin/entrypoint.sh",
            ),
            programs=_SQUID_PROGRAMS,
            layer=_SQUID_LAYER,
        ),
        Image(
            name="kennethreitz/httpbin",
            cmd=(_GUNICORN_HTTPBIN[0], "-b", "0.0.0.0:80", *_GUNICORN_HTTPBIN[1:]),
            programs=_HTTPBIN_PROGRAMS,
        ),
        Image(
            name="mccutchen/go-httpbin",
            # go-httpbin listens on $PORT (8080) or `-port N`; the same httpbin answers.
            entrypoint=(
                "/bin/sh",
                "-c",
                'port="${PORT:-8080}"; while [ $# -gt 0 ]; do case "$1" in '
                '-port|--port) port="$2"; shift;; -port=*|--port=*) port="${1#*=}";; esac; '
                "shift; done; "
                'exec gunicorn -b "0.0.0.0:$port" --threads 8 --access-logfile - httpbin:app',
                "/bin/go-httpbin",
            ),
            programs=_HTTPBIN_PROGRAMS,
        ),
    )
}

# Other names of the same programs: Istio's older samples, and short names tests use.
ALIASES: dict[str, str] = {
    "curl": "curlimages/curl",
    "tutum/curl": "curlimages/curl",
    "governmentpaas/curl-ssl": "curlimages/curl",
    "pstauffer/curl": "curlimages/curl",
    "kong/httpbin": "kennethreitz/httpbin",
    "citizenstig/httpbin": "kennethreitz/httpbin",
}


def builtin(name: str) -> Image | None:
    found = BUILTIN.get(ALIASES.get(name, name))
    return None if found is None else replace(found, name=name)


# --- the user's table --------------------------------------------------------------------


@dataclass
class UserTable:
    path: Path
    images: dict[str, Image] = field(default_factory=dict)
    problem: str = ""  # why the file was not used ("" when it was, or is absent)


def load_user_table(state_dir: Path) -> UserTable:
    """`state_dir/images.yaml`, checked whole: one bad field and none of it is used."""
    path = state_dir / USER_FILE
    table = UserTable(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return table
    except OSError as exc:
        table.problem = f"{path}: {exc.strerror or exc}"
        return table
    try:
        table.images = parse_user_table(text, str(path))
    except ValueError as exc:
        table.problem = str(exc)
    return table


def parse_user_table(text: str, where: str) -> dict[str, Image]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, Mapping) or set(doc) - {"images"}:
        raise ValueError(f"{where}: the file holds one mapping, `images:`")
    entries = doc.get("images") or {}
    if not isinstance(entries, Mapping):
        raise ValueError(f"{where}: images: must map image names to entries")
    out: dict[str, Image] = {}
    for ref, entry in entries.items():
        at = f"{where}: images.{ref}"
        if not isinstance(ref, str) or not _REFERENCE.fullmatch(normalise(ref)):
            raise ValueError(f"{at}: not an image name")
        out[normalise(ref)] = _user_image(normalise(ref), entry, at)
    return out


def _user_image(name: str, entry: Any, at: str) -> Image:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{at}: must be a mapping (entrypoint, cmd, like)")
    unknown = sorted(set(entry) - {"entrypoint", "cmd", "like"})
    if unknown:
        raise ValueError(f"{at}.{unknown[0]}: unknown field (use entrypoint, cmd, like)")
    like = entry.get("like")
    base = Image(name=name)
    if like is not None:
        found = builtin(normalise(str(like))) if isinstance(like, str) else None
        if found is None:
            known = ", ".join(sorted(BUILTIN))
            raise ValueError(f"{at}.like: {like!r} is not a built-in image (one of {known})")
        base = replace(found, name=name)
    given: dict[str, tuple[str, ...]] = {}
    for key in ("entrypoint", "cmd"):
        value = entry.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise ValueError(f"{at}.{key}: must be a list of strings")
        given[key] = tuple(value)
    if like is None and not given:
        raise ValueError(f"{at}: give entrypoint and/or cmd, or like")
    return replace(
        base,
        entrypoint=given.get("entrypoint", base.entrypoint),
        cmd=given.get("cmd", base.cmd),
        source=f"mapped in {USER_FILE}",
    )


# --- resolution --------------------------------------------------------------------------


def resolve(ref: str, user: UserTable) -> Image:
    """The image a container reference runs, or ImageError saying why not and what to do."""
    name = normalise(ref)
    image = user.images.get(name) or builtin(name)
    if image is None:
        broken = f" ({user.problem}: not used)" if user.problem else ""
        raise ImageError(
            f'Failed to pull image "{ref}": meshgate runs images as host programs and has '
            f'no mapping for "{name}"; map it in {user.path}{broken}, e.g. images: '
            f"{{{name}: {{entrypoint: [/usr/bin/PROGRAM], cmd: [ARG]}}}} or "
            f"{{{name}: {{like: nginx}}}} (see docs/pods.md)"
        )
    for path, source in image.programs:
        if not os.access(path, os.F_OK):
            raise ImageError(
                f'Failed to pull image "{ref}": it runs {source} ({path}), which is not '
                "installed on this host (`make deps` installs it)"
            )
    return image
