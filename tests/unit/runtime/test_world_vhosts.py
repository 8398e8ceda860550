"""Name-based virtual hosting in the world: a port's ``vhosts`` answer by Host header, the
port's own answers take any other Host, and the demo world's Wikipedia serves each
language from one address (Istio's wildcard task relies on it). No root needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgate.runtime.world import WorldError, envoy_bootstrap, load_world


def _vhosts(world_source: str | Path, address: str, port: int) -> list[dict[str, object]]:
    w = load_world(world_source)
    boot = envoy_bootstrap(
        w, Path("/run/x.sock"), {a: (Path("c"), Path("k")) for a in w.addresses()}
    )
    (listener,) = [
        lst
        for lst in boot["static_resources"]["listeners"]
        if lst["name"] == f"world_{address}_{port}"
    ]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    vhosts: list[dict[str, object]] = hcm["route_config"]["virtual_hosts"]
    return vhosts


def _body(vhost: dict[str, object]) -> str:
    routes = vhost["routes"]
    assert isinstance(routes, list)
    return str(routes[-1]["direct_response"]["body"]["inline_string"])


def test_demo_wikipedia_answers_each_language_by_host_on_one_address() -> None:
    w = load_world("demo")
    zone = w.zone()
    for name in ("www.wikipedia.org", "en.wikipedia.org", "de.wikipedia.org"):
        assert zone[name] == ["198.51.100.224"]
    # One certificate for every name the address serves.
    assert sorted(w.https_hosts()["198.51.100.224"]) == [
        "de.wikipedia.org",
        "en.wikipedia.org",
        "www.wikipedia.org",
    ]
    en, de, default = _vhosts("demo", "198.51.100.224", 443)
    assert en["domains"] == ["en.wikipedia.org", "en.wikipedia.org:443"]
    assert "<title>Wikipedia, the free encyclopedia</title>" in _body(en)
    assert de["domains"] == ["de.wikipedia.org", "de.wikipedia.org:443"]
    assert "<title>Wikipedia \u2013 Die freie Enzyklop\u00e4die</title>" in _body(de)
    assert default["domains"] == ["*"] and "<title>Wikipedia</title>" in _body(default)
    en80 = _vhosts("demo", "198.51.100.224", 80)[0]
    redirect = en80["routes"][-1]  # type: ignore[index]
    assert redirect["direct_response"] == {"status": 301}
    assert {"key": "location", "value": "https://en.wikipedia.org/"} in [
        h["header"] for h in redirect["response_headers_to_add"]
    ]


def test_a_port_without_vhosts_answers_any_host_as_before() -> None:
    (only,) = _vhosts("demo", "198.51.100.10", 80)
    assert only["name"] == "aliyun.com" and only["domains"] == ["*"]


@pytest.mark.parametrize(
    ("vhosts", "reason"),
    [
        ("[{names: [b.example.org]}]", "vhost name 'b.example.org' is not one of the host's names"),
        ("[{names: [a.example.org]}, {names: [A.example.org]}]", "is given twice"),
        ("[{names: []}]", "at least 1 item"),
    ],
)
def test_bad_vhosts_name_file_line_and_field(tmp_path: Path, vhosts: str, reason: str) -> None:
    f = tmp_path / "world.yaml"
    f.write_text(
        f"""hosts:
- names: [a.example.org, c.example.org]
  address: 192.0.2.9
  ports:
  - port: 80
    vhosts: {vhosts}
"""
    )
    with pytest.raises(WorldError) as err:
        load_world(f)
    assert str(f) in str(err.value) and reason in str(err.value)


def test_a_backend_host_takes_no_vhosts(tmp_path: Path) -> None:
    f = tmp_path / "world.yaml"
    f.write_text(
        """hosts:
- names: [h.example.org]
  address: 192.0.2.9
  backend: {kind: httpbin}
  ports: [{port: 80, vhosts: [{names: [h.example.org]}]}]
"""
    )
    with pytest.raises(WorldError, match="no `response`, `paths` or `vhosts`"):
        load_world(f)
