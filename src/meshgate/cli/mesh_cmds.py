"""Verbs that run the mesh itself: ``up``, ``down``, ``status``, ``proxy-status``.

Rules: these verbs talk to the control-plane process (or start/stop it); they print one
line per fact, and exit non-zero only when the action failed — ``up`` on a running mesh
and ``down`` on a stopped one succeed, as the issue asks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

StatusOutput = Annotated[
    str | None,
    typer.Option(
        "-o",
        "--output",
        metavar="FORMAT",
        help="json: the control plane's status as one JSON object (default: a line per fact).",
    ),
]


def parse_duration(text: str, flag: str, minimum: float = 0) -> float:
    """`24h`, `90m`, `30s`, `1h30m` in seconds; ValueError naming `flag` otherwise."""
    import re

    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not text.strip() or parts is None:
        raise ValueError(f"{flag}: {text!r} is not a duration such as 24h, 90m or 30s")
    hours, minutes, seconds = (int(g or 0) for g in parts.groups())
    total = float(hours * 3600 + minutes * 60 + seconds)
    if total < minimum:
        raise ValueError(f"{flag}: {text!r} is shorter than {minimum:g}s")
    return total


def parse_grace(text: str) -> float:
    """--node-monitor-grace-period: at least 2 s (agents report every second)."""
    from meshgate.server.lifecycle import StartError

    try:
        return parse_duration(text, "--node-monitor-grace-period", minimum=2)
    except ValueError as exc:
        raise StartError(str(exc)) from None


def parse_ttl(text: str) -> float:
    """--workload-cert-ttl: at least 10 s (half of it is when a certificate is re-issued)."""
    from meshgate.server.lifecycle import StartError

    try:
        return parse_duration(text, "--workload-cert-ttl", minimum=10)
    except ValueError as exc:
        raise StartError(str(exc)) from None


def user_ca(home: Path, cert: str | None, key: str | None, root: str | None) -> None:
    """Install the user's CA in the state directory before the control plane starts."""
    from meshgate.security.ca import UserCAError, install_user_ca
    from meshgate.server.lifecycle import StartError

    if not cert or not key:
        raise StartError("--ca-cert and --ca-key go together")
    try:
        roots = Path(root).read_bytes() if root else None
        install_user_ca(home, Path(cert).read_bytes(), Path(key).read_bytes(), roots)
    except OSError as exc:
        raise StartError(f"cannot read the CA: {exc}") from None
    except UserCAError as exc:
        raise StartError(f"--ca-cert {cert}: {exc}") from None


def choose_store(home: Path, url: str | None, options: dict[str, str | None]) -> None:
    """``up --store``: check that the store answers and remember it in the state directory
    (every later command and the control plane open what it remembers)."""
    from meshgate.server.lifecycle import StartError, is_running
    from meshgate.store import StoreError, open_store, store_choice

    if url is None:
        if any(options.values()):
            raise StartError("--etcd-* options go with --store etcd://HOST:PORT[,...]")
        if not (home / "store.json").exists():
            return
        try:  # the remembered store: does it answer?
            open_store(home).close()
        except (ValueError, StoreError) as exc:
            raise StartError(str(exc)) from None
        return
    if is_running(home):
        running = store_choice(home)["url"]
        if running != url:
            raise StartError(
                f"the control plane runs on the store {running}, not {url}: "
                "`meshgate down` first to switch stores"
            )
    try:
        open_store(home, url, **options).close()
    except (ValueError, StoreError) as exc:
        raise StartError(str(exc)) from None


