"""``meshgate create KIND NAME ...``: kubectl create's generators for the kinds users type.

Rules (kubectl's):
- Each generator builds the object kubectl would build from its flags and creates it: an
  existing object is kubectl's AlreadyExists error and changes nothing; otherwise it is
  validated and written as ``apply`` writes (``meshgate.cli.writes``), printing
  ``kind.group/name created``.
- ``--dry-run=client`` builds and validates, changes nothing; ``--dry-run=server`` asks the
  control plane (admission included). ``-o yaml|json|name`` prints the object instead of
  the line: with a client dry run exactly as kubectl's generator makes it (with
  ``creationTimestamp: null``, and a namespace only when ``-n`` was given), so it can be
  saved and applied later.
- ``configmap``/``secret generic``: ``--from-literal=KEY=VALUE``, ``--from-file=PATH``
  (key: the file's name), ``--from-file=KEY=PATH``, ``--from-file=DIR`` (each regular
  file directly in it), ``--from-env-file``; a key given twice is an error. ConfigMap
  values that are not UTF-8 go to ``binaryData``; Secret values are base64.
- ``secret tls``: ``--cert``/``--key`` must be a PEM certificate and the private key that
  matches it (kubectl loads the pair the same way); ``type: kubernetes.io/tls``.
- ``role``: one rule per API group of the ``--resource``s (sorted by group), each with all
  ``--verb``s and ``--resource-name``s; resources are resolved by the kinds meshgate knows.
- ``rolebinding``: exactly one of ``--role``/``--clusterrole``; subjects from
  ``--serviceaccount NS:NAME``, ``--user``, ``--group``, in that order.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from meshgate.cli.options import DryRun, Namespace

Obj = dict[str, Any]

EXAMPLES = """Examples:

\b
  meshgate create namespace other
  meshgate create serviceaccount sleep -n other
  meshgate create configmap nginx-conf --from-file=nginx.conf
  meshgate create configmap cfg --from-literal=mode=strict --from-file=conf/
  meshgate create secret generic creds --from-literal=user=admin
  meshgate create secret tls gw-cert --cert=cert.pem --key=key.pem -n istio-system
  meshgate create role reader --verb=get,list --resource=secrets
  meshgate create rolebinding reader --role=reader --serviceaccount=default:sleep
  meshgate create ns other --dry-run=client -o yaml > ns.yaml
"""

app = typer.Typer(
    help="Create a resource from flags (namespace, serviceaccount, configmap, secret, role...).",
    no_args_is_help=True,
    add_completion=False,
    epilog=EXAMPLES,
)


def _group_namespace(namespace: Namespace = None) -> None:
    """kubectl takes ``-n`` anywhere: ``create -n NS secret tls ...``,
    ``create secret -n NS generic ...``."""
    if namespace:
        from meshgate.cli.context import set_global_namespace

        set_global_namespace(namespace)


app.callback()(_group_namespace)

Output = Annotated[
    str,
    typer.Option("--output", "-o", metavar="FORMAT", help="Print the object: yaml, json or name."),
]
FromLiteral = Annotated[
    list[str] | None,
    typer.Option(
        "--from-literal", metavar="KEY=VALUE", help="A key and its literal value; repeatable."
    ),
]
FromFile = Annotated[
    list[str] | None,
    typer.Option(
        "--from-file",
        metavar="[KEY=]PATH",
        help="A file (key: its name, or KEY), or a directory (each file in it); repeatable.",
    ),
]
FromEnvFile = Annotated[
    list[str] | None,
    typer.Option("--from-env-file", metavar="PATH", help="KEY=VALUE lines; repeatable."),
]


# --- building ---------------------------------------------------------------------------


def _meta(name: str, namespace: str | None) -> Obj:
    meta: Obj = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _fail(message: str) -> NoReturn:
    from meshgate.cli.output import fail

    fail(message)


def _add(data: dict[str, bytes], key: str, value: bytes, what: str, name: str) -> None:
    if key in data:
        _fail(
            f"cannot add key {key}, another key by that name already exists in Data for "
            f'{what} "{name}"'
        )
    data[key] = value


def collect_data(
    literals: list[str], files: list[str], env_files: list[str], what: str, name: str
) -> dict[str, bytes]:
    """Keys and raw values from kubectl's ``--from-*`` flags, in the order given."""
    data: dict[str, bytes] = {}
    for item in files:
        key, sep, path_text = item.partition("=")
        if not sep:
            key, path_text = "", item
        path = Path(path_text)
        if path.is_dir():
            if key:
                _fail(f"cannot give a key name for a directory path: {path_text}")
            for child in sorted(path.iterdir()):
                if child.is_file():
                    _add(data, child.name, child.read_bytes(), what, name)
            continue
        try:
            content = path.read_bytes()
        except OSError as exc:
            _fail(f"error reading {path_text}: {exc.strerror or exc}")
        _add(data, key or path.name, content, what, name)
    for item in literals:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"invalid literal source {item}, expected key=value")
        _add(data, key, value.encode(), what, name)
    for env_file in env_files:
        try:
            lines = Path(env_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"error reading {env_file}: {exc}")
        for number, line in enumerate(lines, 1):
            text = line.lstrip()
            if not text or text.startswith("#"):
                continue
            key, sep, value = text.partition("=")
            if not sep:
                _fail(f'{env_file}:{number}: "{text}" is not a valid key=value line')
            _add(data, key, value.encode(), what, name)
    return data


