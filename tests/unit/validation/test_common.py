"""Istio's shared syntax checks: domains, namespaced hosts, subnets, durations, RE2."""

# Case tables keep each YAML case on one line, like Istio's test tables.

from __future__ import annotations

import pytest

from meshgate.validation import common as c
from meshgate.validation.regex import re2_problem


@pytest.mark.parametrize(
    ("domain", "ok"),
    [
        ("foo.com", True),
        ("*", True),
        ("*.foo.com", True),
        ("*-foo.com", True),  # Istio's wildcard label allows "*-" and "*x" prefixes
        ("foo.*.com", False),
        ("foo.123", False),
        ("foo.com.", True),
        ("a" * 64 + ".com", False),
        ("", False),
        ("UPPER.case", True),
    ],
)
def test_wildcard_domain(domain: str, ok: bool) -> None:
    assert (c.wildcard_domain_problem(domain) is None) is ok


@pytest.mark.parametrize(
    ("host", "gateway", "ok"),
    [
        ("ns/foo.com", False, True),
        ("~/foo.com", False, True),
        ("~/foo.com", True, False),
        ("foo.com", False, False),
        ("foo.com", True, True),
        ("1.2.3.4", True, True),
        ("ns/1.2.3.4", False, False),
        ("*/foo", False, False),
        ("ns/*", False, True),
    ],
)
def test_namespaced_host(host: str, gateway: bool, ok: bool) -> None:
    assert (c.namespaced_host_problem(host, gateway=gateway) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("10.0.0.0/8", True), ("10.0.0.1/8", True), ("10.0.0.0/33", False), ("::1", True),
     ("10.0.0.0/255.0.0.0", False), ("foo", False), ("1.2.3.4/08", False)],
)  # fmt: skip
def test_subnet(value: str, ok: bool) -> None:
    assert (c.subnet_problem(value) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("1ms", True), ("0.5ms", False), ("1.5s", True), ("1500us", False), ("0s", False)],
)
def test_duration(value: str, ok: bool) -> None:
    assert (c.duration_problem(value) is None) is ok


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [("*.a.com", "b.a.com", True), ("a.com", "b.com", False), ("*", "x.y", True),
     ("*.a.com", "*.b.com", False), ("*.com", "*.a.com", True)],
)  # fmt: skip
def test_host_matches(a: str, b: str, overlap: bool) -> None:
    assert c.host_matches(a, b) is overlap


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        ("^/api/v[0-9]+$", True),
        (r"\pL+", True),  # RE2 unicode classes
        ("[[:digit:]]+", True),  # RE2 POSIX classes
        (r"(a)\1", False),  # backreference
        ("(?<=a)b", False),  # lookbehind
        ("a{1001}", False),  # RE2 repeat limit
        ("a++", False),  # possessive / nested repetition
        ("(", False),
        ("x" * 1025, False),  # Istio's length limit
    ],
)
def test_re2(pattern: str, ok: bool) -> None:
    assert (re2_problem(pattern) is None) is ok


def test_header_value() -> None:
    assert c.header_value_problem("%HOSTNAME%") is None
    assert c.header_value_problem("100%%") is None
    assert c.header_value_problem("%START_TIME%%") is not None
    assert c.header_value_problem("a\nb") is not None