def register(app: typer.Typer) -> None:
    from meshgate.cli.helpfmt import Command

    @app.command(cls=Command, rich_help_panel="Mesh")
    def up(
        world: Annotated[
            str | None,
            typer.Option(
                "--world",
                metavar="WORLD",
                help="Simulated internet: 'demo' (aliyun.com, httpbin.org...) or a world file. "
                "Without it (and without --uplink), nothing routes out of the mesh.",
            ),
        ] = None,
        uplink: Annotated[
            bool | None,
            typer.Option(
                "--uplink/--no-uplink",
                help="Link the mesh to the network this command runs in (real egress: a veth "
                "pair, a default route and source NAT, all undone by `down`; see "
                "docs/uplink.md), and forward DNS names the mesh does not know. Kept in the "
                "state directory's config for later `up`s (default: as last time, else off).",
            ),
        ] = None,
        uplink_cidr: Annotated[
            str | None,
            typer.Option(
                "--uplink-cidr",
                metavar="CIDR",
                help="The uplink's link network, /30 or wider, clear of the mesh's ranges "
                "(default 169.254.34.0/30; kept in the config).",
            ),
        ] = None,
        dns_upstream: Annotated[
            str | None,
            typer.Option(
                "--dns-upstream",
                metavar="IP[:PORT],...",
                help="Resolvers the mesh's DNS forwards other names to, with --uplink "
                "(default: the nameservers of /etc/resolv.conf; kept in the config; '' "
                "goes back to the default).",
            ),
        ] = None,
        concurrency: Annotated[
            int,
            typer.Option(metavar="N", help="Worker threads of each Envoy (its --concurrency)."),
        ] = 1,
        timeout: Annotated[
            float, typer.Option(metavar="SECONDS", help="Seconds to wait for readiness.")
        ] = 60.0,
        workload_cert_ttl: Annotated[
            str,
            typer.Option(
                "--workload-cert-ttl",
                metavar="DURATION",
                help="Lifetime of each proxy's mesh certificate (re-issued at half of it), "
                "e.g. 24h, 90m, 30s.",
            ),
        ] = "24h",
        node_monitor_grace_period: Annotated[
            str,
            typer.Option(
                "--node-monitor-grace-period",
                metavar="DURATION",
                help="How long a joined node may go without reporting before it is NotReady "
                "(its pods are then evicted once their tolerations run out: docs/nodes.md).",
            ),
        ] = "40s",
        ca_cert: Annotated[
            str | None,
            typer.Option(
                "--ca-cert",
                metavar="PATH",
                help="Your own CA (a root, or an intermediate followed by its chain) to sign "
                "the mesh's certificates instead of a generated root; needs --ca-key.",
            ),
        ] = None,
        ca_key: Annotated[
            str | None,
            typer.Option("--ca-key", metavar="PATH", help="The private key of --ca-cert."),
        ] = None,
        ca_root: Annotated[
            str | None,
            typer.Option(
                "--ca-root",
                metavar="PATH",
                help="The root(s) proxies trust (default: the last certificate of --ca-cert).",
            ),
        ] = None,
        include_ip_ranges: Annotated[
            str | None,
            typer.Option(
                "--include-ip-ranges",
                metavar="CIDRS",
                help="Istio's values.global.proxy.includeIPRanges: the outbound ranges "
                "sidecars capture ('*' all, '' none), for pods started from now on; kept in "
                "the MeshConfig (`meshgate install --set` changes it too).",
            ),
        ] = None,
        exclude_ip_ranges: Annotated[
            str | None,
            typer.Option(
                "--exclude-ip-ranges",
                metavar="CIDRS",
                help="Istio's values.global.proxy.excludeIPRanges: outbound ranges that go "
                "direct, past the sidecar, for pods started from now on; kept in the MeshConfig.",
            ),
        ] = None,
        store: Annotated[
            str | None,
            typer.Option(
                "--store",
                metavar="URL",
                help="Where the configuration is kept: 'sqlite' (a file in the state "
                "directory, the default) or etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (an "
                "etcd v3 cluster several control planes can share; docs/store.md). Kept in "
                "the state directory: later commands and `up`s use the same store.",
            ),
        ] = None,
        etcd_cacert: Annotated[
            str | None,
            typer.Option(
                "--etcd-cacert",
                metavar="PATH",
                help="etcd's CA bundle: talk TLS to etcd (as etcdctl --cacert).",
            ),
        ] = None,
        etcd_cert: Annotated[
            str | None,
            typer.Option(
                "--etcd-cert",
                metavar="PATH",
                help="Client certificate for etcd (as etcdctl --cert); needs --etcd-key.",
            ),
        ] = None,
        etcd_key: Annotated[
            str | None,
            typer.Option("--etcd-key", metavar="PATH", help="Key of --etcd-cert (etcdctl --key)."),
        ] = None,
        etcd_user: Annotated[
            str | None,
            typer.Option(
                "--etcd-user",
                metavar="NAME[:PASSWORD]",
                help="etcd user (as etcdctl --user); the password after ':' or --etcd-password.",
            ),
        ] = None,
        etcd_password: Annotated[
            str | None,
            typer.Option(
                "--etcd-password",
                metavar="PASSWORD",
                envvar="MESHGATE_ETCD_PASSWORD",
                help="Password of --etcd-user (etcdctl --password); kept in the state "
                "directory's store.json (mode 0600).",
            ),
        ] = None,
    ) -> None:
        """Start the control plane in the background and wait until it is ready.

        Example: meshgate up --world demo
        Example: meshgate up --uplink --dns-upstream 192.0.2.53
        Example: meshgate up --world demo --exclude-ip-ranges 198.51.100.10/32
        Example: meshgate up --store etcd://127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
        Example: MESHGATE_HOME=~/.meshgate-2 meshgate up --store etcd://127.0.0.1:2379

        Control planes started with their own MESHGATE_HOME on one etcd are replicas of
        one mesh: each serves the API and xDS, one elected leader runs the controllers,
        and the first one owns the node and its pods (docs/replicas.md).
        """
        from meshgate.home import state_dir
        from meshgate.runtime import uplink as ul
        from meshgate.server.lifecycle import StartError
        from meshgate.server.lifecycle import up as start

        home = state_dir()
        etcd = {
            "cacert": etcd_cacert,
            "cert": etcd_cert,
            "key": etcd_key,
            "user": etcd_user,
            "password": etcd_password,
        }
        try:
            choose_store(home, store, etcd)
        except StartError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        if include_ip_ranges is not None or exclude_ip_ranges is not None:
            from meshgate.cli.install import set_capture_ranges

            # Into the store first: pods that start with the mesh start with these ranges.
            set_capture_ranges(include_ip_ranges, exclude_ip_ranges)
        try:
            ttl = parse_ttl(workload_cert_ttl)
            grace = parse_grace(node_monitor_grace_period)
            if ca_cert or ca_key or ca_root:
                user_ca(home, ca_cert, ca_key, ca_root)
            link = ul.merge_config(ul.load_config(home), uplink, uplink_cidr, dns_upstream)
            started = start(
                home,
                world,
                concurrency=concurrency,
                timeout=timeout,
                cert_ttl=ttl,
                uplink=link,
                node_grace=grace,
            )
        except ul.UplinkError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except StartError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        if started:
            typer.echo(f"control plane started (state directory {home})")
        else:
            typer.echo(f"control plane already running (state directory {home})")

    @app.command(cls=Command, rich_help_panel="Mesh")
    def down(
        force: Annotated[
            bool,
            typer.Option(
                "--force",
                help="Also kill a control plane that runs but does not answer (plain `down` "
                "already cleans up after a crash or kill -9, from the runtime manifest).",
            ),
        ] = False,
    ) -> None:
        """Stop the control plane and remove every pod, namespace, rule and process it made.

        The configuration store is kept: `meshgate up` brings the same mesh back. A replica
        without the node (docs/replicas.md) stops alone: the mesh and its pods run on.
        """
        from meshgate.home import state_dir
        from meshgate.server.lifecycle import down as stop

        home = state_dir()
        replica = _replica_without_node(home)
        if stop(home, force=force):
            if replica:
                typer.echo(
                    f"replica {replica} stopped; the mesh runs on (its node and pods belong "
                    "to the node owner)"
                )
            else:
                typer.echo("mesh stopped and cleaned up")
        else:
            typer.echo(f"nothing was running for {home}")

    @app.command(cls=Command, rich_help_panel="Mesh")
    def status(output: StatusOutput = None) -> None:
        """Show whether the control plane runs, and what it runs."""
        from meshgate.client import Client, NotRunning
        from meshgate.home import state_dir

        _check_output(output)

        home = state_dir()
        try:
            info = Client(home).call("GET", "/v1/status")
        except NotRunning as exc:
            typer.echo(f"not running: {exc}", err=True)
            raise typer.Exit(1) from None
        if output == "json":
            typer.echo(json.dumps(info, indent=2))
            return
        for k, v in info.items():
            if isinstance(v, dict):
                typer.echo(f"{k}:")
                for sub, value in v.items():
                    typer.echo(f"  {sub + ':':<14} {value}")
                continue
            typer.echo(f"{k + ':':<16} {'<none>' if v is None else v}")

    @app.command("proxy-status", cls=Command, rich_help_panel="Mesh")
    def proxy_status(
        pod: Annotated[
            str | None,
            typer.Argument(
                metavar="POD",
                help="One proxy (POD or POD.NAMESPACE): show each xDS type in detail.",
            ),
        ] = None,
        output: Annotated[
            str | None,
            typer.Option(
                "-o",
                "--output",
                metavar="FORMAT",
                help="json: every proxy's state as JSON (default: a table); the names each "
                "proxy subscribed to are listed with POD only (else their count).",
            ),
        ] = None,
    ) -> None:
        """Each proxy's xDS sync state, as istioctl shows it: CDS, LDS, EDS, RDS, ECDS.

        Columns: NAME CLUSTER CDS LDS EDS RDS ECDS ISTIOD VERSION (istioctl's), then MODE
        and ERRORS. ISTIOD is the control plane serving the proxy (meshgate-<mesh id>),
        VERSION its release. MODE: sotw (state of the world: every response holds the
        whole type) or delta (incremental: only changed resources and removals; MeshConfig
        xdsMode or the pod's meshgate.io/xds-mode annotation). With POD, -o json also lists
        the last responses sent (recentSends: type, bytes, and in delta the names carried
        and removed).

        SYNCED: the proxy acknowledged the last version sent. STALE: sent, not yet
        acknowledged. NOT SENT: nothing of that type was sent (meshgate sends no ECDS).
        NACKED: the proxy rejected it and keeps serving its previous version (the ERRORS
        column says why). DISCONNECTED: the proxy's stream closed (its pod went away or is
        restarting); it is dropped from the list 30 s later.
        Example: meshgate proxy-status sleep-xxx.default
        """
        from urllib.parse import urlencode

        from meshgate.client import Client, NotRunning
        from meshgate.home import state_dir

        _check_output(output)
        try:
            # A listing is compact (counts of subscribed names); one proxy comes in full.
            query = f"?{urlencode({'pod': pod})}" if pod is not None else ""
            data = Client(state_dir()).call("GET", f"/v1/proxy-status{query}")
        except NotRunning as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        from meshgate import __version__
        from meshgate.cli import proxy_status as ps
        from meshgate.home import mesh_id

        istiod = ps.control_plane_id(mesh_id(state_dir()))
        proxies = data.get("proxies", [])
        if pod is not None:
            proxies = [p for p in proxies if ps.matches(p, pod)]
            if not proxies:
                typer.echo(f"error: no proxy {pod!r} is connected", err=True)
                raise typer.Exit(1)
        if output == "json":
            typer.echo(json.dumps(proxies, indent=2))
            return
        if pod is not None:
            typer.echo("\n".join(ps.detail_lines(proxies[0], istiod, __version__)))
            return
        typer.echo("\n".join(ps.format_rows(ps.status_rows(proxies, istiod, __version__))))


def _replica_without_node(home: Path) -> str | None:
    """The id of the control plane running for ``home`` if it is a replica without the
    node (its ``down`` stops it alone); None otherwise, or when none answers."""
    from meshgate.client import Client

    try:
        # One short try: `down --force` is for a control plane that does not answer.
        replica = Client(home, retries=0).call("GET", "/v1/status", timeout=2).get("replica")
    except Exception:
        return None
    if isinstance(replica, dict) and replica.get("ownsNode") is False:
        return str(replica.get("id"))
    return None


def _check_output(output: str | None) -> None:
    """Only ``-o json`` (or no -o) is known; anything else ends with kubectl's message."""
    if output not in (None, "json"):
        typer.echo(
            f'error: unable to match a printer suitable for the output format "{output}", '
            "allowed formats are: json",
            err=True,
        )
        raise typer.Exit(1)
