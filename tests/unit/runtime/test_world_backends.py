"""World hosts backed by real programs: the world file's `backend`, its errors (naming file,
line and field), and how configs are bound to the host's address. No root needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgate.runtime import worldconf
from meshgate.runtime.world import ALIYUN_BODY, WorldError, envoy_bootstrap, load_world


def _world(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "world.yaml"
    f.write_text(text)
    return f


def test_demo_httpbin_is_the_real_one_and_aliyun_stays_canned() -> None:
    w = load_world("demo")
    (httpbin,) = [h for h in w.hosts if "httpbin.org" in h.names]
    assert httpbin.backend is not None and httpbin.backend.kind == "httpbin"
    assert [(p.port, p.protocol) for p in httpbin.ports] == [(80, "http"), (443, "https")]
    boot = envoy_bootstrap(
        w, Path("/run/x.sock"), {a: (Path("c"), Path("k")) for a in w.addresses()}
    )
    listened = {
        lst["address"]["socket_address"]["address"] for lst in boot["static_resources"]["listeners"]
    }
    assert "198.51.100.20" not in listened and "198.51.100.10" in listened
    (aliyun,) = [h for h in w.hosts if "aliyun.com" in h.names]
    assert aliyun.ports[0].response.body == ALIYUN_BODY and aliyun.ports[0].response.status == 301
    assert "198.51.100.20" in w.https_hosts()


def test_backend_paths_are_relative_to_the_world_file(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text("events {}\nhttp { server { listen 443 ssl; } }\n")
    (tmp_path / "ca.crt").write_text("x")
    f = _world(
        tmp_path,
        """hosts:
- names: [n.example.org]
  address: 192.0.2.40
  ports: [{port: 443, protocol: https}]
  backend: {kind: nginx, config: nginx.conf, files: {/etc/client-ca/ca.crt: ca.crt}}
""",
    )
    (host,) = load_world(f).hosts
    assert host.backend is not None
    assert host.backend.config == str(tmp_path / "nginx.conf")
    assert host.backend.files == {"/etc/client-ca/ca.crt": str(tmp_path / "ca.crt")}


@pytest.mark.parametrize(
    ("host", "line", "field", "reason"),
    [
        ("backend: {kind: nginx}\n  ports: [{port: 80}]", 4, "hosts[0].backend",
         "needs `config`"),
        ("backend: {kind: apache}\n  ports: [{port: 80}]", 4, "hosts[0].backend.kind",
         "'httpbin', 'nginx' or 'squid'"),
        ("backend: {kind: nginx, config: missing.conf}\n  ports: [{port: 80}]", 4,
         "hosts[0].backend.config", "no such file"),
        ("backend: {kind: httpbin}\n  ports: [{port: 80, response: {status: 204}}]", 2,
         "hosts[0]", "serves its own answers"),
        ("backend: {kind: squid, config: bad.conf}", 2, "hosts[0]",
         "bad.conf:2: http_port 10.1.2.3:3128: listens on 10.1.2.3, not on the host's"),
        ("backend: {kind: squid, files: {/usr/bin/x: bad.conf}}", 4,
         "hosts[0].backend.files", "cannot be mounted under /usr"),
        ("backend: {kind: squid, files: {/etc/squid/x.conf: bad.conf}}", 4,
         "hosts[0].backend.files", "a new directory directly below /etc"),
        ("ports: []", 2, "hosts[0]", "needs `ports`"),
    ],
)  # fmt: skip
def test_backend_errors_name_file_line_and_field(
    tmp_path: Path, host: str, line: int, field: str, reason: str
) -> None:
    (tmp_path / "bad.conf").write_text("acl all src all\nhttp_port 10.1.2.3:3128\n")
    f = _world(tmp_path, f"hosts:\n- names: [h.example.org]\n  address: 192.0.2.9\n  {host}\n")
    with pytest.raises(WorldError) as err:
        load_world(f)
    msg = str(err.value)
    assert msg.startswith(f"{f}:{line}: {field}: "), msg
    assert reason in msg, msg


def test_nginx_listen_is_bound_to_the_host_address() -> None:
    conf = """http {
  server {
    listen 443 ssl;   # a comment
    listen [::]:443 ssl;
    listen *:8080;
    listen 0.0.0.0:81 default_server;
    listen 192.0.2.40:82;
    listen 127.0.0.1:83;
    # listen 9999;
  }
}
"""
    out = worldconf.bind_config("nginx", conf, "192.0.2.40", "nginx.conf")
    assert "    listen 192.0.2.40:443 ssl;   # a comment\n" in out
    assert "    # (meshgate: IPv6 dropped) listen [::]:443 ssl;\n" in out
    assert "listen 192.0.2.40:8080;" in out and "listen 192.0.2.40:81 default_server;" in out
    assert "listen 192.0.2.40:82;" in out and "listen 127.0.0.1:83;" in out
    assert "    # listen 9999;\n" in out


@pytest.mark.parametrize(
    ("kind", "conf", "message"),
    [
        ("nginx", "daemon on;\n", "c.conf:1: daemon: meshgate sets this itself"),
        ("nginx", "\n  listen 10.0.0.1:80;\n", "c.conf:2: listen 10.0.0.1:80: listens on 10.0.0.1"),
        ("squid", "https_port example.org:443 cert=x\n", "c.conf:1: https_port example.org:443"),
    ],
)
def test_config_errors_name_the_line(kind: str, conf: str, message: str) -> None:
    with pytest.raises(worldconf.ConfigError, match=message.replace(".", r"\.")):
        worldconf.bind_config(kind, conf, "192.0.2.40", "c.conf")


def test_squid_default_config_listens_on_the_host() -> None:
    out = worldconf.bind_config("squid", worldconf.DEFAULT_SQUID, "192.0.2.41", "default")
    assert out.startswith("http_port 192.0.2.41:3128\n")
    assert "access_log stdio:/var/log/squid/access.log squid" in out
