"""DestinationRules consolidated per host, as Istio's push context indexes them.

Rules of this module (Istio's ``setDestinationRules``, ``mergeDestinationRule`` with enhanced
merging, ``PushContext.destinationRule`` and ``SidecarScope.DestinationRule``):
- Rules are taken in order: those with a workloadSelector first, then oldest first
  (creationTimestamp, then name, then namespace). A rule with a workloadSelector is private
  to its namespace whatever its exportTo says.
- Each namespace has a local index (rules visible in their own namespace) and an exported
  index (rules not private to it); the root namespace also keeps its private rules apart.
- Merging into an existing rule for the same host (same namespace and index): when the
  exportTo sets are equal, or the new set is a superset of a non-empty existing one, and
  the selectors do not conflict, the new rule's subsets are appended to the existing one
  (a duplicate subset name keeps the first), and its top-level trafficPolicy is used only
  when the existing one has none. The new rule is also kept on its own unless both have no
  selector (or equal selectors) and equal exportTo.
- Lookup for a client: its own namespace's local index (the root namespace's private index
  for root-namespace clients), then the service namespace's exported rules, then the root
  namespace's, each by most specific host, filtered by exportTo. Of the rules found, one
  whose selector matches the proxy (in the proxy's namespace) wins; else the last rule
  without a selector.
- Merged rules are new values; the resources themselves are never modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from meshgate.model import hosts
from meshgate.model.fields import get, get_list, get_str, str_map


@dataclass(frozen=True)
class ConsolidatedRule:
    host: str  # expanded relative to the rule's namespace
    namespace: str
    export_to: frozenset[str]  # as written ("." kept); empty when unset
    selector: Mapping[str, str] | None  # workloadSelector.matchLabels; None when unset
    rule: Any  # the first rule, with later rules' subsets and policy folded in
    sources: tuple[str, ...]  # "ns/name" of every rule folded into this one


def _meta(rule: Any) -> Any:
    return get(rule, "metadata")


def rule_namespace(rule: Any) -> str:
    return get_str(_meta(rule), "namespace") or "default"


def rule_key(rule: Any) -> str:
    return f"{rule_namespace(rule)}/{get_str(_meta(rule), 'name')}"


def selector_of(rule: Any) -> Mapping[str, str] | None:
    ws = get(get(rule, "spec"), "workload_selector")
    return None if ws is None else str_map(get(ws, "match_labels"))


def _order_key(rule: Any) -> tuple[int, str, str, str]:
    meta = _meta(rule)
    return (
        0 if selector_of(rule) is not None else 1,
        get_str(meta, "creation_timestamp"),
        get_str(meta, "name"),
        rule_namespace(rule),
    )


def with_spec(rule: Any, **changes: Any) -> Any:
    """A copy of ``rule`` whose spec has ``changes`` (typed models and plain dicts alike)."""
    spec = get(rule, "spec")
    if isinstance(rule, dict):
        return {**rule, "spec": {**dict(spec or {}), **changes}}
    return rule.model_copy(update={"spec": spec.model_copy(update=changes)})


def _fold(existing: ConsolidatedRule, rule: Any) -> ConsolidatedRule:
    """``rule``'s subsets and (when missing) top-level policy folded into ``existing``."""
    merged_spec = get(existing.rule, "spec")
    subsets = get_list(merged_spec, "subsets")
    names = {get_str(s, "name") for s in subsets}
    added = [s for s in get_list(get(rule, "spec"), "subsets") if get_str(s, "name") not in names]
    changes: dict[str, Any] = {}
    if added:
        changes["subsets"] = subsets + added
    incoming_policy = get(get(rule, "spec"), "traffic_policy")
    if get(merged_spec, "traffic_policy") is None and incoming_policy is not None:
        changes["traffic_policy"] = incoming_policy
    merged = with_spec(existing.rule, **changes) if changes else existing.rule
    return replace(existing, rule=merged, sources=(*existing.sources, rule_key(rule)))


