"""How a pod's containers are started and entered, and what they see: the files the runtime
writes for a pod, its volumes, the proxy cgroup, sandboxes and a pod's shared PID namespace.

Rules:
- The proxy (container `istio-proxy`) runs as 1337:1337 in the mesh's proxy cgroup (which
  exempts it from capture), in a sandbox of its own too: it sees the host's programs, its
  Envoy binary, its own pod directory (bootstrap with its xDS credential, 0640 root:1337 in
  a 0750 directory) and the xDS socket, and nothing of other proxies: no proxy can read
  another's credential, /proc or files, though all run as uid 1337. A gateway's proxy also
  sees its own volumes (its `istio-proxy` container's volumeMounts, read-only).
- Every app container runs in a sandbox of its own (`sandbox.bwrap_argv`) inside the pod's
  network namespace, as its user with its capability bounding set (setpriv inside the
  sandbox). `exec` and exec probes enter a running container's namespaces
  (`sandbox.enter_argv`); a container with no live process cannot be entered.
- The pod's /etc/hosts, resolv.conf, hostname and trust store are written to
  /etc/netns/<netns>/ (where `ip netns exec` finds them for the proxy) and bound into each
  sandbox. resolv.conf is the kubelet's (the node's DNS on its bridge, the namespace's search path,
  `ndots:5`) with `timeout:1 attempts:3` (`RESOLV_OPTIONS`).
- emptyDir volumes belong to the pod, not to a container: made when the pod is created
  (mode 0777, as the kubelet makes them), kept across container restarts, shared by every
  container that mounts them, removed with the pod. Medium "Memory" lives in the runtime
  directory (a tmpfs), anything else on disk in the state directory.
- configMap and secret volumes are written when the pod is created (`podfiles`), in memory
  and out of a sidecar's sight, and are read-only in every container that mounts them.
- A container of an image runs on the image's layer (`images`, `podfiles.make_layer`),
  made anew for each run; its volumes are mounted over it.
- With `shareProcessNamespace`, a pod-level holder (a sandbox running `sleep infinity`, the
  pause container of a container runtime) owns the PID namespace that its app containers
  join; it is recorded as a process of the pod and ends with it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from meshgate.runtime import (
    capture,
    envoy,
    images,
    manifest,
    names,
    netns,
    podfiles,
    procs,
    sandbox,
)
from meshgate.runtime.podspec import (
    PROXY_CONTAINER,
    ContainerNotRunning,
    ContainerSpec,
    PodSpec,
    VolumeSpec,
    spec_from_dict,
)

PAUSE = "pause"  # the key of a pod's PID namespace holder among its processes
HOSTNAME_MAX = 63


def ids(c: ContainerSpec) -> tuple[int, int]:
    return c.run_as_user, c.run_as_group if c.run_as_group is not None else 0


def caps(c: ContainerSpec) -> list[str] | None:
    """The proxy keeps its own setup (it runs unprivileged); apps get their set, by
    default the container runtime's, which lacks NET_ADMIN: an app cannot undo capture."""
    if c.name == PROXY_CONTAINER:
        return None
    return list(envoy.DEFAULT_CAPABILITIES) if c.capabilities is None else c.capabilities


def hostname(pod_name: str) -> str:
    """The kubelet's rule: the pod's name, cut to a hostname's 63 characters."""
    return pod_name[:HOSTNAME_MAX].rstrip("-.")


# The kubelet's ndots:5, and a resolver that asks again after 1 s (glibc's and c-ares'
# default: 5 s). The mesh DNS is one process on the node: when it dies, the control plane
# starts it again within about half a second. Meanwhile the first lookups fail at once (ICMP
# port unreachable), but the kernel rate-limits those errors per peer (a burst of 6, then 1
# a second: net.ipv4.icmp_ratelimit), so the next queries get no answer at all, and with
# the default timeout each lookup caught so stalled 5 s. Three attempts of 1 s still wait
# far less before giving up than the default's two of 5 s.
RESOLV_OPTIONS = "ndots:5 timeout:1 attempts:3"


