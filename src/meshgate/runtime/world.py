"""The simulated outside world: external hosts with canned HTTP answers, served by a real Envoy.

Rules:
- A world file (YAML, see docs/world.md) lists hosts: names, one address, ports, and per port the
  HTTP response (status, headers, body), optionally per path (first matching path rule wins,
  then the port's default response).
- Addresses must come from the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
  203.0.113.0/24 outside the node link 203.0.113.0/30): a world can never shadow a real site.
- The world is served by one Envoy (static config, `direct_response` routes) inside the "inet"
  namespace; each (address, port) gets its own listener, so a host answers by address whatever
  the Host header says, like a real server; a port's ``vhosts`` answer for some of the
  host's names by Host header first (name-based virtual hosting, as one server behind
  ``*.wikipedia.org`` serves every language's site). `server_header_transformation:
  PASS_THROUGH` keeps the host's own `server` header. Header values are literal (a `%` is
  escaped for Envoy).
- `load_world("demo")` gives the built-in demo world; anything else is a path to a YAML file.
- An https port serves the same answers over TLS, with a certificate for the host's names
  issued by the world CA (``worldca``); pods trust that CA as they would a public one.
- A host with a ``backend`` (httpbin, nginx or squid) is served by that real program instead
  (``worldprocs`` runs it); its ports carry no canned answers, and the world's Envoy leaves
  its address alone. Paths in a backend (``config``, ``files``) are relative to the world
  file and must exist when the world is loaded; nginx and squid configs are checked for
  what ``worldconf`` would refuse at start.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from meshgate.runtime import worldconf

ALLOWED_NETS = [
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
]
RESERVED_NET = ipaddress.ip_network("203.0.113.0/30")
MAX_BODY = 1 << 20


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpResponse(_Model):
    status: int = Field(200, ge=200, le=599)
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""

    @field_validator("headers")
    @classmethod
    def _lower_names(cls, v: dict[str, str]) -> dict[str, str]:
        return {k.lower(): str(val) for k, val in v.items()}


class PathRule(_Model):
    exact: str | None = None
    prefix: str | None = None
    response: HttpResponse

    @model_validator(mode="after")
    def _one_match(self) -> PathRule:
        if (self.exact is None) == (self.prefix is None):
            raise ValueError("a path rule needs exactly one of exact or prefix")
        return self


class VirtualHost(_Model):
    """Name-based virtual hosting: the answers a port gives when the request's Host is one
    of ``names`` (all of them names of the host)."""

    names: list[str] = Field(min_length=1)
    response: HttpResponse = Field(default_factory=HttpResponse)
    paths: list[PathRule] = Field(default_factory=list)

    @field_validator("names")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        return [n.strip().rstrip(".").lower() for n in v]


class Port(_Model):
    port: int = Field(ge=1, le=65535)
    protocol: Literal["http", "https"] = "http"
    response: HttpResponse = Field(default_factory=HttpResponse)
    paths: list[PathRule] = Field(default_factory=list)
    # Answers by Host header, before the port's own (which then answer any other Host).
    vhosts: list[VirtualHost] = Field(default_factory=list)


# The ports a backend listens on when the host lists none.
DEFAULT_PORTS: dict[str, list[dict[str, Any]]] = {
    "httpbin": [{"port": 80}, {"port": 443, "protocol": "https"}],
    "squid": [{"port": 3128}],
}


def _base_dir(info: ValidationInfo) -> Path | None:
    ctx = info.context
    return Path(ctx["base"]) if isinstance(ctx, dict) and "base" in ctx else None


def _existing(value: str, info: ValidationInfo) -> str:
    """An existing file, as an absolute path (relative ones are from the world file)."""
    base = _base_dir(info)
    path = Path(value)
    if not path.is_absolute():
        if base is None:
            raise ValueError(f"{value}: a relative path needs a world file to be relative to")
        path = base / path
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return str(path)


class Backend(_Model):
    """A real program serving the host (see ``worldprocs``)."""

    kind: Literal["httpbin", "nginx", "squid"]
    # The program's main config file (nginx: required; squid: meshgate's default if unset).
    config: str | None = None
    # Read-only files inside the program's sandbox: absolute path there -> file here.
    files: dict[str, str] = Field(default_factory=dict)

    @field_validator("config")
    @classmethod
    def _config_file(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else _existing(v, info)

    @field_validator("files")
    @classmethod
    def _files(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        out = {}
        for inside, here in v.items():
            worldconf.check_target(inside)
            out[inside] = _existing(here, info)
        return out

    @model_validator(mode="after")
    def _kind_rules(self) -> Backend:
        if self.kind == "nginx" and self.config is None:
            raise ValueError("an nginx backend needs `config` (an nginx.conf)")
        if self.kind == "httpbin" and (self.config is not None or self.files):
            raise ValueError("an httpbin backend takes no `config` or `files`")
        return self


class Host(_Model):
    names: list[str] = Field(min_length=1)
    address: str
    ports: list[Port] = Field(default_factory=list)
    backend: Backend | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_ports(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("ports"):
            backend = data.get("backend")
            kind = backend.get("kind") if isinstance(backend, dict) else None
            if isinstance(kind, str) and kind in DEFAULT_PORTS:
                return {**data, "ports": DEFAULT_PORTS[kind]}
        return data

    @model_validator(mode="after")
    def _ports(self) -> Host:
        if not self.ports:
            raise ValueError("a host needs `ports` (at least one)")
        for p in self.ports:
            seen: set[str] = set()
            for v in p.vhosts:
                for n in v.names:
                    if n not in self.names:
                        raise ValueError(
                            f"port {p.port}: vhost name {n!r} is not one of the host's names"
                        )
                    if n in seen:
                        raise ValueError(f"port {p.port}: vhost name {n!r} is given twice")
                    seen.add(n)
        if self.backend is None:
            return self
        for p in self.ports:
            if p.paths or p.vhosts or p.response != HttpResponse():
                raise ValueError(
                    f"port {p.port}: a host with a backend serves its own answers "
                    "(no `response`, `paths` or `vhosts`)"
                )
        if self.backend.config is not None:
            # The same check the start does, now: a bad config is an error of `up`.
            worldconf.bind_config(
                self.backend.kind,
                Path(self.backend.config).read_text(encoding="utf-8"),
                self.address,
                self.backend.config,
            )
        return self

    @field_validator("names")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        return [n.strip().rstrip(".").lower() for n in v]

    @field_validator("address")
    @classmethod
    def _test_net(cls, v: str) -> str:
        addr = ipaddress.ip_address(v)
        if not isinstance(addr, ipaddress.IPv4Address):
            raise ValueError("world addresses are IPv4")
        if addr in RESERVED_NET or not any(addr in n for n in ALLOWED_NETS):
            raise ValueError(
                f"{v} is not in a documentation range (192.0.2.0/24, 198.51.100.0/24, "
                "203.0.113.4-255): a world must never shadow a real address"
            )
        return str(addr)


class World(_Model):
    hosts: list[Host] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> World:
        seen: set[tuple[str, int]] = set()
        for h in self.hosts:
            for p in h.ports:
                if (h.address, p.port) in seen:
                    raise ValueError(f"{h.address}:{p.port} is defined twice")
                seen.add((h.address, p.port))
        return self

    def zone(self) -> dict[str, list[str]]:
        """DNS names of the world, for the `world` zone layer."""
        out: dict[str, list[str]] = {}
        for h in self.hosts:
            for n in h.names:
                out.setdefault(n, [])
                if h.address not in out[n]:
                    out[n].append(h.address)
        return out

    def addresses(self) -> list[str]:
        return sorted({h.address for h in self.hosts})

    def https_hosts(self) -> dict[str, list[str]]:
        """Address -> DNS names of every host with an https port or a backend (they need a
        certificate: a backend's program may serve TLS whatever its ports say)."""
        return {
            h.address: h.names
            for h in self.hosts
            if h.backend is not None or any(p.protocol == "https" for p in h.ports)
        }

    def canned_hosts(self) -> list[Host]:
        """The hosts the world's Envoy answers for (those without a backend)."""
        return [h for h in self.hosts if h.backend is None]

    def backend_hosts(self) -> list[Host]:
        return [h for h in self.hosts if h.backend is not None]


ALIYUN_BODY = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html>
<head><title>301 Moved Permanently</title></head>
<body>
<h1>301 Moved Permanently</h1>
<p>The requested resource has moved permanently.</p>
<hr />Powered by Tengine</body>
</html>
"""

# Istio's egress tasks fetch http://edition.cnn.com/politics: a redirect to the same path
# over HTTPS, then the page (as the real site answers them).
CNN_POLITICS_REDIRECT: dict[str, Any] = {
    "prefix": "/politics",
    "response": {
        "status": 301,
        "headers": {
            "server": "Varnish",
            "location": "https://edition.cnn.com/politics",
            "content-type": "text/plain",
        },
    },
}
CNN_POLITICS_PAGE: dict[str, Any] = {
    "prefix": "/politics",
    "response": {
        "status": 200,
        "headers": {"server": "Varnish", "content-type": "text/html; charset=utf-8"},
        "body": "<html><title>Politics - CNN (meshgate demo world)</title></html>\n",
    },
}

DEMO: dict[str, Any] = {
    "hosts": [
        {
            "names": ["aliyun.com", "www.aliyun.com"],
            "address": "198.51.100.10",
            "ports": [
                {
                    "port": 80,
                    "response": {
                        "status": 301,
                        "headers": {
                            "server": "Tengine",
                            "content-type": "text/html",
                            "location": "https://aliyun.com/",
                            "eagleeye-traceid": "0b57ff8717025231418255220e7a3c",
                            "timing-allow-origin": "*",
                        },
                        "body": ALIYUN_BODY,
                    },
                },
                {
                    "port": 443,
                    "protocol": "https",
                    "response": {
                        "status": 200,
                        "headers": {"server": "Tengine", "content-type": "text/html"},
                        "body": "<html><title>Aliyun (meshgate demo world)</title></html>\n",
                    },
                },
            ],
        },
        {
            # The real httpbin (PyPI's, under gunicorn) on 80 and 443: it echoes what arrives.
            "names": ["httpbin.org", "www.httpbin.org"],
            "address": "198.51.100.20",
            "backend": {"kind": "httpbin"},
        },
        {
            "names": ["edition.cnn.com"],
            "address": "198.51.100.30",
            "ports": [
                {
                    "port": 80,
                    "response": {
                        "status": 301,
                        "headers": {
                            "server": "Varnish",
                            "location": "https://edition.cnn.com/",
                            "content-type": "text/plain",
                        },
                        "body": "",
                    },
                    "paths": [CNN_POLITICS_REDIRECT],
                },
                {
                    "port": 443,
                    "protocol": "https",
                    "response": {
                        "status": 200,
                        "headers": {"server": "Varnish", "content-type": "text/html"},
                        "body": "<html><title>CNN (meshgate demo world)</title></html>\n",
                    },
                    "paths": [CNN_POLITICS_PAGE],
                },
            ],
        },
        {
            # Istio's "Accessing External Services" task asks it over HTTPS.
            "names": ["www.google.com"],
            "address": "198.51.100.40",
            "ports": [
                {
                    "port": 80,
                    "response": {
                        "status": 301,
                        "headers": {"server": "gws", "location": "https://www.google.com/"},
                    },
                },
                {
                    "port": 443,
                    "protocol": "https",
                    "response": {
                        "status": 200,
                        "headers": {
                            "server": "gws",
                            "content-type": "text/html; charset=ISO-8859-1",
                        },
                        "body": "<html><title>Google (meshgate demo world)</title></html>\n",
                    },
                },
            ],
        },
    ]
}


def _wiki_page(title: str, lang: str) -> dict[str, Any]:
    return {
        "status": 200,
        "headers": {"server": "ATS/9.2.11", "content-type": "text/html; charset=UTF-8"},
        "body": f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="UTF-8">\n'
        f"<title>{title}</title>\n</head>\n<body>meshgate demo world</body>\n</html>\n",
    }


def _wiki_redirect(name: str) -> dict[str, Any]:
    return {
        "status": 301,
        "headers": {"server": "ATS/9.2.11", "location": f"https://{name}/"},
    }


# Every language's Wikipedia is served by the same servers (name-based virtual hosting),
# as Istio's "Egress using Wildcard Hosts" task relies on: any of them, www's included,
# answers for en. and de. by Host header. 198.51.100.224 echoes the real 208.80.154.224.
WIKIPEDIA: dict[str, Any] = {
    "names": ["www.wikipedia.org", "en.wikipedia.org", "de.wikipedia.org"],
    "address": "198.51.100.224",
    "ports": [
        {
            "port": 80,
            "response": _wiki_redirect("www.wikipedia.org"),
            "vhosts": [
                {"names": [n], "response": _wiki_redirect(n)}
                for n in ("en.wikipedia.org", "de.wikipedia.org")
            ],
        },
        {
            "port": 443,
            "protocol": "https",
            "response": _wiki_page("Wikipedia", "en"),
            "vhosts": [
                {
                    "names": ["en.wikipedia.org"],
                    "response": _wiki_page("Wikipedia, the free encyclopedia", "en"),
                },
                {
                    "names": ["de.wikipedia.org"],
                    "response": _wiki_page("Wikipedia \u2013 Die freie Enzyklop\u00e4die", "de"),
                },
            ],
        },
    ],
}
DEMO["hosts"].append(WIKIPEDIA)


class WorldError(ValueError):
    """A world that cannot be loaded; the message names the file, line and field."""


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the value at ``loc`` in a composed YAML tree (as far as it goes)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    child = v
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_world(source: str | os.PathLike[str]) -> World:
    """`"demo"` for the built-in world, or the path of a world YAML file. Raises
    WorldError with ``file:line field: reason`` for every problem found."""
    if os.fspath(source) == "demo":
        return World.model_validate(DEMO)
    path = Path(source)
    if not path.is_file():
        raise WorldError(f"unknown world {os.fspath(source)!r}: use 'demo' or a world file")
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        tree = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f":{mark.line + 1}" if mark is not None else ""
        raise WorldError(f"{path}{at}: invalid YAML: {exc.problem or exc.context}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise WorldError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise WorldError(f"{path}:1: a world file is a mapping with `hosts:`")
    try:
        return World.model_validate(data, context={"base": str(path.resolve().parent)})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line_of(tree, loc)
            where = f"{path}:{line}" if line else str(path)
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {_field(loc) or '(top)'}: {msg}")
        raise WorldError("\n".join(lines)) from None


def _escape(value: str) -> str:
    return value.replace("%", "%%")


def _route(match: dict[str, str], resp: HttpResponse) -> dict[str, Any]:
    route: dict[str, Any] = {
        "match": match,
        "direct_response": {"status": resp.status},
        "response_headers_to_add": [
            {
                "header": {"key": k, "value": _escape(v)},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
            for k, v in sorted(resp.headers.items())
        ],
    }
    if resp.body:
        route["direct_response"]["body"] = {"inline_string": resp.body}
    return route


def _routes(paths: list[PathRule], default: HttpResponse) -> list[dict[str, Any]]:
    """Path rules in order, then the default answer for any other path."""
    routes = [
        _route({"path": r.exact} if r.exact else {"prefix": r.prefix or "/"}, r.response)
        for r in paths
    ]
    routes.append(_route({"prefix": "/"}, default))
    return routes


def _tls(cert: Path, key: Path) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/"
            "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(cert)},
                        "private_key": {"filename": str(key)},
                    }
                ],
            },
        },
    }


def envoy_bootstrap(
    world: World, admin_socket: Path, certs: Mapping[str, tuple[Path, Path]] | None = None
) -> dict[str, Any]:
    """A static Envoy bootstrap serving `world` (one listener per address and port);
    ``certs`` maps the address of each host with an https port to (cert, key) files."""
    certs = certs or {}
    listeners = []
    for h in sorted(world.canned_hosts(), key=lambda x: x.address):
        for p in sorted(h.ports, key=lambda x: x.port):
            vhosts = [
                {
                    "name": v.names[0],
                    "domains": [d for n in v.names for d in (n, f"{n}:{p.port}")],
                    "routes": _routes(v.paths, v.response),
                }
                for v in p.vhosts
            ]
            # The port's own answers: any other Host (Envoy prefers exact domains to "*").
            vhosts.append(
                {"name": h.names[0], "domains": ["*"], "routes": _routes(p.paths, p.response)}
            )
            hcm = {
                "@type": "type.googleapis.com/envoy.extensions.filters.network."
                "http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": f"world_{h.address}_{p.port}",
                "server_header_transformation": "PASS_THROUGH",
                "route_config": {
                    "name": f"world_{h.address}_{p.port}",
                    "max_direct_response_body_size_bytes": MAX_BODY,
                    "virtual_hosts": vhosts,
                },
                "http_filters": [
                    {
                        "name": "envoy.filters.http.router",
                        "typed_config": {
                            "@type": "type.googleapis.com/"
                            "envoy.extensions.filters.http.router.v3.Router"
                        },
                    }
                ],
            }
            chain: dict[str, Any] = {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
            if p.protocol == "https":
                if h.address not in certs:
                    raise ValueError(f"no certificate for https host {h.address}")
                chain["transport_socket"] = _tls(*certs[h.address])
            listeners.append(
                {
                    "name": f"world_{h.address}_{p.port}",
                    "address": {"socket_address": {"address": h.address, "port_value": p.port}},
                    "filter_chains": [chain],
                }
            )
    return {
        "node": {"id": "meshgate-world", "cluster": "meshgate-world"},
        "admin": {"address": {"pipe": {"path": str(admin_socket)}}},
        "static_resources": {"listeners": listeners},
    }
