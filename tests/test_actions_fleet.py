"""Guarded actions against the namespace SSH fleet and a real Slurm controller.

Each action goes through the real CLI (a child ``gputui`` process), over SSH
through the jump host to the host's ``gputui agent --act``, and the test
checks what an operator would: the exit status and the words, the ledger as
the host streams it back in its samples, the simulated compute mode, the
stand-in processes (real processes on this machine), the node as
``scontrol show node`` reports it, and the audit chain. Hosts: gt-a uses the
``ledger`` backend, gt-b ``nvml`` and gt-c ``slurm``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gputui import config as cfg
from gputui.fleet.runner import FleetRunner
from gputui.fleet.store import FleetStore
from gputui.frames import Sample
from gputui.sources.fleet import sources_for
from tests.slurm_cluster import SlurmCluster
from tests.sshfleet import SshFleet
from tests.waiting import wait_until_gone

HOSTS = ["gt-a", "gt-b", "gt-c"]
BACKENDS = {"gt-a": "ledger", "gt-b": "nvml", "gt-c": "slurm"}
PWNED = Path("/tmp/gputui-pwned-fleet")
# Quotes at both ends on purpose: scontrol cuts one off each end unless the value is wrapped.
HOSTILE = f'"it\'s hot"; $(touch {PWNED}) `touch {PWNED}` && rm -rf /\nsecond line: température 温度 ✓ "end"'
CLI_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def slurm(fleet: SshFleet) -> Iterator[SlurmCluster]:
    with SlurmCluster(fleet, nodes=HOSTS) as cluster:
        yield cluster


def write_config(fleet: SshFleet, tmp_path: Path, actions: str = "", hosts: list[str] = HOSTS, **host_extra: str) -> Path:
    """The fleet's config with actions enabled, the ledgers and the audit log
    in ``tmp_path``, and each host's backend; ``host_extra`` adds TOML lines
    to a host (``gt_a='slurm_node = "nope"'``)."""
    text = fleet.config_toml(hosts, gpus=2)
    for name in hosts:
        extra = host_extra.get(name.replace("-", "_"), f'backend = "{BACKENDS[name]}"')
        text = text.replace(f'name = "{name}"\n', f'name = "{name}"\n{extra}\n', 1)
    text += (
        f'\n[actions]\nenabled = true\nstate_dir = "{tmp_path}/state"\n'
        f'audit_log = "{tmp_path}/audit.jsonl"\nterm_wait_s = 2\n{actions}\n'
    )
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@dataclass
class Done:
    status: int
    out: str
    err: str


async def gputui(config: Path, *args: str, stdin: str = "") -> Done:
    """The CLI as an operator runs it; asynchronous so the test's own stream keeps flowing."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gputui", *args, "--config", str(config),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(CLI_TIMEOUT_S):
        out, err = await proc.communicate(stdin.encode())
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def clear_pwned() -> None:
    PWNED.unlink(missing_ok=True)


def pwned() -> bool:
    """Whether a reason was ever run as a command."""
    return PWNED.exists()


def ledger_file(tmp_path: Path, host: str) -> dict[str, Any]:
    path = tmp_path / "state" / f"ledger-{host}.json"
    return json.loads(path.read_text()) if path.exists() else {}


class Watch:
    """The dashboard's view of the hosts: their streamed samples, over SSH."""

    def __init__(self, config: Path) -> None:
        self.store = FleetStore()
        self.runner = FleetRunner(sources_for(cfg.load(config)), self.store)

    async def until(self, host: str, predicate: Callable[[Sample], bool], what: str, timeout: float = 30.0) -> Sample:
        changed = asyncio.Event()
        self.store.listeners.append(changed.set)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    sample = self.store.hosts[host].sample
                    if sample is not None and predicate(sample):
                        return sample
                    changed.clear()
                    await changed.wait()
        except TimeoutError:
            raise AssertionError(f"{host}: no sample with {what} within {timeout:.0f}s") from None
        finally:
            self.store.listeners.remove(changed.set)


