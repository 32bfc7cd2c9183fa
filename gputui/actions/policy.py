"""May this operator do this, there, now? Answered before any host is asked.

The order of refusals is the order an operator fixes them in: actions off,
then read-only, then a reason or ticket that cannot go on record, then the policy, then the blast radius (which ``--force``
lifts, and the audit records that it did).
"""

from __future__ import annotations

from gputui.actions.model import ActionRequest, Operator
from gputui.config import Config, PolicyRule
from gputui.protocol import NODE_ACTIONS, words_problem


def refusal(request: ActionRequest, operator: Operator, config: Config, read_only: bool) -> str | None:
    """Why the action may not run, or None when it may."""
    if not config.actions.enabled:
        return "actions are off: set `enabled = true` under [actions] in the config to allow them"
    if read_only:
        return "gputui runs read-only (--read-only): no action may run"
    words = words_problem(request.reason, request.ticket)
    if words:
        return words
    denied = _policy(request, operator, config)
    if denied:
        return denied
    if not request.force:
        return _blast_radius(request, config)
    return None


def _policy(request: ActionRequest, operator: Operator, config: Config) -> str | None:
    rules = config.actions.policy
    if not rules:
        return None  # enabled without a policy: the local user may run everything within the limits
    groups = {name: _group(config, name) for name in request.hosts}
    for rule in rules:
        if _matches(rule, request.kind, operator, set(groups.values())):
            return None
    where = ", ".join(f"{h} (group {g or 'none'})" for h, g in groups.items())
    return f"policy: no rule lets {operator.label()} run {request.kind} on {where}"


def _group(config: Config, host_name: str) -> str | None:
    host = config.host(host_name)
    return host.group if host is not None else None


def _matches(rule: PolicyRule, kind: str, operator: Operator, groups: set[str | None]) -> bool:
    who = "*" in rule.operators or operator.user in rule.operators or any(k in rule.operators for k in operator.keys)
    what = "*" in rule.actions or kind in rule.actions
    where = "*" in rule.groups or all(g is not None and g in rule.groups for g in groups)
    return who and what and where


def _blast_radius(request: ActionRequest, config: Config) -> str | None:
    limits = config.actions
    hosts = len(request.hosts)
    if hosts > limits.max_hosts:
        return (
            f"blast radius: {request.kind} would touch {hosts} hosts, the limit is {limits.max_hosts} "
            "([actions] max_hosts); use --force if you mean it"
        )
    gpus = request.gpu_count()
    if request.kind not in NODE_ACTIONS and gpus > limits.max_gpus:
        return (
            f"blast radius: {request.kind} would touch {gpus} GPUs, the limit is {limits.max_gpus} "
            "([actions] max_gpus); use --force if you mean it"
        )
    return None
