"""ASMEgressTrafficPolicy analyzer: a policy the controller cannot apply.

Rules of this module:
- MG2010 (Error) on each ASMEgressTrafficPolicy that ``controllers.asmegress`` does not
  compile to ``Applied`` against the analyzed resources: the status ``Failed`` (no such
  egress gateway, ports that clash) or ``Conflict`` (a hand-written resource with the name
  of one it generates, or one Istio would merge with it). The message is the status
  message the controller writes, so ``analyze`` and ``get -o yaml`` say the same thing.
- The analyzer compiles from the resources analyzed (store and files alike), so a policy
  file can be checked before it is applied.
"""

from __future__ import annotations

from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext
from meshgate.api.kinds.alibabacloud import ASMEgressTrafficPolicy
from meshgate.controllers import asmegress as compiler


def policies_compile(ctx: AnalysisContext) -> None:
    """MG2010: the policy's compilation is Failed or Conflict."""
    policies = ctx.of(ASMEgressTrafficPolicy)
    if not policies:
        return
    objects = [e.resource.to_wire() for e in ctx.entries]
    results = compiler.compile_all(objects)
    for entry in policies:
        result = results.get((entry.namespace, entry.name))
        if result is None or result.status.get("status") == compiler.APPLIED:
            continue
        ctx.report(
            entry,
            msg.ASM_EGRESS_POLICY_NOT_APPLIED,
            result.status.get("status"),
            result.status.get("message"),
            path=("spec",),
        )
