"""AuthorizationPolicy -> Envoy RBAC filters for one proxy (Istio's authz builder).

What the translator calls: ``http_filters(snapshot, proxy)`` gives the HTTP RBAC filters to
put first in every HTTP connection manager of the proxy (before fault and router), and
``network_filters(snapshot, proxy)`` the network RBAC filters to put before every
``tcp_proxy``. Both are empty when no policy applies, so configs without policies do not
change. Pure: no I/O; the same snapshot and proxy give byte-identical filters.

Rules of this module:
- Policies apply to a workload's inbound side, where it is the server. For a gateway (router)
  that is every listener it serves; for a sidecar its ``virtualInbound`` listener
  (``translate.inbound``), never its outbound listeners.
- Which policies apply: ``security.policies`` (selector or targetRefs, the workload's
  namespace, the root namespace mesh-wide).
- One filter per action, in Istio's order: CUSTOM, AUDIT (Envoy action LOG), DENY, ALLOW.
  Envoy runs them in turn, so a DENY match answers before any ALLOW is looked at; with ALLOW
  policies present a request that none of their rules matches is denied; with none, allowed.
  A filter is made only for an action some policy has.
- Each rule is one Envoy policy named ``ns[NS]-policy[NAME]-rule[i]`` (``security.rbac``
  builds it). A policy without rules (an empty ``spec: {}`` is ALLOW with no rules) is one
  policy ``...-rule[0]`` that matches nothing: as the only ALLOW policy it denies everything;
  as a DENY or AUDIT policy it does nothing.
- ``istio.io/dry-run: "true"`` puts a policy's rules in the filter's ``shadow_rules``
  (stat prefix ``istio_dry_run_allow_``/``istio_dry_run_deny_``): evaluated and counted,
  never enforced. A filter with only dry-run policies enforces nothing.
- CUSTOM needs an external authorizer (``extensionProviders``), which meshgate's MeshConfig
  does not have; Istio fails such a policy closed, and so does meshgate: its rules become
  DENY rules ``istio-ext-authz-<provider>-ns[NS]-policy[NAME]-rule[i]-deny-due-to-bad-CUSTOM-
  action``, one DENY filter per provider (sorted), first in the chain.
- HTTP denials are Envoy's: ``403`` with body ``RBAC: access denied``. The network filter
  (stat prefix ``tcp.``) closes a denied connection.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2

from meshgate.model.fields import get, get_list, get_str, str_map
from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot
from meshgate.security.policies import policies_for
from meshgate.security.rbac import Action, Compiler, Context, Permission, Principal
from meshgate.translate.pb import pack

HTTP_RBAC = "envoy.filters.http.rbac"
NETWORK_RBAC = "envoy.filters.network.rbac"
TCP_STAT_PREFIX = "tcp."
DRY_RUN = "istio.io/dry-run"
EXT_AUTHZ_PREFIX = "istio-ext-authz"
BAD_CUSTOM_SUFFIX = "-deny-due-to-bad-CUSTOM-action"
SHADOW_PREFIX = {"ALLOW": "istio_dry_run_allow_", "DENY": "istio_dry_run_deny_"}
ENVOY_ACTION = {
    "ALLOW": rbac_pb2.RBAC.ALLOW,
    "DENY": rbac_pb2.RBAC.DENY,
    "AUDIT": rbac_pb2.RBAC.LOG,
}
ORDER: tuple[Action, ...] = ("AUDIT", "DENY", "ALLOW")
_ACTIONS: dict[str, Action] = {a: a for a in ORDER}

# A policy without rules: one Envoy policy that no request matches (Istio's matchNever).
MATCH_NEVER = rbac_pb2.Policy(
    permissions=[Permission(not_rule=Permission(any=True))],
    principals=[Principal(not_id=Principal(any=True))],
)
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # Go's strconv.ParseBool


@dataclass
class Rules:
    """The enforced and dry-run Envoy policies of one filter."""

    action: Action
    enforced: dict[str, Any] | None = None
    shadow: dict[str, Any] | None = None

    def rbac(self, policies: dict[str, Any] | None) -> Any:
        if policies is None:
            return None
        return rbac_pb2.RBAC(action=ENVOY_ACTION[self.action], policies=policies)


def _name(policy: Any) -> tuple[str, str]:
    meta = get(policy, "metadata")
    return get_str(meta, "namespace") or "default", get_str(meta, "name")


def _action(policy: Any) -> str:
    return get_str(get(policy, "spec"), "action") or "ALLOW"


def _dry_run(policy: Any) -> bool:
    return str_map(get(get(policy, "metadata"), "annotations")).get(DRY_RUN, "") in _TRUE


def _compile(
    policy: Any, action: Action, trust_domain: str, *, tcp: bool, prefix: str = "", suffix: str = ""
) -> dict[str, Any]:
    """Envoy policies of one AuthorizationPolicy, by name."""
    ns, name = _name(policy)
    rules = get_list(get(policy, "spec"), "rules")
    if not rules:
        return {f"{prefix}ns[{ns}]-policy[{name}]-rule[0]{suffix}": MATCH_NEVER}
    compiler = Compiler(Context(ns, trust_domain), action, tcp=tcp)
    out = {}
    for i, rule in enumerate(rules):
        built = compiler.rule(rule)
        if built is not None:
            out[f"{prefix}ns[{ns}]-policy[{name}]-rule[{i}]{suffix}"] = built
    return out


def build(snapshot: Snapshot, proxy: Proxy, *, tcp: bool) -> list[Rules]:
    """The filters' rules, in chain order (CUSTOM per provider, AUDIT, DENY, ALLOW)."""
    domain = snapshot.mesh.trust_domain
    by_action: dict[Action, Rules] = {}
    custom: dict[str, Rules] = defaultdict(lambda: Rules("DENY", enforced={}))
    for policy in policies_for(snapshot, proxy):
        action = _action(policy)
        if action == "CUSTOM":
            provider = get_str(get(get(policy, "spec"), "provider"), "name")
            rules = custom[provider]
            if not _dry_run(policy):  # Istio's fail-closed deny keeps enforced rules only
                prefix = f"{EXT_AUTHZ_PREFIX}-{provider}-" if provider else f"{EXT_AUTHZ_PREFIX}-"
                compiled = _compile(
                    policy, "DENY", domain, tcp=tcp, prefix=prefix, suffix=BAD_CUSTOM_SUFFIX
                )
                assert rules.enforced is not None
                rules.enforced.update(compiled)
            continue
        act = _ACTIONS.get(action)
        if act is None:
            continue  # validation refuses any other action
        rules = by_action.setdefault(act, Rules(act))
        compiled = _compile(policy, act, domain, tcp=tcp)
        if _dry_run(policy):
            rules.shadow = (rules.shadow or {}) | compiled
        else:
            rules.enforced = (rules.enforced or {}) | compiled
    return [custom[p] for p in sorted(custom)] + [by_action[a] for a in ORDER if a in by_action]