def configmap_object(name: str, namespace: str | None, data: dict[str, bytes]) -> Obj:
    obj: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, namespace)}
    text: dict[str, str] = {}
    binary: dict[str, str] = {}
    for key, value in data.items():
        try:
            text[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(value).decode()
    if text:
        obj["data"] = text
    if binary:
        obj["binaryData"] = binary
    return obj


def secret_object(
    name: str, namespace: str | None, data: dict[str, bytes], secret_type: str | None
) -> Obj:
    obj: Obj = {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, namespace)}
    if data:
        obj["data"] = {k: base64.b64encode(v).decode() for k, v in data.items()}
    if secret_type:
        obj["type"] = secret_type
    return obj


def tls_pair_problem(cert: bytes, key: bytes) -> str | None:
    """Why ``cert`` and ``key`` are not a PEM certificate and its private key, or None."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certificate = x509.load_pem_x509_certificate(cert)
    except ValueError:
        return "failed to find any PEM data in certificate input"
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        return "failed to find any PEM data in key input"
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if certificate.public_key().public_bytes(der, spki) != private.public_key().public_bytes(
        der, spki
    ):
        return "private key does not match public key"
    return None


_VERBS = (
    "*",
    "get",
    "delete",
    "list",
    "create",
    "update",
    "patch",
    "watch",
    "proxy",
    "deletecollection",
    "use",
    "bind",
    "escalate",
    "impersonate",
)


def _split(values: list[str] | None) -> list[str]:
    return [part for value in values or [] for part in value.split(",") if part]


def role_rules(verbs: list[str], resources: list[str], names: list[str]) -> list[Obj]:
    """kubectl create role's rules: one per API group, resources in the order given."""
    from meshgate.api.registry import lookup

    if not verbs:
        _fail("at least one verb must be specified")
    if not resources:
        _fail("at least one resource must be specified")
    for verb in verbs:
        if verb not in _VERBS:
            _fail(f"invalid verb: '{verb}'")
    groups: dict[str, list[str]] = {}
    for text in resources:
        base, _, sub = text.partition("/")
        if base == "*":
            plural, group = "*", base.partition(".")[2]
        else:
            info = lookup(base)
            if info is None:
                _fail(f'the server doesn\'t have a resource type "{base}"')
            plural, group = info.plural, info.group
        resource = f"{plural}/{sub}" if sub else plural
        if resource not in groups.setdefault(group, []):
            groups[group].append(resource)
    rules = []
    for group in sorted(groups):
        rule: Obj = {"apiGroups": [group], "resources": groups[group], "verbs": list(verbs)}
        if names:
            rule["resourceNames"] = list(names)
        rules.append(rule)
    return rules


