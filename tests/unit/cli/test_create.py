"""``meshgate create``: kubectl create's generators, their output and what they store."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.cli.conftest import Run


def stored(run: Run, *args: str) -> dict[str, Any]:
    result = run("get", *args, "-o", "yaml")
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = yaml.safe_load(result.stdout)
    return doc


def test_namespace_created_then_already_exists(mg: Run) -> None:
    result = mg("create", "namespace", "other")
    assert (result.exit_code, result.stdout) == (0, "namespace/other created\n")
    again = mg("create", "ns", "other")
    assert again.exit_code == 1
    assert again.stderr == 'Error from server (AlreadyExists): namespaces "other" already exists\n'
    # The namespaces every mesh has exist already, object or not.
    default = mg("create", "ns", "default")
    assert 'namespaces "default" already exists' in default.stderr
    assert stored(mg, "ns", "other")["metadata"]["name"] == "other"


def test_dry_run_client_prints_kubectls_object_and_stores_nothing(mg: Run) -> None:
    result = mg("create", "namespace", "other", "--dry-run=client", "-o", "yaml")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  creationTimestamp: null\n"
        "  name: other\nspec: {}\nstatus: {}\n"
    )
    line = mg("create", "sa", "sleep", "--dry-run")
    assert line.stdout == "serviceaccount/sleep created (dry run)\n"
    assert mg("get", "ns", "other").exit_code == 1
    assert mg("get", "sa", "sleep").exit_code == 1
    # What a dry run prints applies as it is.
    saved = mg("create", "sa", "sleep", "-n", "other", "--dry-run=client", "-o", "yaml").stdout
    assert "namespace: other" in saved
    assert mg("apply", "-f", "-", input=saved).stdout == "serviceaccount/sleep created\n"


def test_configmap_from_literal_file_key_and_directory(mg: Run, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "nginx.conf").write_text("events {}\n")
    (conf / "mime.types").write_text("types {}\n")
    (conf / "sub").mkdir()  # not a regular file: skipped, as kubectl does
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\xff\x00\xfe")
    result = mg(
        "create",
        "configmap",
        "web",
        "--from-literal=mode=strict",
        f"--from-file={conf}",
        f"--from-file=custom={blob}",
        "-n",
        "other",
    )
    assert (result.exit_code, result.stdout) == (0, "configmap/web created\n"), result.output
    cm = stored(mg, "cm", "web", "-n", "other")
    assert cm["data"] == {"mime.types": "types {}\n", "nginx.conf": "events {}\n", "mode": "strict"}
    assert cm["binaryData"] == {"custom": base64.b64encode(b"\xff\x00\xfe").decode()}


def test_configmap_errors_change_nothing(mg: Run, tmp_path: Path) -> None:
    dup = mg("create", "cm", "x", "--from-literal=a=1", "--from-literal=a=2")
    assert dup.exit_code == 1
    assert dup.stderr == (
        "error: cannot add key a, another key by that name already exists in Data for "
        'ConfigMap "x"\n'
    )
    bad = mg("create", "cm", "x", "--from-literal=novalue")
    assert bad.stderr == "error: invalid literal source novalue, expected key=value\n"
    badkey = mg("create", "cm", "x", "--from-literal=bad key=1")
    assert badkey.exit_code == 1 and "[MG1084]" in badkey.stderr
    missing = mg("create", "cm", "x", f"--from-file={tmp_path / 'nope'}")
    assert missing.exit_code == 1 and "No such file or directory" in missing.stderr
    assert mg("get", "cm", "x").exit_code == 1


def test_secret_generic_is_base64(mg: Run) -> None:
    result = mg("create", "secret", "generic", "creds", "--from-literal=user=admin", "-o", "yaml")
    assert result.exit_code == 0, result.output
    secret = stored(mg, "secret", "creds")
    assert secret["data"] == {"user": "YWRtaW4="}
    assert yaml.safe_load(result.stdout)["data"] == {"user": "YWRtaW4="}


def _pair(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_secret_tls_checks_the_pair(mg: Run, tmp_path: Path) -> None:
    cert, key = _pair(tmp_path, "a")
    _, other_key = _pair(tmp_path, "b")
    result = mg(
        "create", "secret", "tls", "gw", f"--cert={cert}", f"--key={key}", "-n", "istio-system"
    )
    assert (result.exit_code, result.stdout) == (0, "secret/gw created\n"), result.output
    secret = stored(mg, "secret", "gw", "-n", "istio-system")
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]) == cert.read_bytes()
    assert base64.b64decode(secret["data"]["tls.key"]) == key.read_bytes()
    wrong = mg("create", "secret", "tls", "gw2", f"--cert={cert}", f"--key={other_key}")
    assert wrong.exit_code == 1
    assert wrong.stderr == (
        "error: failed to load key pair tls: private key does not match public key\n"
    )
    assert mg("get", "secret", "gw2").exit_code == 1


def test_role_and_rolebinding(mg: Run) -> None:
    role = mg(
        "create", "role", "reader", "--verb=get,list", "--resource=secrets,deploy",
        "--resource-name=client-credential",
    )  # fmt: skip
    assert role.stdout == "role.rbac.authorization.k8s.io/reader created\n", role.output
    assert stored(mg, "role", "reader")["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get", "list"],
            "resourceNames": ["client-credential"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": ["get", "list"],
            "resourceNames": ["client-credential"],
        },
    ]
    binding = mg(
        "create", "rolebinding", "reader", "--role=reader",
        "--serviceaccount=default:sleep", "--user=bob",
    )  # fmt: skip
    assert binding.stdout == "rolebinding.rbac.authorization.k8s.io/reader created\n"
    rb = stored(mg, "rolebinding", "reader")
    assert rb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "reader",
    }
    assert rb["subjects"] == [
        {"kind": "ServiceAccount", "name": "sleep", "namespace": "default"},
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"},
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("role", "r", "--verb=run", "--resource=pods"), "error: invalid verb: 'run'\n"),
        (("role", "r", "--resource=pods"), "error: at least one verb must be specified\n"),
        (
            ("role", "r", "--verb=get", "--resource=gadgets"),
            'error: the server doesn\'t have a resource type "gadgets"\n',
        ),
        (
            ("rolebinding", "b", "--serviceaccount=sleep", "--role=r"),
            "error: serviceaccount must be <namespace>:<name>\n",
        ),
        (
            ("rolebinding", "b", "--role=r", "--clusterrole=c"),
            "error: exactly one of clusterrole or role must be specified\n",
        ),
    ],
)
def test_rbac_flag_errors(mg: Run, args: tuple[str, ...], message: str) -> None:
    result = mg("create", *args)
    assert (result.exit_code, result.stderr) == (1, message)


def test_create_over_the_api(
    mg: Run, api: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshgate.cli import context
    from meshgate.cli.api_backend import ApiBackend

    cp, client = api
    monkeypatch.setattr(context, "get_backend", lambda: ApiBackend(client))
    assert mg("create", "ns", "other").stdout == "namespace/other created\n"
    assert mg("create", "ns", "other").exit_code == 1
    before = cp.store.revision()
    dry = mg("create", "cm", "x", "--from-literal=a=b", "--dry-run=server")
    assert dry.stdout == "configmap/x created (server dry run)\n"
    assert cp.store.revision() == before
    assert mg("create", "cm", "x", "--from-literal=a=b").exit_code == 0
    assert [s.key.name for s in cp.store.list(kind="ConfigMap")] == ["x"]