@pytest.fixture
async def watch(fleet: SshFleet, slurm: SlurmCluster, tmp_path: Path) -> AsyncIterator[Watch]:
    w = Watch(write_config(fleet, tmp_path))
    w.runner.start()
    try:
        yield w
    finally:
        await w.runner.stop()


def holder(sample: Sample, gpu: int) -> str | None:
    entry = sample.ledger.gpus.get(str(gpu)) if sample.ledger else None
    return entry.holder if entry is not None else None


def gpu_state(sample: Sample, gpu: int) -> str | None:
    entry = sample.ledger.gpus.get(str(gpu)) if sample.ledger else None
    return entry.state if entry is not None else None


# -- reserve, release, expiry, two operators -------------------------------------


async def test_reserve_then_release_over_ssh_shows_in_the_hosts_samples(watch: Watch, fleet: SshFleet, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    done = await gputui(config, "reserve", "gt-a:0,1", "--for", "bob", "--until", "2h", "--reason", "eval", stdin="y\n")
    assert done.status == 0, done.err
    assert "reserve gt-a:0,1" in done.out and "applied" in done.out
    sample = await watch.until("gt-a", lambda s: holder(s, 0) == "bob" and holder(s, 1) == "bob", "both GPUs held for bob")
    assert sample.ledger is not None and sample.ledger.gpus["0"].reason == "eval"
    done = await gputui(config, "release", "gt-a:0,1", "--reason", "eval done", "--yes")
    assert done.status == 0, done.err
    await watch.until("gt-a", lambda s: holder(s, 0) is None and holder(s, 1) is None, "both GPUs free")
    assert [r["status"] for r in audit(tmp_path)] == ["started", "applied", "started", "applied"]


async def test_a_reservation_expires_and_the_gpu_is_free_again(watch: Watch, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    done = await gputui(config, "reserve", "gt-a:1", "--for", "carol", "--until", "3s", "--reason", "short hold", "--yes")
    assert done.status == 0, done.err
    await watch.until("gt-a", lambda s: holder(s, 1) == "carol", "GPU 1 held for carol")
    await watch.until("gt-a", lambda s: holder(s, 1) is None, "carol's hold gone after its end")
    done = await gputui(config, "reserve", "gt-a:1", "--for", "dave", "--reason", "next", "--yes")
    assert done.status == 0, done.err  # not "held by carol": the expired hold no longer counts


async def test_two_operators_on_one_gpu_get_one_success_and_one_conflict(
    fleet: SshFleet, slurm: SlurmCluster, tmp_path: Path
) -> None:
    config = write_config(fleet, tmp_path)
    runs = [gputui(config, "reserve", "gt-a:0", "--for", who, "--reason", f"for {who}", "--yes") for who in ("alice", "bob")]
    first, second = await asyncio.gather(*runs)
    assert sorted([first.status, second.status]) == [0, 1], (first.err, second.err)
    loser = first if first.status else second
    assert "held" in loser.err or "conflict" in loser.err or "changed" in loser.err, loser.err
    gpus = ledger_file(tmp_path, "gt-a")["gpus"]
    assert len(gpus) == 1 and next(iter(gpus.values()))["for"] in ("alice", "bob")


# -- drain with NVML, kill -------------------------------------------------------


async def test_drain_with_nvml_prohibits_compute_and_undrain_restores_it(watch: Watch, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    before = await watch.until("gt-b", lambda s: s.gpus[1].compute_mode is not None, "GPU 1's compute mode")
    was = before.gpus[1].compute_mode
    assert was != "prohibited"
    refused = await gputui(config, "drain", "gt-b:1", "--reason", "xid 48", stdin="yes\n")
    assert refused.status == 1 and "type 'gt-b'" in refused.err, refused.err
    done = await gputui(config, "drain", "gt-b:1", "--reason", "xid 48", stdin="gt-b\n")
    assert done.status == 0, done.err
    assert "PROHIBITED" in done.out and "reboot" in done.out  # the step and the note on what a reboot undoes
    sample = await watch.until("gt-b", lambda s: s.gpus[1].compute_mode == "prohibited", "GPU 1 prohibited")
    assert gpu_state(sample, 1) == "drained" and sample.gpus[0].compute_mode == was
    done = await gputui(config, "undrain", "gt-b:1", "--reason", "reset done", "--yes")
    assert done.status == 0, done.err
    sample = await watch.until("gt-b", lambda s: s.gpus[1].compute_mode == was, f"GPU 1 back to {was}")
    assert gpu_state(sample, 1) is None


async def test_kill_terms_and_a_process_ignoring_term_is_killed_only_when_asked(watch: Watch, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    sample = await watch.until("gt-a", lambda s: bool(s.gpus[0].processes and s.gpus[1].processes), "stand-ins on both GPUs")
    polite, stubborn = sample.gpus[0].processes[0].pid, sample.gpus[1].processes[0].pid
    done = await gputui(config, "kill", f"gt-a:pid={polite}", "--reason", "runaway", "--yes")
    assert done.status == 0, done.err
    assert "SIGTERM" in done.out
    wait_until_gone([polite], timeout=10)

    started = time.monotonic()
    done = await gputui(config, "kill", f"gt-a:pid={stubborn}", "--reason", "stuck", "--yes", "--grace", "1")
    assert done.status == 1
    assert "SIGTERM was not honoured" in done.err and "--kill-after" in done.err, done.err
    os.kill(stubborn, 0)  # still alive: no SIGKILL unless asked
    done = await gputui(config, "kill", f"gt-a:pid={stubborn}", "--reason", "stuck", "--yes", "--grace", "1", "--kill-after")
    assert done.status == 0, done.err
    assert "SIGKILL" in done.out
    wait_until_gone([stubborn], timeout=10)
    assert time.monotonic() - started >= 2.0  # each try gave SIGTERM its full second of grace
    statuses = [r["status"] for r in audit(tmp_path) if r["action"] == "kill"]
    assert statuses == ["started", "applied", "started", "failed", "started", "applied"]


async def test_kill_of_a_pid_not_on_a_gpu_is_refused(fleet: SshFleet, slurm: SlurmCluster, tmp_path: Path) -> None:
    config = write_config(fleet, tmp_path)
    sleeper = await asyncio.create_subprocess_exec("sleep", "600")
    try:
        done = await gputui(config, "kill", f"gt-a:pid={sleeper.pid}", "--reason", "not mine", "--yes", "--kill-after")
        assert done.status == 1 and "not" in done.err and "GPU" in done.err, done.err
        assert sleeper.returncode is None
        os.kill(sleeper.pid, 0)
    finally:
        sleeper.send_signal(signal.SIGKILL)
        await sleeper.wait()


# -- the guard's refusals, dry run -------------------------------------------------


async def test_policy_refusal_and_a_key_fingerprint_rule(fleet: SshFleet, slurm: SlurmCluster, tmp_path: Path) -> None:
    key = (await asyncio.to_thread(_fingerprint, fleet.client_key)).strip()
    rules = (
        '[[actions.policy]]\noperators = ["someone-else"]\nactions = ["*"]\n'
        f'[[actions.policy]]\noperators = ["{key}"]\nactions = ["reserve", "release"]\n'
    )
    config = write_config(fleet, tmp_path, rules)
    done = await gputui(config, "drain", "gt-a:0", "--reason", "xid 79", "--yes")
    assert done.status == 1 and "policy: no rule lets" in done.err and "drain" in done.err, done.err
    done = await gputui(config, "reserve", "gt-a:0", "--reason", "hold", "--yes")
    assert done.status == 0, done.err  # the operator's key (ssh_config's IdentityFile) is in the second rule
    records = audit(tmp_path)
    assert [(r["action"], r["status"]) for r in records] == [("drain", "refused"), ("reserve", "started"), ("reserve", "applied")]
    assert key in records[1]["operator"]["keys"]
    assert next(iter(ledger_file(tmp_path, "gt-a")["gpus"].values()))["state"] == "reserved"


async def test_blast_radius_refusal_and_force(fleet: SshFleet, slurm: SlurmCluster, tmp_path: Path) -> None:
    config = write_config(fleet, tmp_path, "max_gpus = 1\nmax_hosts = 1")
    done = await gputui(config, "reserve", "gt-a:0,1", "--reason", "two GPUs", "--yes")
    assert done.status == 1 and "blast radius" in done.err and "2 GPUs" in done.err, done.err
    done = await gputui(config, "reserve", "gt-a:0", "gt-c:0", "--reason", "two hosts", "--yes")
    assert done.status == 1 and "2 hosts" in done.err, done.err
    assert ledger_file(tmp_path, "gt-a") == {} or not ledger_file(tmp_path, "gt-a").get("gpus")
    done = await gputui(config, "reserve", "gt-a:0", "gt-c:0", "--reason", "two hosts", "--force", stdin="2\n")
    assert done.status == 0, done.err  # over several hosts the count is typed to confirm
    assert [r["status"] for r in audit(tmp_path)] == ["refused", "refused", "started", "applied"]
    assert audit(tmp_path)[-1]["force"] is True


async def test_a_dry_run_previews_exact_commands_and_changes_nothing(watch: Watch, slurm: SlurmCluster, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    sample = await watch.until("gt-c", lambda s: bool(s.gpus[0].processes), "a stand-in on GPU 0")
    pid = sample.gpus[0].processes[0].pid
    done = await gputui(config, "drain-node", "gt-c", "--reason", "psu swap", "--dry-run")
    assert done.status == 0, done.err
    assert "dry run" in done.out
    assert """scontrol update NodeName=gt-c State=DRAIN 'Reason="psu swap"'""" in done.out
    assert str(pid) in done.out and "root" in done.out  # who and what the drain affects
    assert slurm.node_state("gt-c") == "IDLE"
    assert ledger_file(tmp_path, "gt-c").get("node") is None
    assert [r["status"] for r in audit(tmp_path)] == ["dry-run"]


# -- Slurm: drain-node, resume-node, hostile reasons, scontrol errors ------------


async def test_drain_node_and_resume_node_through_slurm_with_a_hostile_reason(
    fleet: SshFleet, slurm: SlurmCluster, tmp_path: Path
) -> None:
    config = write_config(fleet, tmp_path)
    clear_pwned()
    done = await gputui(config, "drain-node", "gt-c", "--reason", HOSTILE, stdin="gt-c\n")
    assert done.status == 0, done.err
    info = await asyncio.to_thread(slurm.show_node, "gt-c")
    assert info.state == "IDLE+DRAIN"
    assert info.reason == HOSTILE  # quotes, ;, $(), newline and non-ASCII: as typed
    assert ledger_file(tmp_path, "gt-c")["node"]["reason"] == HOSTILE
    assert [r["reason"] for r in audit(tmp_path)] == [HOSTILE, HOSTILE]
    done = await gputui(config, "resume-node", "gt-c", "--reason", "fixed", "--yes")
    assert done.status == 0, done.err
    await asyncio.to_thread(slurm.wait_state, "gt-c", "IDLE")
    assert ledger_file(tmp_path, "gt-c").get("node") is None
    assert not pwned()


async def test_a_hostile_reservation_reason_reaches_the_ledger_verbatim(
    fleet: SshFleet, slurm: SlurmCluster, tmp_path: Path
) -> None:
    config = write_config(fleet, tmp_path)
    clear_pwned()
    done = await gputui(config, "reserve", "gt-b:0", "--reason", HOSTILE, "--ticket", "INC-7 $(id)", "--yes")
    assert done.status == 0, done.err
    entry = next(iter(ledger_file(tmp_path, "gt-b")["gpus"].values()))
    assert entry["reason"] == HOSTILE and entry["ticket"] == "INC-7 $(id)"
    assert not pwned()


async def test_an_scontrol_error_reaches_the_operator_and_is_audited(
    fleet: SshFleet, slurm: SlurmCluster, tmp_path: Path
) -> None:
    config = write_config(fleet, tmp_path, gt_a='backend = "slurm"\nslurm_node = "nope"')
    done = await gputui(config, "drain-node", "gt-a", "--reason", "test", stdin="gt-a\n")
    assert done.status == 1
    assert "Invalid node name specified" in done.err, done.err
    failed = audit(tmp_path)[-1]
    assert failed["status"] == "failed" and "Invalid node name specified" in json.dumps(failed)
    assert ledger_file(tmp_path, "gt-a").get("node") is None  # nothing recorded as drained
    assert slurm.node_state("gt-a") == "IDLE"


async def test_the_audit_chain_verifies_after_a_mix_of_outcomes(fleet: SshFleet, slurm: SlurmCluster, tmp_path: Path) -> None:
    config = write_config(fleet, tmp_path, "max_gpus = 1")
    outcomes = [
        await gputui(config, "reserve", "gt-a:0", "--reason", "ok", "--yes"),
        await gputui(config, "reserve", "gt-a:0,1", "--reason", "too many", "--yes"),
        await gputui(config, "undrain", "gt-a:1", "--reason", "not drained", "--yes"),
        await gputui(config, "drain", "gt-a:1", "--reason", "dry", "--dry-run"),
    ]
    assert [o.status for o in outcomes] == [0, 1, 1, 0]
    assert [r["status"] for r in audit(tmp_path)] == ["started", "applied", "refused", "refused", "dry-run"]
    done = await gputui(config, "audit", "verify")
    assert done.status == 0 and "5 records" in done.out, done.out + done.err


def gpu0_shows(panel: Any, words: str) -> Callable[[], bool]:
    """GPU 0's allocation words start with ``words``; with "", that it is held by nobody."""
    if words:
        return lambda: bool(panel.states[0].words.startswith(words))
    return lambda: not panel.states[0].words.startswith(("reserved", "drained"))


def _fingerprint(pub: Path) -> str:
    import asyncssh

    return str(asyncssh.read_public_key(str(pub.with_name(pub.name + ".pub"))).get_fingerprint("sha256"))


# -- the same through the dashboard -------------------------------------------------


async def test_drain_node_and_resume_node_from_the_dashboard(fleet: SshFleet, slurm: SlurmCluster, tmp_path: Path) -> None:
    from gputui.ui.launch import configured_app
    from tests.ui_apps import SIZE, open_allocation, preview, start, status
    from tests.waiting import wait_for

    path = write_config(fleet, tmp_path)
    app = configured_app(path, cfg.load(path))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_allocation(pilot, app, "gt-c")
        for key, reason, word, slurm_state in (("N", "psu swap", "gt-c", "IDLE+DRAIN"), ("M", "psu fixed", "", "IDLE")):
            dialog = await start(pilot, key, reason)
            await pilot.press("enter")
            await wait_for(pilot, lambda d=dialog: d.phase != "asking", "the host's preview", 60)  # type: ignore[misc]
            assert dialog.phase == "preview", status(dialog) + preview(dialog)
            assert "scontrol update NodeName=gt-c" in preview(dialog)
            if word:
                await pilot.press(*word, "enter")  # typed, then Enter in the confirmation box
            else:
                await pilot.click("#apply")  # a resume needs a yes, not a typed word
            try:
                await wait_for(pilot, lambda d=dialog: d.phase == "done", f"the answer to {key}", 60)  # type: ignore[misc]
            except AssertionError:
                raise AssertionError(f"{key}: {dialog.phase}: {status(dialog)} {audit(tmp_path)}") from None
            record = audit(tmp_path)[-1]
            assert record["status"] == "applied", status(dialog)
            assert f"(audit {record['id']})" in status(dialog)
            await asyncio.to_thread(slurm.wait_state, "gt-c", slurm_state)
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is screen, "the dialog to close")
    assert slurm.node_reason("gt-c") is None
    assert [r["action"] for r in audit(tmp_path)] == ["drain-node", "drain-node", "resume-node", "resume-node"]


async def test_kill_from_the_processes_tab_over_ssh(fleet: SshFleet, slurm: SlurmCluster, tmp_path: Path) -> None:
    from textual.widgets import DataTable

    from gputui.ui.launch import configured_app
    from tests.ui_apps import SIZE, open_allocation, preview, start, status
    from tests.waiting import wait_for

    path = write_config(fleet, tmp_path)
    app = configured_app(path, cfg.load(path))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_allocation(pilot, app, "gt-a")
        await pilot.press("4")
        procs = screen.query_one("#procs", DataTable)
        await wait_for(pilot, lambda: procs.row_count > 0, "the process table to fill")
        dialog = await start(pilot, "K", "runaway")
        await pilot.press("enter")
        await wait_for(pilot, lambda: dialog.phase != "asking", "the host's preview", 60)
        assert dialog.phase == "preview", status(dialog) + preview(dialog)
        await pilot.press(*"gt-a", "enter")
        await wait_for(pilot, lambda: dialog.phase == "done", "the host's answer", 60)
        record = audit(tmp_path)[-1]
        assert record["status"] == "applied", status(dialog)
        pid = int(record["targets"][0].split("pid=")[1])
        assert str(pid) in preview(dialog)
    wait_until_gone([pid], timeout=10)


async def test_reserve_release_drain_undrain_from_the_allocation_tab(
    fleet: SshFleet, slurm: SlurmCluster, tmp_path: Path
) -> None:
    from gputui.actions.audit import AuditLog
    from gputui.ui.launch import configured_app
    from gputui.ui.panels.allocation import AllocationPanel
    from tests.ui_apps import SIZE, open_allocation, preview, start, status
    from tests.waiting import wait_for

    path = write_config(fleet, tmp_path)
    app = configured_app(path, cfg.load(path))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_allocation(pilot, app, "gt-b")  # backend nvml: drain changes the compute mode
        panel = screen.query_one(AllocationPanel)
        steps = (("R", "", "reserved for root"), ("X", "", ""), ("D", "gt-b", "drained"), ("U", "", ""))
        for key, word, shown in steps:
            dialog = await start(pilot, key, f"step {key}")
            await pilot.press("enter")
            await wait_for(pilot, lambda d=dialog: d.phase != "asking", f"the preview of {key}", 60)  # type: ignore[misc]
            assert dialog.phase == "preview", status(dialog) + preview(dialog)
            if word:
                await pilot.press(*word, "enter")
            else:
                await pilot.click("#apply")
            await wait_for(pilot, lambda d=dialog: d.phase == "done", f"the answer to {key}", 60)  # type: ignore[misc]
            assert audit(tmp_path)[-1]["status"] == "applied", status(dialog)
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is screen, "the dialog to close")
            what = f"GPU 0 shown as {shown!r}" if shown else "GPU 0 neither reserved nor drained"
            await wait_for(pilot, gpu0_shows(panel, shown), f"{what} after {key}", 30)
            if key == "D":
                sample = app.store.hosts["gt-b"].sample
                assert sample is not None and sample.gpus[0].compute_mode == "prohibited"
    assert [r["action"] for r in audit(tmp_path) if r["status"] == "applied"] == ["reserve", "release", "drain", "undrain"]
    assert AuditLog(tmp_path / "audit.jsonl").verify().ok
