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
from gputui.transport.from_config import links_for
from gputui.transport.ssh_resolve import resolve


def run(path: Path, timeout: float) -> tuple[int, str]:
    try:
        config = cfg.load(path)
    except cfg.ConfigError as exc:
        return 2, str(exc)
    lines = [f"{path}: valid ({len(config.hosts)} hosts, {len(config.groups)} groups)"]
    if not config.hosts:
        return 0, "\n".join([*lines, "no hosts to try"])
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
    asyncio.run(collect(links_for(config), store, timeout))
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
    return (1 if failed else 0), "\n".join(lines)
