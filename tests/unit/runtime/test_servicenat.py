"""kube-proxy-style rules: one DNAT per endpoint, random spread, masquerade for hairpin."""

from __future__ import annotations

from meshgate.runtime.servicenat import CHAIN, MASQ_CHAIN, ServiceRoute, render


def test_render_spreads_evenly_and_masquerades() -> None:
    text = render(
        [
            ServiceRoute("10.96.0.9", 80, (("10.34.0.12", 8080), ("10.34.0.13", 8080))),
            ServiceRoute("10.96.0.5", 443, (("10.34.0.20", 8443),)),
        ]
    )
    lines = text.splitlines()
    assert lines[:3] == ["*nat", f":{CHAIN} - [0:0]", f":{MASQ_CHAIN} - [0:0]"]
    dnat = [x for x in lines if "DNAT" in x and "-A" in x]
    # sorted by cluster IP; the first of two endpoints takes half, the last the rest
    assert dnat[0].startswith(f"-A {CHAIN} -d 10.96.0.5/32 -p tcp -m tcp --dport 443 -j DNAT")
    assert "--probability 0.50000" in dnat[1] and dnat[1].endswith("10.34.0.12:8080")
    assert "statistic" not in dnat[2] and dnat[2].endswith("10.34.0.13:8080")
    assert f"-A {MASQ_CHAIN} -m conntrack --ctstate DNAT -j MASQUERADE" in lines
    assert text.endswith("COMMIT\n")


def test_three_endpoints_get_a_third_each() -> None:
    eps = tuple((f"10.34.0.{i}", 80) for i in (1, 2, 3))
    text = render([ServiceRoute("10.96.0.1", 80, eps)])
    probs = [x.split("--probability ")[1].split()[0] for x in text.splitlines() if "prob" in x]
    assert probs == ["0.33333", "0.50000"]


def test_empty_still_declares_the_chains() -> None:
    assert render([]).splitlines()[:3] == ["*nat", f":{CHAIN} - [0:0]", f":{MASQ_CHAIN} - [0:0]"]