def binding_subjects(accounts: list[str], users: list[str], groups: list[str]) -> list[Obj]:
    subjects: list[Obj] = []
    for account in accounts:
        ns, sep, name = account.partition(":")
        if not sep or not ns or not name or ":" in name:
            _fail("serviceaccount must be <namespace>:<name>")
        subjects.append({"kind": "ServiceAccount", "name": name, "namespace": ns})
    rbac = "rbac.authorization.k8s.io"
    subjects += [{"apiGroup": rbac, "kind": "User", "name": u} for u in users]
    subjects += [{"apiGroup": rbac, "kind": "Group", "name": g} for g in groups]
    return subjects


# --- creating ---------------------------------------------------------------------------


def create(obj: Obj, explicit_ns: str | None, output: str, dry_run: str) -> None:
    """Create ``obj`` as kubectl create does (see the module's rules)."""
    from meshgate.api.registry import kind_for
    from meshgate.cli.options import dry_run_mode, dry_run_suffix
    from meshgate.cli.output import err, out
    from meshgate.cli.render import to_json, to_yaml
    from meshgate.cli.sources import DEFAULT_NAMESPACE
    from meshgate.cli.writes import already_exists, display_name, write

    if output not in ("", "yaml", "json", "name"):
        _fail(
            f'unable to match a printer suitable for the output format "{output}", '
            "allowed formats are: json,name,yaml"
        )
    mode = dry_run_mode(dry_run)
    info = kind_for(obj["apiVersion"], obj["kind"])
    assert info is not None, obj["kind"]
    shown = dict(obj, metadata={"creationTimestamp": None, **obj["metadata"]})
    if obj["kind"] == "Namespace":
        shown.update(spec={}, status={})
    if info.namespaced:
        obj["metadata"]["namespace"] = explicit_ns or DEFAULT_NAMESPACE
    name = obj["metadata"]["name"]
    if mode != "client" and _exists(info, obj["metadata"].get("namespace", ""), name):
        err(already_exists(info, name))
        raise typer.Exit(1)
    changes = write([obj], mode)
    if mode != "client" and changes and changes[0].object:
        shown = changes[0].object
    if output == "yaml":
        out(to_yaml(shown))
    elif output == "json":
        out(to_json(shown))
    elif output == "name":
        out(display_name(obj))
    else:
        out(f"{display_name(obj)} created{dry_run_suffix(mode)}")


def _exists(info: Any, namespace: str, name: str) -> bool:
    """Stored, or (a Namespace) one that every mesh has without an object."""
    from meshgate.cli.label import WELL_KNOWN_NAMESPACES
    from meshgate.cli.writes import get_one

    if info.kind == "Namespace" and name in WELL_KNOWN_NAMESPACES:
        return True
    return get_one(info, namespace, name) is not None


def _ns(namespace: str | None) -> str | None:
    from meshgate.cli.context import namespace_flag

    return namespace_flag(namespace)


Name = Annotated[str, typer.Argument(metavar="NAME", help="the new object's name")]


def namespace_cmd(name: Name, output: Output = "", dry_run: DryRun = "none") -> None:
    """Create a namespace with the given name."""
    obj: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    create(obj, None, output, dry_run)


def serviceaccount_cmd(
    name: Name, namespace: Namespace = None, output: Output = "", dry_run: DryRun = "none"
) -> None:
    """Create a service account with the given name."""
    ns = _ns(namespace)
    obj: Obj = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, ns)}
    create(obj, ns, output, dry_run)


def configmap_cmd(
    name: Name,
    from_literal: FromLiteral = None,
    from_file: FromFile = None,
    from_env_file: FromEnvFile = None,
    namespace: Namespace = None,
    output: Output = "",
    dry_run: DryRun = "none",
) -> None:
    """Create a config map from files, directories or literal values."""
    ns = _ns(namespace)
    data = collect_data(from_literal or [], from_file or [], from_env_file or [], "ConfigMap", name)
    create(configmap_object(name, ns, data), ns, output, dry_run)


secret_app = typer.Typer(
    help="Create a secret: generic (from files or literals) or tls (a certificate and key).",
    no_args_is_help=True,
    add_completion=False,
)
secret_app.callback()(_group_namespace)