def http_filters(snapshot: Snapshot, proxy: Proxy) -> list[Any]:
    """HTTP RBAC filters for ``proxy``, to go first in each of its HTTP connection managers."""
    result = []
    for rules in build(snapshot, proxy, tcp=False):
        config = http_rbac_pb2.RBAC(rules=rules.rbac(rules.enforced))
        if rules.shadow is not None:
            config.shadow_rules.CopyFrom(rules.rbac(rules.shadow))
            config.shadow_rules_stat_prefix = SHADOW_PREFIX.get(rules.action, "")
        result.append(hcm_pb2.HttpFilter(name=HTTP_RBAC, typed_config=pack(config)))
    return result


def network_filters(snapshot: Snapshot, proxy: Proxy) -> list[Any]:
    """Network RBAC filters for ``proxy``, to go before each ``tcp_proxy`` of its chains."""
    result = []
    for rules in build(snapshot, proxy, tcp=True):
        config = network_rbac_pb2.RBAC(
            rules=rules.rbac(rules.enforced), stat_prefix=TCP_STAT_PREFIX
        )
        if rules.shadow is not None:
            config.shadow_rules.CopyFrom(rules.rbac(rules.shadow))
            config.shadow_rules_stat_prefix = SHADOW_PREFIX.get(rules.action, "")
        result.append(lc.Filter(name=NETWORK_RBAC, typed_config=pack(config)))
    return result