@dataclass
class RuleIndex:
    """Istio's consolidatedDestRules: host -> rules, exact hosts and wildcards apart."""

    specific: dict[str, list[ConsolidatedRule]] = field(default_factory=dict)
    wildcard: dict[str, list[ConsolidatedRule]] = field(default_factory=dict)

    def add(self, entry: ConsolidatedRule) -> None:
        table = self.wildcard if hosts.is_wildcard(entry.host) else self.specific
        existing = table.get(entry.host)
        if existing is None:
            table[entry.host] = [entry]
            return
        separately = True
        for i, current in enumerate(existing):
            both_without = entry.selector is None and current.selector is None
            both_with = entry.selector is not None and current.selector is not None
            same_selector = dict(entry.selector or {}) == dict(current.selector or {})
            if entry.export_to == current.export_to:
                separately = not (both_without or (both_with and same_selector))
            elif current.export_to and entry.export_to >= current.export_to:
                separately = True
            else:
                separately = True
                continue
            if both_with and not same_selector:
                separately = True
                continue
            if both_without or (both_with and same_selector):
                separately = False
            existing[i] = _fold(current, entry.rule)
        if separately:
            existing.append(entry)

    def most_specific(self, hostname: str) -> list[ConsolidatedRule] | None:
        """Rules for the most specific host covering ``hostname`` (Istio's
        MostSpecificHostMatch: the exact host, else the longest matching wildcard)."""
        if not hosts.is_wildcard(hostname):
            found = self.specific.get(hostname)
            if found is not None:
                return found
        elif hostname in self.wildcard:
            return self.wildcard[hostname]
        best: str | None = None
        for pattern in self.wildcard:
            if hosts.subset_of(hostname, pattern) and (
                best is None or hosts.specificity_key(pattern) < hosts.specificity_key(best)
            ):
                best = pattern
        return self.wildcard[best] if best is not None else None


@dataclass
class DestinationRuleIndex:
    local: dict[str, RuleIndex]
    exported: dict[str, RuleIndex]
    root_local: RuleIndex
    root_namespace: str

    def lookup(
        self,
        client_namespace: str,
        service_namespace: str,
        hostname: str,
        labels: Mapping[str, str] | None = None,
    ) -> ConsolidatedRule | None:
        """The rule a proxy in ``client_namespace`` (with ``labels``) applies to a host."""
        found = self.candidates(client_namespace, service_namespace, hostname)
        catch_all = None
        for entry in found:
            if entry.selector is None:
                catch_all = entry
            elif (
                labels is not None
                and entry.namespace == client_namespace
                and all(labels.get(k) == v for k, v in entry.selector.items())
            ):
                return entry
        return catch_all

    def candidates(
        self, client_namespace: str, service_namespace: str, hostname: str
    ) -> list[ConsolidatedRule]:
        if client_namespace != self.root_namespace:
            own = self.local.get(client_namespace)
            found = own.most_specific(hostname) if own is not None else None
        else:
            found = self.root_local.most_specific(hostname)
        if found is not None:
            return found
        for ns in (service_namespace, self.root_namespace):
            if not ns:
                continue
            exported = self._exported(ns, hostname, client_namespace)
            if exported:
                return exported
        return []

    def _exported(self, owner: str, hostname: str, client: str) -> list[ConsolidatedRule]:
        index = self.exported.get(owner)
        found = index.most_specific(hostname) if index is not None else None
        if not found:
            return []
        return [e for e in found if not e.export_to or "*" in e.export_to or client in e.export_to]


def build_index(
    rules: Iterable[Any], root_namespace: str, default_export: Iterable[str] = ()
) -> DestinationRuleIndex:
    """``default_export``: MeshConfig's defaultDestinationRuleExportTo, the exportTo of
    a rule that sets none (empty: exported to all)."""
    default = tuple(default_export)
    local: dict[str, RuleIndex] = {}
    exported: dict[str, RuleIndex] = {}
    root_local = RuleIndex()
    for rule in sorted(rules, key=_order_key):
        ns = rule_namespace(rule)
        spec = get(rule, "spec")
        selector = selector_of(rule)
        # Rules with a workload selector are never exported, whatever exportTo says.
        export = (
            frozenset({"."})
            if selector is not None
            else frozenset(str(e) for e in (get_list(spec, "export_to") or default))
        )
        entry = ConsolidatedRule(
            host=hosts.expand_short_name(get_str(spec, "host"), ns),
            namespace=ns,
            export_to=export,
            selector=selector,
            rule=rule,
            sources=(rule_key(rule),),
        )
        if not export or "*" in export or "." in export or ns in export:
            local.setdefault(ns, RuleIndex()).add(entry)
        private_only = len(export) == 1 and ("." in export or ns in export)
        if not private_only:
            exported.setdefault(ns, RuleIndex()).add(entry)
        elif ns == root_namespace:
            root_local.add(entry)
    return DestinationRuleIndex(local, exported, root_local, root_namespace)