def secret_generic_cmd(
    name: Name,
    from_literal: FromLiteral = None,
    from_file: FromFile = None,
    from_env_file: FromEnvFile = None,
    secret_type: Annotated[
        str | None, typer.Option("--type", metavar="TYPE", help="The secret's type.")
    ] = None,
    namespace: Namespace = None,
    output: Output = "",
    dry_run: DryRun = "none",
) -> None:
    """Create a secret from files, directories or literal values."""
    ns = _ns(namespace)
    data = collect_data(from_literal or [], from_file or [], from_env_file or [], "Secret", name)
    create(secret_object(name, ns, data, secret_type), ns, output, dry_run)


def secret_tls_cmd(
    name: Name,
    cert: Annotated[str, typer.Option("--cert", metavar="PATH", help="PEM certificate file.")],
    key: Annotated[str, typer.Option("--key", metavar="PATH", help="PEM private key file.")],
    namespace: Namespace = None,
    output: Output = "",
    dry_run: DryRun = "none",
) -> None:
    """Create a TLS secret from a certificate and its private key."""
    ns = _ns(namespace)
    try:
        cert_pem, key_pem = Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError as exc:
        _fail(f"open {exc.filename}: {exc.strerror}")
    problem = tls_pair_problem(cert_pem, key_pem)
    if problem:
        _fail(f"failed to load key pair tls: {problem}")
    data = {"tls.crt": cert_pem, "tls.key": key_pem}
    create(secret_object(name, ns, data, "kubernetes.io/tls"), ns, output, dry_run)


def role_cmd(
    name: Name,
    verb: Annotated[
        list[str] | None, typer.Option("--verb", metavar="VERB", help="Verbs (get,list...).")
    ] = None,
    resource: Annotated[
        list[str] | None,
        typer.Option("--resource", metavar="RESOURCE", help="Resources (secrets, pods...)."),
    ] = None,
    resource_name: Annotated[
        list[str] | None,
        typer.Option("--resource-name", metavar="NAME", help="Only these objects by name."),
    ] = None,
    namespace: Namespace = None,
    output: Output = "",
    dry_run: DryRun = "none",
) -> None:
    """Create a role with rules for the given verbs and resources."""
    ns = _ns(namespace)
    obj: Obj = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(name, ns),
        "rules": role_rules(_split(verb), _split(resource), _split(resource_name)),
    }
    create(obj, ns, output, dry_run)


def rolebinding_cmd(
    name: Name,
    role: Annotated[str | None, typer.Option("--role", metavar="ROLE", help="A Role.")] = None,
    clusterrole: Annotated[
        str | None, typer.Option("--clusterrole", metavar="ROLE", help="A ClusterRole.")
    ] = None,
    serviceaccount: Annotated[
        list[str] | None,
        typer.Option("--serviceaccount", metavar="NS:NAME", help="Service accounts to bind."),
    ] = None,
    user: Annotated[
        list[str] | None, typer.Option("--user", metavar="NAME", help="Users to bind.")
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", metavar="NAME", help="Groups to bind.")
    ] = None,
    namespace: Namespace = None,
    output: Output = "",
    dry_run: DryRun = "none",
) -> None:
    """Create a role binding for a Role or ClusterRole."""
    if (role is None) == (clusterrole is None):
        _fail("exactly one of clusterrole or role must be specified")
    ns = _ns(namespace)
    obj: Obj = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(name, ns),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role" if role is not None else "ClusterRole",
            "name": role if role is not None else clusterrole,
        },
    }
    subjects = binding_subjects(serviceaccount or [], user or [], group or [])
    if subjects:
        obj["subjects"] = subjects
    create(obj, ns, output, dry_run)


def _register() -> None:
    from meshgate.cli.helpfmt import Command

    for names, fn in (
        (("namespace", "ns"), namespace_cmd),
        (("serviceaccount", "sa"), serviceaccount_cmd),
        (("configmap", "cm"), configmap_cmd),
        (("role",), role_cmd),
        (("rolebinding",), rolebinding_cmd),
    ):
        for i, verb in enumerate(names):
            app.command(verb, cls=Command, hidden=i > 0)(fn)
    secret_app.command("generic", cls=Command)(secret_generic_cmd)
    secret_app.command("tls", cls=Command)(secret_tls_cmd)
    app.add_typer(secret_app, name="secret")


_register()
