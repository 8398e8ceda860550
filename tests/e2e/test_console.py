"""The web console in a real browser (Playwright driving Debian's chromium, headless) on a
real mesh: the seed's console steps, checked by what the sleep pod's curl then sees.

``MESHGATE_CONSOLE_SCREENSHOTS=DIR`` also saves a screenshot of every page into DIR (the
README's and docs/console.md's pictures: ``MESHGATE_CONSOLE_SCREENSHOTS=docs/console``).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
BAD_RESOLUTION_LINE = 13  # of the "access an external service" template, resolution: DNSX


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's chromium (make test installs it as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need playwright (pip install -e '.[test]')")
    with sync_playwright() as p:
        # --no-sandbox: chromium's own sandbox refuses to run as root, which e2e tests are.
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def _login_link(mesh: Mesh) -> str:
    link = mesh.meshgate("console").stdout.strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/login\?code=[\w-]+", link), link
    return link


def _base(link: str) -> str:
    return link.split("/login", 1)[0]


def _status(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _eventually(probe: Callable[[], str | None], what: str, timeout: float = 30.0) -> str:
    ok, last = retry(probe, bool, timeout, interval=0.3)
    if not ok or last is None:
        raise AssertionError(f"timed out waiting for {what}")
    return last


def _curl_until(mesh: Mesh, pod: str, status: str) -> str:
    def probe() -> str | None:
        out = mesh.curl(pod, "-I", "aliyun.com").stdout
        return out if out.startswith(f"HTTP/1.1 {status}") else None

    return _eventually(probe, f"HTTP/1.1 {status} from the sleep pod")


def _shoot(page: Any, name: str) -> None:
    target = os.environ.get("MESHGATE_CONSOLE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)


def test_console_refuses_without_login(mesh: Mesh, browser: Any) -> None:
    link = _login_link(mesh)
    base = _base(link)
    policy = mesh.meshgate("get", "meshconfig", "default", "-o", "json").stdout
    # No session: every page, the tail's JSON, static files and writes are refused.
    for path in ("/", "/mesh", "/r/serviceentries", "/api/tail", "/static/console.css"):
        assert _status(base + path) == 401, path
    form = b"mode=REGISTRY_ONLY"
    assert _status(base + "/mesh/policy", form) == 401
    # Not even the API's own token opens the console: only a login link's session does.
    token = (mesh.home / "api-token").read_text().strip()
    assert _status(base + "/mesh", headers={"Authorization": f"Bearer {token}"}) == 401
    assert mesh.meshgate("get", "meshconfig", "default", "-o", "json").stdout == policy

    context = browser.new_context()
    page = context.new_page()
    resp = page.goto(base + "/mesh")
    assert resp.status == 401
    assert "meshgate console" in page.inner_text("body")
    page.goto(link)  # the link logs in and lands on the mesh settings
    assert page.url == base + "/mesh"
    assert page.inner_text("h1") == "Mesh settings"
    (cookie,) = [c for c in context.cookies() if c["name"] == "meshgate_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # A link works once: a second browser with the same link is refused.
    other = browser.new_context().new_page()
    assert other.goto(link).status == 401
    assert "used up or expired" in other.inner_text("body")
    # A form posted from another site is refused even with the session.
    cross = page.request.post(
        base + "/mesh/policy",
        form={"mode": "REGISTRY_ONLY"},
        headers={"Origin": "http://evil.example"},
        max_redirects=0,
    )
    assert cross.status == 403
    assert mesh.meshgate("get", "meshconfig", "default", "-o", "json").stdout == policy
    context.close()


def test_console_walkthrough(mesh: Mesh, browser: Any) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    _curl_until(mesh, sleep, "301")

    link = _login_link(mesh)
    base = _base(link)
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.on("dialog", lambda d: d.accept())
    page.goto(link)

    # Step 2: REGISTRY_ONLY from the mesh settings; the sidecar answers 502 itself. The
    # sidecars' access log is switched on too, so the refusal shows on the traffic page.
    assert page.inner_text("#current-policy") == "ALLOW_ANY"
    page.check("input[name=mode][value=REGISTRY_ONLY]")
    page.check("#access-log")
    page.click("#policy-form button[type=submit]")
    assert "MeshConfig/default configured" in page.inner_text(".notice")
    assert page.inner_text("#current-policy") == "REGISTRY_ONLY"
    wire = json.loads(mesh.meshgate("get", "meshconfig", "default", "-o", "json").stdout)
    assert wire["spec"]["outboundTrafficPolicy"]["mode"] == "REGISTRY_ONLY"
    assert wire["spec"]["accessLogFile"] == "/dev/stdout"
    resp = _curl_until(mesh, sleep, "502")
    assert resp.startswith("HTTP/1.1 502 Bad Gateway")

    # The refusal is on the egress traffic page, with its reason.
    def blocked_row() -> str | None:
        mesh.curl(sleep, "-I", "aliyun.com")
        page.goto(base + "/traffic")
        rows = page.locator("#blocked tbody tr").all_inner_texts()
        return next((r for r in rows if "aliyun.com" in r and "502" in r), None)

    assert "REGISTRY_ONLY" in _eventually(blocked_row, "the blocked request on /traffic")
    _shoot(page, "traffic-blocked")

    # A wrong YAML: its error at its line, and nothing applied.
    revision = json.loads(mesh.meshgate("status", "-o", "json").stdout)["revision"]
    page.goto(base + "/r/serviceentries/new")
    text = page.input_value("#yaml")
    page.fill("#yaml", text.replace("resolution: DNS", "resolution: DNSX"))
    page.click("#apply")
    problem = page.locator("#annotated .problem")
    assert problem.count() == 1
    assert problem.get_attribute("data-line") == str(BAD_RESOLUTION_LINE)
    assert "spec.resolution: invalid value 'DNSX'" in problem.inner_text()
    line = page.locator(f"#annotated li[data-line='{BAD_RESOLUTION_LINE}'] code").inner_text()
    assert line.strip() == "resolution: DNSX"
    assert "nothing was applied" in page.inner_text("#problems")
    assert page.input_value("#yaml").endswith("resolution: DNSX\n")  # kept as typed
    _shoot(page, "serviceentry-error")
    assert json.loads(mesh.meshgate("status", "-o", "json").stdout)["revision"] == revision
    got = mesh.meshgate("get", "serviceentries", "-A", check=False)
    assert "external-svc-http" not in got.stdout
    assert _curl_until(mesh, sleep, "502")

    # Step 3: the ServiceEntry from the "access an external service" template: 301 again.
    page.goto(base + "/r/serviceentries")
    page.click("text=Create from YAML")
    page.select_option("#template", label="Access an external service (HTTP)")
    page.wait_for_url(re.compile(r".*/r/serviceentries/new\?template=.*"))
    _shoot(page, "serviceentry-new")
    page.click("#apply")
    assert page.url.startswith(base + "/r/serviceentries?")
    assert "ServiceEntry/external-svc-http created" in page.inner_text(".notice")
    assert "aliyun.com" in page.inner_text("#objects tr[data-name=external-svc-http]")
    _shoot(page, "serviceentries")
    resp = _curl_until(mesh, sleep, "301")
    assert "server: envoy" in resp

    # Step 4: the egress gateway (form), the gateway rule and the VirtualService (templates).
    page.goto(base + "/r/egressgateways/form")
    _shoot(page, "egressgateway-new")
    page.fill("input[name=replicas]", "1")
    page.fill("textarea[name=ports]", "80 HTTP")
    page.click("#gateway-form button[type=submit]")
    assert "IstioGateway/istio-egressgateway created" in page.inner_text(".notice")
    _shoot(page, "egressgateways")
    for slug, kind, name in (
        ("gateways", "Gateway", "egress-gw"),
        ("virtualservices", "VirtualService", "egressgateway-vs"),
    ):
        page.goto(f"{base}/r/{slug}/new")
        page.click("#apply")
        assert f"{kind}/{name} created" in page.inner_text(".notice")
        _shoot(page, slug)
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")

    # The gateway's log line appears in the live tail (no reload: the page polls).
    page.goto(base + "/traffic/tail")
    seen = page.locator("#tail tbody tr[data-reporter=gateway][data-host='aliyun.com']")

    def tail_row() -> str | None:
        _curl_until(mesh, sleep, "301")
        try:
            seen.first.wait_for(timeout=3000)
        except Exception:
            return None
        return str(seen.first.inner_text())

    row = _eventually(tail_row, "the gateway's line in the live tail", timeout=45)
    assert f"istio-system/{gw}" in row and "HEAD" in row and "301" in row
    assert "outbound|80||aliyun.com" in row
    _shoot(page, "tail")

    # Workloads with their proxies' sync state; the graph sleep -> gateway -> aliyun.com.
    def synced() -> str | None:
        page.goto(base + "/workloads")
        row = page.locator(f"#workloads tr[data-pod='{sleep}']").inner_text()
        return row if row.count("SYNCED") == 4 else None

    _eventually(synced, "the sleep pod's proxy SYNCED on every type")
    assert page.locator(f"#workloads tr[data-pod='{gw}']").count() == 1
    _shoot(page, "workloads")
    page.goto(base + "/traffic/graph")
    edges = page.locator("#edges tbody").inner_text()
    assert "default/sleep\tistio-system/istio-egressgateway" in edges
    assert "istio-system/istio-egressgateway\taliyun.com" in edges
    assert page.locator("svg.graph [data-node='h:aliyun.com']").count() == 1
    _shoot(page, "graph")

    # The rest of the pages, for the pictures; edit and delete the ServiceEntry last.
    page.goto(base + "/traffic")
    assert page.locator("#hosts tr[data-host='aliyun.com']").count() >= 1
    assert page.locator(".chart-row[data-host='aliyun.com'] svg.chart").count() == 3
    _shoot(page, "traffic")
    for slug in ("destinationrules", "authorizationpolicies"):
        page.goto(f"{base}/r/{slug}/new")
        _shoot(page, f"{slug}-new")
    page.goto(base + "/mesh")
    _shoot(page, "mesh")
    page.goto(base + "/r/serviceentries/default/external-svc-http/edit")
    assert "name: external-svc-http" in page.input_value("#yaml")
    assert "resourceVersion" not in page.input_value("#yaml")
    _shoot(page, "serviceentry-edit")
    page.click("#apply")
    assert "ServiceEntry/external-svc-http unchanged" in page.inner_text(".notice")
    page.click("#objects tr[data-name=external-svc-http] button.danger")
    assert "ServiceEntry/external-svc-http deleted" in page.inner_text(".notice")
    got = mesh.meshgate("get", "serviceentries", "-A", check=False)
    assert "external-svc-http" not in got.stdout
