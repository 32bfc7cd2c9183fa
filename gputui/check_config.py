"""``gputui check-config``: is the config right, and can every host be reached?

Parses the config, shows what ssh_config makes of each host (real name,
user, port, jump hosts), tries each host once, and prints what worked and
what did not. The exit status is non-zero when anything failed, so that it
can gate a deployment.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gputui import config as cfg
from gputui.fleet.store import FleetStore
from gputui.render import fmt
from gputui.snapshot import collect
from gputui.sources.fleet import sources_for
from gputui.transport.ssh_resolve import resolve


def run(path: Path, timeout: float) -> tuple[int, str]:
    """The exit status and the report: 2 when the config cannot be read (the report is the error),
    1 when it has a problem only a running dashboard would find (a theme) or a host failed."""
    try:
        config = cfg.load(path)
    except cfg.ConfigError as exc:
        return 2, str(exc)
    problems = [f"{path}: {p}" for p in dashboard_problems(config)]
    verdict = "valid" if not problems else f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    lines = [*problems, f"{path}: {verdict} ({len(config.hosts)} hosts, {len(config.groups)} groups)"]
    if not config.hosts:
        return (1 if problems else 0), "\n".join([*lines, "no hosts to try"])
    failed = try_hosts(config, timeout, lines)
    return (1 if failed or problems else 0), "\n".join(lines)


def try_hosts(config: cfg.Config, timeout: float, lines: list[str]) -> int:
    """Try every host once and add a line for each to ``lines``; the number that failed."""
    ssh_paths = []
    ssh_cfg = Path(config.ssh.config_file or "~/.ssh/config").expanduser()
    if ssh_cfg.exists():
        ssh_paths = [str(ssh_cfg)]
        lines.append(f"ssh_config: {ssh_cfg}")
    known = Path(config.ssh.known_hosts or "~/.ssh/known_hosts").expanduser()
    lines.append(f"known_hosts: {known}{'' if known.exists() else ' (does not exist yet)'}")
    store = FleetStore()
    for h in config.hosts:
        store.add_host(h.name, tuple(h.tags), h.group)
    asyncio.run(collect(sources_for(config), store, timeout))
    rows = [("HOST", "TRANSPORT", "TARGET", "VIA", "RESULT")]
    failed = 0
    for h in config.hosts:
        record = store.hosts[h.name]
        if h.transport == "local":
            target, via = "this machine", "-"
        else:
            try:
                r = resolve(ssh_paths, h.address or h.name, h.port, h.user)
                target, via = r.target(), r.via()
            except (OSError, ValueError) as exc:
                target, via = f"ssh_config error: {exc}", "-"
        if record.sample is not None and record.hello is not None:
            kind = "reduced (nvidia-smi)" if record.hello.source == "nvidia-smi" else f"agent {record.hello.agent_version}"
            took = fmt(record.hello_after_s, "{:.1f}s")
            result = f"ok: {kind}, {len(record.gpus())} GPUs, driver {fmt(record.hello.driver_version)}, first frame {took}"
        else:
            failed += 1
            result = f"FAILED: {record.error or 'no answer before the timeout'}"
        rows.append((h.name, h.transport, target, via, result))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    lines.append(f"{len(config.hosts) - failed} of {len(config.hosts)} hosts answered")
    return failed


def dashboard_problems(config: cfg.Config) -> list[str]:
    """What the schema lets through but the dashboard would not honour: a theme it does not have."""
    from gputui.ui.themes import theme_names, unknown_theme  # Textual's theme list: only for this command

    problem = unknown_theme(config.theme, theme_names())
    return [problem] if problem else []