class Launcher:
    """Builds the argv that start and enter the containers of one mesh's pods."""

    def __init__(self, state_dir: Path, mesh_id: str, man: manifest.Manifest) -> None:
        self.state_dir = state_dir
        self.mesh_id = mesh_id
        self.manifest = man
        self._cgroup: Path | bool | None = False  # False: not looked up yet
        # The DNS server pods name: the node's own (a joined node's is its bridge address).
        self.nameserver = names.BRIDGE_IP

    def pod_runtime_dir(self, namespace: str, name: str) -> Path:
        return names.runtime_dir(self.mesh_id) / "pods" / names.pod_id(namespace, name)

    # -- files the pod sees ------------------------------------------------------------------

    def write_etc(self, spec: PodSpec, ns: str, ip: str) -> None:
        d = names.etc_netns_dir(ns)
        d.parent.mkdir(mode=0o755, exist_ok=True)
        d.mkdir(mode=0o755, exist_ok=True)
        search = f"{spec.namespace}.svc.cluster.local svc.cluster.local cluster.local"
        (d / "resolv.conf").write_text(
            f"nameserver {self.nameserver}\nsearch {search}\noptions {RESOLV_OPTIONS}\n"
        )
        (d / "hosts").write_text(
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{spec.name}\n"
        )
        (d / "hostname").write_text(f"{hostname(spec.name)}\n")
        for f in ("resolv.conf", "hosts", "hostname"):
            os.chmod(d / f, 0o644)
        self._write_trust(d)

    def _write_trust(self, etc: Path) -> None:
        """With a simulated world, the pod trusts the world CA as it would the public CAs:
        `/etc/netns/NS/ssl` (the host's bundle plus the world CA) replaces `/etc/ssl`, for
        this pod only; the host's trust is untouched."""
        world_ca = names.runtime_dir(self.mesh_id) / "world-ca.pem"
        if not world_ca.exists():
            return
        certs = etc / "ssl" / "certs"
        certs.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(etc / "ssl", 0o755)
        host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        bundle = host_bundle.read_bytes() if host_bundle.exists() else b""
        if bundle and not bundle.endswith(b"\n"):
            bundle += b"\n"
        (certs / "ca-certificates.crt").write_bytes(bundle + world_ca.read_bytes())
        os.chmod(certs / "ca-certificates.crt", 0o644)
        host_cnf = Path("/etc/ssl/openssl.cnf")
        if host_cnf.exists():
            shutil.copyfile(host_cnf, etc / "ssl" / "openssl.cnf")
            os.chmod(etc / "ssl" / "openssl.cnf", 0o644)

    def write_bootstrap(self, spec: PodSpec) -> Path:
        """The proxy's bootstrap, which holds its xDS credential: for root and the proxies'
        group only (and, through its sandbox, for that one proxy only)."""
        assert spec.proxy is not None
        d = self.pod_runtime_dir(spec.namespace, spec.name)
        self.manifest.record_dir(d)
        d.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        d.mkdir(mode=0o750, exist_ok=True)
        os.chown(d, 0, envoy.PROXY_GID)
        os.chmod(d, 0o750)
        path = d / "envoy.json"
        tmp = d / ".envoy.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(spec.proxy.bootstrap, indent=1, sort_keys=True))
        os.chown(tmp, 0, envoy.PROXY_GID)
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
        return path

    # -- volumes -----------------------------------------------------------------------------

    def volume_dir(self, namespace: str, name: str, vol: VolumeSpec) -> Path:
        if vol.source != "emptyDir":
            return self._config_volumes(namespace, name) / vol.name
        if vol.medium == "Memory":
            return self.pod_runtime_dir(namespace, name) / "volumes" / vol.name
        return self.state_dir / "volumes" / names.pod_id(namespace, name) / vol.name

    def _config_volumes(self, namespace: str, name: str) -> Path:
        """ConfigMap and Secret files: in memory, root's only, and never in the pod's
        runtime directory (which its proxy's sandbox shows)."""
        return names.runtime_dir(self.mesh_id) / "config-volumes" / names.pod_id(namespace, name)

    def layer_dir(self, namespace: str, name: str, container: str) -> Path:
        return self.state_dir / "layers" / names.pod_id(namespace, name) / container

    def make_volumes(self, spec: PodSpec) -> None:
        for vol in spec.volumes:
            d = self.volume_dir(spec.namespace, spec.name, vol)
            if vol.source != "emptyDir":
                if not vol.error:
                    self.manifest.record_dir(self._config_volumes(spec.namespace, spec.name))
                    podfiles.write_volume(d, vol)
                continue
            if vol.medium == "Memory":
                self.manifest.record_dir(self.pod_runtime_dir(spec.namespace, spec.name))
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o777)  # an emptyDir is world-writable, whatever the container's user

    def remove_volumes(self, namespace: str, name: str) -> None:
        # In memory, they go with the pod's runtime directory.
        shutil.rmtree(self.state_dir / "volumes" / names.pod_id(namespace, name), True)
        shutil.rmtree(self._config_volumes(namespace, name), True)
        shutil.rmtree(self.state_dir / "layers" / names.pod_id(namespace, name), True)

    def _mounts(self, rec: dict[str, Any], c: ContainerSpec) -> tuple[sandbox.Mount, ...]:
        vols = {v.name: v for v in spec_from_dict(rec["spec"]).volumes}
        out = []
        for m in c.mounts:
            vol = vols[m.name]
            src = self.volume_dir(rec["namespace"], rec["name"], vol)
            if m.sub_path:
                src = src / m.sub_path
                if not os.path.lexists(src):
                    src.mkdir(mode=0o777, parents=True, exist_ok=True)  # as the kubelet does
            # ConfigMap and Secret volumes are read-only whatever the mount says.
            read_only = m.read_only or vol.source != "emptyDir"
            out.append(sandbox.Mount(str(src), m.mount_path, read_only))
        return tuple(out)

    def image_layer(
        self, rec: dict[str, Any], c: ContainerSpec, image: images.Image
    ) -> tuple[sandbox.Mount, ...]:
        """The image's layer for a new run of container `c` (see `podfiles.make_layer`)."""
        base = self.layer_dir(rec["namespace"], rec["name"], c.name)
        return podfiles.make_layer(base, image.layer, [m.mount_path for m in c.mounts])

    @staticmethod
    def volume_error(rec: dict[str, Any], c: ContainerSpec) -> str:
        """Why a volume container `c` mounts cannot be set up ("" if none), as the kubelet
        reports it: `MountVolume.SetUp failed for volume "V" : configmap "C" not found`."""
        vols = {v.name: v for v in spec_from_dict(rec["spec"]).volumes}
        for m in c.mounts:
            vol = vols.get(m.name)
            if vol is not None and vol.error:
                return f'MountVolume.SetUp failed for volume "{vol.name}" : {vol.error}'
        return ""

    # -- the proxy cgroup --------------------------------------------------------------------

    def proxy_cgroup(self, rec: dict[str, Any] | None = None) -> Path | None:
        """The mesh's proxy cgroup (made and recorded on first use); None: uid fallback.
        A pod whose capture rules were installed without one keeps the fallback."""
        if rec is not None and rec.get("proxy_cgroup", "") is None:
            return None
        if self._cgroup is False:
            path = capture.proxy_cgroup(self.mesh_id)
            if path is not None:
                self.manifest.record_cgroup(path)
            self._cgroup = capture.ensure_proxy_cgroup(self.mesh_id)
        return self._cgroup if isinstance(self._cgroup, Path) else None

    # -- starting and entering ---------------------------------------------------------------

    def app_sandbox(
        self,
        rec: dict[str, Any],
        c: ContainerSpec,
        pidns_fd: int | None = None,
        layer: tuple[sandbox.Mount, ...] = (),
    ) -> sandbox.Sandbox:
        """An app's sandbox: its image's layer (`layer`), then its volumes on top."""
        return sandbox.Sandbox(
            hostname=hostname(rec["name"]),
            files=self._files(rec),
            working_dir=c.working_dir or "/",
            hidden=(str(self.state_dir), str(names.RUN_ROOT)),
            mounts=layer + self._mounts(rec, c),
            pidns_fd=pidns_fd,
        )

    @staticmethod
    def _files(rec: dict[str, Any]) -> dict[str, str]:
        """The pod's own /etc files. Every sandbox of the pod gets all of them: bwrap starts
        under `ip netns exec`, which has already bound them over the host's, so the host's
        (and what they hold, such as /etc/ssl/private) are not what bwrap would find."""
        etc = names.etc_netns_dir(rec["netns"])
        return {f"/etc/{n.name}": str(n) for n in sorted(etc.iterdir())} if etc.is_dir() else {}

    def launch_prefix(
        self,
        rec: dict[str, Any],
        c: ContainerSpec,
        pidns_fd: int | None = None,
        layer: tuple[sandbox.Mount, ...] = (),
    ) -> list[str]:
        """How a container's process starts: the proxy in the pod's network namespace and
        the proxy cgroup; an app in a sandbox of its own inside the pod's network."""
        uid, gid = ids(c)
        priv = envoy.setpriv_argv(uid, gid, caps(c))
        ns = netns.exec_prefix(rec["netns"])
        if c.name == PROXY_CONTAINER:
            box = sandbox.bwrap_argv(self.proxy_sandbox(rec, c))
            return capture.in_proxy_cgroup(self.proxy_cgroup(rec), [*ns, *box, *priv])
        return [*ns, *sandbox.bwrap_argv(self.app_sandbox(rec, c, pidns_fd, layer)), *priv]

    def proxy_sandbox(self, rec: dict[str, Any], c: ContainerSpec) -> sandbox.Sandbox:
        """The proxy's: its pod directory and Envoy binary read-only, the xDS socket."""
        pod_dir = self.pod_runtime_dir(rec["namespace"], rec["name"])
        binary_dir = Path(c.argv[0]).parent
        mounts = [sandbox.Mount(str(pod_dir), str(pod_dir), read_only=True)]
        if not sandbox.sees(str(binary_dir)):
            mounts.append(sandbox.Mount(str(binary_dir), str(binary_dir), read_only=True))
        xds = names.xds_socket(self.mesh_id).parent  # the directory: a new socket shows too
        if xds.exists():
            mounts.append(sandbox.Mount(str(xds), str(xds)))
        return sandbox.Sandbox(
            hostname=hostname(rec["name"]),
            files=self._files(rec),
            working_dir="/",
            hidden=(str(self.state_dir), str(names.RUN_ROOT)),
            mounts=tuple(mounts) + self._mounts(rec, c),  # a gateway's volumes
        )

    def enter_prefix(self, rec: dict[str, Any], c: ContainerSpec, pid: int | None) -> list[str]:
        """The argv prefix that runs a command where container `c` runs, as its user: inside
        its sandbox for an app (`pid`: its live bwrap), in the pod's network and, for a
        sidecar's proxy, the proxy cgroup (exempt from capture, as Istio's exec as uid 1337
        is). A gateway's proxy has no capture to be exempt from, and its cgroup is what the
        SSRF guard judges: a command exec'd there stays out of it, so it reaches the admin
        port on loopback as `kubectl exec` into an Istio gateway does."""
        uid, gid = ids(c)
        priv = envoy.setpriv_argv(uid, gid, caps(c))
        inner = None if pid is None else sandbox.entry_pid(pid)
        if inner is None:
            crec = rec["containers"][c.name]
            why = f"{crec['state']}: {crec['reason']}" if crec["reason"] else crec["state"]
            raise ContainerNotRunning(
                f"container {c.name} is not running in pod {rec['name']} ({why})"
            )
        if c.name == PROXY_CONTAINER and "proxy_cgroup" in rec:  # recorded with capture
            return capture.in_proxy_cgroup(
                self.proxy_cgroup(rec), [*sandbox.enter_argv(inner), *priv]
            )
        return [*sandbox.enter_argv(inner), *priv]

    # -- a shared PID namespace --------------------------------------------------------------

    def pause_argv(self, rec: dict[str, Any]) -> list[str]:
        """The pod's PID namespace holder: a minimal sandbox sleeping forever, with no
        capability it could use (its bwrap is pid 1 and reaps what the containers orphan)."""
        holder = sandbox.Sandbox(hostname=hostname(rec["name"]), files=self._files(rec))
        box = sandbox.bwrap_argv(holder)
        nobody = envoy.setpriv_argv(65534, 65534, [])
        return [*netns.exec_prefix(rec["netns"]), *box, *nobody, "sleep", "infinity"]

    @staticmethod
    def pause_alive(rec: dict[str, Any]) -> bool:
        pause = rec.get("pause")
        if not pause:
            return False
        return procs.is_alive(procs.ProcId(pause["pid"], pause["start_time"]))

    @staticmethod
    def open_pidns(rec: dict[str, Any]) -> int | None:
        """A descriptor of the pod's shared PID namespace (the caller closes it), or None."""
        pause = rec.get("pause")
        inner = sandbox.container_pid(pause["pid"]) if pause else None
        if inner is None:
            return None
        try:
            return os.open(f"/proc/{inner}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
