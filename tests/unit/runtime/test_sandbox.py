"""The sandbox's command line and host layout, and capture's rules: pure, read from a fake
root, so what a container would see is checked without starting one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshgate.api import annotations as pod_annotations
from meshgate.runtime import capture, sandbox


def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "lib64").mkdir()
    etc = root / "etc"
    (etc / "ssl" / "private").mkdir(parents=True)
    (etc / "ssl" / "private").chmod(0o700)
    (etc / "ssl" / "certs").mkdir()
    (etc / "netns" / "mg-abc-1").mkdir(parents=True)
    for name, mode in [("passwd", 0o644), ("shadow", 0o640), ("hosts", 0o644)]:
        (etc / name).write_text(name)
        (etc / name).chmod(mode)
    (etc / "ssl" / "certs" / "key.pem").write_text("k")
    (etc / "ssl" / "certs" / "key.pem").chmod(0o600)
    (etc / "mtab").symlink_to("/proc/mounts")
    return root


def pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_layout_keeps_only_what_other_users_may_read(tmp_path: Path) -> None:
    layout = sandbox.read_layout(fake_root(tmp_path))
    assert dict(layout.roots) == {"usr": None, "bin": "usr/bin", "lib64": None}
    etc = dict(layout.etc)
    assert "shadow" not in etc and "netns" not in etc  # private, and other pods' files
    assert etc["passwd"] is None and etc["mtab"] == "/proc/mounts"
    assert set(layout.private) == {("/etc/ssl/private", True), ("/etc/ssl/certs/key.pem", False)}
    assert set(layout.hidden_top) == {("/etc/shadow", False), ("/etc/netns", True)}


def test_bwrap_argv(tmp_path: Path) -> None:
    layout = sandbox.read_layout(fake_root(tmp_path))
    sb = sandbox.Sandbox(
        hostname="sleep-1",
        files={"/etc/hosts": "/pod/hosts"},
        mounts=(sandbox.Mount("/vol/d", "/data", read_only=True),),
        working_dir="/app",
        hidden=("/etc/ssl/certs", "/root/.meshgate"),
    )
    argv = sandbox.bwrap_argv(sb, layout)
    assert argv[0] == "bwrap" and argv[-1] == "--"
    assert "--die-with-parent" not in argv  # a container outlives the control plane
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts"):
        assert flag in argv
    assert argv[argv.index("--hostname") + 1] == "sleep-1"
    binds = pairs(argv, "--ro-bind")
    assert ("/usr", "/usr") in binds and ("/lib64", "/lib64") in binds
    assert ("usr/bin", "/bin") in pairs(argv, "--symlink")
    assert ("/pod/hosts", "/etc/hosts") in binds and ("/etc/hosts", "/etc/hosts") not in binds
    # The pod's files are plain entries of the host's /etc: it is bound whole, and what
    # it keeps from other users is masked.
    assert ("/etc", "/etc") in binds and ("/dev/null", "/etc/shadow") in binds
    assert ("/dev/null", "/etc/ssl/certs/key.pem") in binds
    assert "/etc/netns" in [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"]
    assert ("/vol/d", "/data") in binds
    tmpfs = [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"]
    assert "/etc/ssl/private" in tmpfs and "/sys/fs/cgroup" in tmpfs
    assert "/etc/ssl/certs" in tmpfs  # hidden, under a tree the sandbox shows
    assert "/root/.meshgate" not in argv  # not under a shown tree: nothing to hide
    assert argv[argv.index("--chdir") + 1] == "/app"
    assert argv[argv.index("--chdir") - 1] == "/app"  # made in the writable root
    # /etc is read-only, last, after volumes mounted under it.
    assert argv[len(argv) - 1 - argv[::-1].index("--remount-ro") + 1] == "/etc"


def test_etc_rebuilt_entry_by_entry_when_a_replaced_file_is_a_symlink(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    (root / "etc" / "resolv.conf").symlink_to("/run/resolved/stub.conf")
    layout = sandbox.read_layout(root)
    sb = sandbox.Sandbox(hostname="p", files={"/etc/resolv.conf": "/pod/resolv.conf"})
    argv = sandbox.bwrap_argv(sb, layout)
    binds = pairs(argv, "--ro-bind")
    assert ("/etc", "/etc") not in binds and ("/etc/passwd", "/etc/passwd") in binds
    assert ("/pod/resolv.conf", "/etc/resolv.conf") in binds
    # Masked as when /etc is bound whole: the same /etc either way.
    assert ("/dev/null", "/etc/shadow") in binds and ("/etc/shadow", "/etc/shadow") not in binds
    assert ("/etc/netns", "/etc/netns") not in binds
    assert argv[argv.index("/etc/netns") - 1] == "--tmpfs"
    assert argv[argv.index("/etc") - 1] == "--tmpfs"


def test_shared_pid_namespace_is_joined_not_made(tmp_path: Path) -> None:
    layout = sandbox.read_layout(fake_root(tmp_path))
    argv = sandbox.bwrap_argv(sandbox.Sandbox(hostname="p", pidns_fd=7), layout)
    assert "--unshare-pid" not in argv and argv[argv.index("--pidns") + 1] == "7"


def test_sees_only_the_shown_trees(tmp_path: Path) -> None:
    layout = sandbox.read_layout(fake_root(tmp_path))
    assert sandbox.sees("/usr/bin/curl", layout)
    assert sandbox.sees("/bin/sh", layout)
    assert not sandbox.sees("/root/.venv/bin/python", layout)
    assert not sandbox.sees(os.path.join("/work", "tool"), layout)


def test_capture_exempts_the_proxy_cgroup_never_uid_1337() -> None:
    rules = capture.rules(Path("/sys/fs/cgroup/mg-abc123-proxies"))
    assert "-m cgroup --path /mg-abc123-proxies -j RETURN" in rules
    assert "owner" not in rules
    assert rules.index("-j RETURN") < rules.index("-j MESHGATE_REDIRECT")
    fallback = capture.rules(None)  # no cgroup v2: Istio's uid/gid rule
    assert "--uid-owner 1337" in fallback and "--gid-owner 1337" in fallback


def test_proxy_cgroup_prefix_enters_before_exec() -> None:
    argv = capture.in_proxy_cgroup(Path("/cg/mg-x-proxies"), ["envoy", "-c", "b.json"])
    assert argv[:3] == ["sh", "-c", 'echo $$ > "$0" && exec "$@"']
    assert argv[3:] == ["/cg/mg-x-proxies/cgroup.procs", "envoy", "-c", "b.json"]
    assert capture.in_proxy_cgroup(None, ["envoy"]) == ["envoy"]


def test_inbound_capture_follows_istios_annotations() -> None:
    every = capture.rules(None, pod_annotations.inbound_ports({}))
    assert "-A PREROUTING -p tcp -j MESHGATE_INBOUND" in every
    assert "-A MESHGATE_INBOUND -p tcp -j REDIRECT --to-ports 15006" in every
    some = pod_annotations.inbound_ports(
        {
            "traffic.sidecar.istio.io/includeInboundPorts": "8080, 9090",
            "traffic.sidecar.istio.io/excludeInboundPorts": "9090",
        }
    )
    rules = capture.rules(None, some)
    assert "--dport 8080 -j REDIRECT --to-ports 15006" in rules
    assert "9090" not in rules
    excluded = pod_annotations.inbound_ports({"traffic.sidecar.istio.io/excludeInboundPorts": "22"})
    rules = capture.rules(None, excluded)
    assert rules.index("--dport 22 -j RETURN") < rules.index("REDIRECT --to-ports 15006")
    none = pod_annotations.inbound_ports({"traffic.sidecar.istio.io/includeInboundPorts": ""})
    assert "MESHGATE_INBOUND" not in capture.rules(None, none)
    assert "MESHGATE_INBOUND" not in capture.rules(None)  # records from before inbound capture
    with pytest.raises(ValueError, match=r"excludeInboundPorts.*'http'"):
        pod_annotations.inbound_ports({"traffic.sidecar.istio.io/excludeInboundPorts": "http"})


def test_a_volume_at_a_path_etc_lacks_gets_an_etc_that_can_hold_it(tmp_path: Path) -> None:
    layout = sandbox.read_layout(fake_root(tmp_path))
    target = "/etc/mg-unit-test-absent/tls"  # not on this host: made in the container's /etc
    sb = sandbox.Sandbox(hostname="p", mounts=(sandbox.Mount("/src", target, read_only=True),))
    argv = sandbox.bwrap_argv(sb, layout)
    assert argv[argv.index("/etc") - 1] == "--tmpfs"
    made = pairs(argv, "--dir")
    assert argv[
        argv.index("/etc/mg-unit-test-absent") - 3 : argv.index("/etc/mg-unit-test-absent")
    ] == [
        "--perms",
        "0755",
        "--dir",
    ], made
    assert ("/src", target) in pairs(argv, "--ro-bind")
    assert argv.index(target) < argv.index("--remount-ro", argv.index(target))
    # A mount at a path /etc has keeps /etc bound whole.
    sb = sandbox.Sandbox(hostname="p", mounts=(sandbox.Mount("/src", "/etc", read_only=True),))
    assert ("/etc", "/etc") in pairs(sandbox.bwrap_argv(sb, layout), "--ro-bind")
