"""Unit tests of host parsing and matching edge cases."""

from __future__ import annotations

from meshgate.model import hosts


def test_wildcard_examples() -> None:
    assert hosts.matches("*.foo.com", "a.foo.com")
    assert hosts.matches("*.foo.com", "a.b.foo.com")
    assert not hosts.matches("*.foo.com", "foo.com")
    assert not hosts.matches("*.foo.com", "xfoo.com")
    assert hosts.matches("*", "anything.example")
    assert hosts.matches("*.foo.com", "*.bar.foo.com")
    assert hosts.subset_of("*.bar.foo.com", "*.foo.com")
    assert not hosts.subset_of("*.foo.com", "*.bar.foo.com")


def test_namespaced_hosts() -> None:
    assert hosts.parse_namespaced_host("aliyun.com", "default") == hosts.NamespacedHost(
        "*", "aliyun.com"
    )
    dot = hosts.parse_namespaced_host("./aliyun.com", "default")
    assert dot == hosts.NamespacedHost("default", "aliyun.com")
    assert dot.admits("default", "aliyun.com")
    assert not dot.admits("other", "aliyun.com")
    star = hosts.parse_namespaced_host("*/*.foo.com", "default")
    assert star.admits("x", "a.foo.com")
    assert not star.admits("x", "foo.com")
    assert not hosts.parse_namespaced_host("~/*", "default").admits("default", "a.b")


def test_short_names() -> None:
    assert hosts.expand_short_name("reviews", "default") == "reviews.default.svc.cluster.local"
    assert hosts.expand_short_name("Aliyun.COM.", "default") == "aliyun.com"
    assert hosts.expand_short_name("*", "default") == "*"
    assert hosts.short_forms("sleep.default.svc.cluster.local", "default") == [
        "sleep.default.svc",
        "sleep.default",
        "sleep",
    ]
    assert hosts.short_forms("aliyun.com", "default") == []
