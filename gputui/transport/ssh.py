"""Hosts over SSH with asyncssh: nothing installed on them beforehand.

Per connection: strict host-key check (or accept-new on request), keys from
the agent or key files only (never a password prompt, never agent
forwarding), ``~/.ssh/config`` with its ``ProxyJump`` chains, a cap on
concurrent handshakes so that a thousand hosts come up in waves, and
keepalives so that a cut link is noticed. Then the agent bundle is uploaded
under its content hash unless the same bytes are already there, and run.

Every remote command is a fixed string; the few values that come from
config (the remote directory, the scenario) are quoted with ``shlex.quote``.
"""

from __future__ import annotations

import asyncio
import shlex
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import asyncssh

from gputui.config import Host, Ssh
from gputui.transport import bundle
from gputui.transport.base import LinkError
from gputui.transport.jump_pool import JumpPool, Lease
from gputui.transport.lines import split_lines
from gputui.transport.ssh_keys import HostKeyGate, refusal
from gputui.transport.ssh_resolve import config_paths, proxy_jumps, resolve

NO_PYTHON = "gputui:no-python3"
NEEDS_UPLOAD = "gputui:upload"
NOT_RUNNABLE = (126, 127)  # the shell's "cannot execute" and "not found"
WATCHDOG_MIN_S = 30.0
WATCHDOG_INTERVALS = 10


@dataclass(frozen=True)
class AgentBundle:
    data: bytes
    digest: str

    @classmethod
    def build(cls) -> AgentBundle:
        data = bundle.build()
        return cls(data, bundle.digest(data))


@dataclass
class SshShared:
    """What all SSH links of one dashboard share."""

    settings: Ssh
    bundle: AgentBundle
    handshakes: asyncio.Semaphore
    interval: float
    state_dir: str | None = None  # the hosts' ledger folder, when the config names one
    jumps: JumpPool = field(default_factory=JumpPool)  # one connection per jump chain

    @classmethod
    def create(cls, settings: Ssh, interval: float, state_dir: str | None = None) -> SshShared:
        return cls(settings, AgentBundle.build(), asyncio.Semaphore(settings.max_handshakes), interval, state_dir)


def _expand(path: str) -> Path:
    return Path(path).expanduser()


def _address(config_paths: list[str], target: str, port: int | None, user: str | None) -> str:
    """host:port as ssh_config resolves ``target``: what an operator checks
    first when a connection is refused or silent."""
    try:
        resolved = resolve(config_paths, target, port, user)
    except (OSError, ValueError):
        return f"{target}:{port or 22}"
    return f"{resolved.hostname}:{resolved.port}"


class SshLink:
    """``agent=False``: read nvidia-smi only, never upload or run the agent."""

    def __init__(self, host: Host, shared: SshShared, agent: bool = True) -> None:
        self.name = host.name
        self.host = host
        self.shared = shared
        self.agent = agent
        self.conn: asyncssh.SSHClientConnection | None = None
        self.process: asyncssh.SSHClientProcess[bytes] | None = None
        self.uploaded = False  # whether the last connect had to upload the bundle
        self.stderr_tail: deque[str] = deque(maxlen=5)
        self.stderr_task: asyncio.Task[None] | None = None
        self.leases: list[Lease] = []  # the shared jump-host connections this link uses
        self.route: list[str] = []  # jump hosts, then the host: how the last connection went
        self.smi_refused: set[str] = set()  # query fields this host's nvidia-smi does not know

    # -- connecting ---------------------------------------------------------
    def _known_hosts(self) -> Path:
        return _expand(self.shared.settings.known_hosts or "~/.ssh/known_hosts")

    def _connect_options(self, gate: HostKeyGate, config_paths: list[str]) -> dict[str, object]:
        """Options every hop shares; port and user are per hop, set by the caller."""
        s = self.shared.settings
        known = self._known_hosts()
        opts: dict[str, object] = {
            # No file yet means no trusted keys: every key goes through the gate.
            "known_hosts": str(known) if known.exists() else asyncssh.import_known_hosts(""),
            "client_factory": lambda: gate,
            "agent_forwarding": False,
            "password": None,
            "kbdint_auth": False,
            "connect_timeout": s.connect_timeout_s,
            "keepalive_interval": s.keepalive_s,
            "keepalive_count_max": 3,
            # asyncssh prefers no compression; telemetry JSON compresses well.
            "compression_algs": ["zlib@openssh.com", "zlib", "none"] if s.compression else ["none"],
        }
        if config_paths:
            opts["config"] = config_paths
        keys = [str(_expand(k)) for k in [*self.host.identity_files, *s.identity_files]]
        if keys:
            opts["client_keys"] = keys
        return opts

    def _config_paths(self) -> list[str]:
        return config_paths(self.shared.settings.config_file)

    async def _connect(self) -> asyncssh.SSHClientConnection:
        """Connect, opening each ProxyJump hop ourselves so that every hop gets
        the same host-key policy, keys and messages as the host itself."""
        target = self.host.address or self.host.name
        config_paths = self._config_paths()  # one look at the disk per connection
        try:
            hops = proxy_jumps(config_paths, target, self.host.port, self.host.user)
        except (OSError, ValueError) as exc:  # asyncssh's ConfigParseError is a ValueError
            raise LinkError(f"ssh_config: {exc}") from None
        self.route = [host for _, host, _ in hops] + [target]
        tunnel: asyncssh.SSHClientConnection | None = None
        for depth, (user, host, port) in enumerate(hops):
            # Waiting on a hop another host is opening takes no handshake slot:
            # hosts queued behind the cap join that open instead of starting
            # their own once the bastion has failed for the first wave.
            via = hops[depth - 1][1] if depth else None
            open_hop = partial(self._open_capped, f"jump host {host}", host, port, user, tunnel, config_paths, via)
            lease = await self.shared.jumps.acquire(self._hop_key(hops[: depth + 1], config_paths), open_hop)
            self.leases.append(lease)
            tunnel = lease.conn
        via = hops[-1][1] if hops else None
        return await self._open_capped(self.name, target, self.host.port, self.host.user, tunnel, config_paths, via)

    async def _open_capped(self, *args: Any) -> asyncssh.SSHClientConnection:
        """``_open`` within the cap on concurrent handshakes; a hop's open runs
        in the pool's own task, so it holds its slot however long it takes."""
        async with self.shared.handshakes:
            return await self._open(*args)

    @property
    def via(self) -> tuple[str, ...]:
        """The jump hosts of the last connection (as ProxyJump names them), first hop first."""
        return tuple(self.route[:-1])

    @property
    def hops(self) -> list[asyncssh.SSHClientConnection]:
        """The jump-host connections in use, first hop first."""
        return [lease.conn for lease in self.leases]

    def _hop_key(self, chain: list[tuple[str | None, str, int | None]], config_paths: list[str]) -> tuple[object, ...]:
        """Hosts share a hop connection only when it would be opened the same way."""
        s = self.shared.settings
        accept_new = s.accept_new if self.host.accept_new is None else self.host.accept_new
        return (tuple(chain), accept_new, tuple(self.host.identity_files), tuple(config_paths))

    async def _open(
        self,
        what: str,
        target: str,
        port: int | None,
        user: str | None,
        tunnel: asyncssh.SSHClientConnection | None,
        config_paths: list[str],
        via: str | None = None,
    ) -> asyncssh.SSHClientConnection:
        """``via``: the jump host the connection goes through, for the errors."""
        s = self.shared.settings
        # The host's name is on the row already; a jump host must be named,
        # and its failure marked as the jump host's (``hop``) for the health rules.
        hop = None if what == self.name else target
        prefix = "" if hop is None else f"{what}: "
        accept_new = s.accept_new if self.host.accept_new is None else self.host.accept_new
        gate = HostKeyGate(self._known_hosts(), accept_new)
        opts = self._connect_options(gate, config_paths)
        if port:
            opts["port"] = port
        if user:
            opts["username"] = user
        if tunnel is not None:
            opts["tunnel"] = tunnel

        def where(hop: bool = True) -> str:  # resolved only for an error's words
            return _address(config_paths, target, port, user) + (f" via {via}" if via and hop else "")

        try:
            return await asyncssh.connect(target, **opts)  # type: ignore[arg-type]
        except asyncssh.HostKeyNotVerifiable:
            raise LinkError(refusal(gate, what, target, port or 22), hop=hop) from None
        except asyncssh.PermissionDenied:
            raise LinkError(
                f"{prefix}permission denied (publickey): no key from ssh-agent or the identity files was "
                "accepted; passwords are not asked for",
                hop=hop,
            ) from None
        except asyncssh.DisconnectError as exc:
            raise LinkError(f"{prefix}disconnected during handshake: {exc.reason}", hop=hop) from None
        except TimeoutError:
            raise LinkError(f"{prefix}no answer from {where()} within {s.connect_timeout_s:.0f}s", hop=hop) from None
        except asyncssh.ChannelOpenError as exc:
            # The hop answered but could not open the way on: its sshd's words.
            raise LinkError(f"{prefix}jump host {via} cannot reach {where(hop=False)}: {exc.reason}", hop=hop) from None
        except OSError as exc:
            raise LinkError(f"{prefix}cannot connect to {where()}: {exc.strerror or exc}", hop=hop) from None
        except (asyncssh.Error, ValueError) as exc:
            raise LinkError(f"{prefix}SSH error with {where()}: {exc}", hop=hop) from None

    # -- preparing the remote side ----------------------------------------------
    def _remote_dir(self) -> str:
        return self.host.remote_dir or self.shared.settings.remote_dir

    def _agent_dir(self) -> str:
        # "$HOME"/<dir>/agent-<hash>; the dir comes from config and is quoted.
        return f'"$HOME"/{shlex.quote(self._remote_dir())}/agent-{self.shared.bundle.digest}'

    async def _run(self, conn: asyncssh.SSHClientConnection, script: str, stdin: bytes | None = None) -> tuple[int, str]:
        result = await conn.run("sh -c " + shlex.quote(script), input=stdin, encoding=None, check=False)
        out = b"".join(part for part in (result.stdout, result.stderr) if isinstance(part, bytes))
        return int(result.exit_status or 0), out.decode("utf-8", "replace")

    async def _upload(self, conn: asyncssh.SSHClientConnection) -> bool:
        """Unpack the bundle into its content-addressed folder, atomically.

        Unpacked rather than run as a zip so that Python caches the compiled
        modules there: every later start is faster. False when python3
        cannot run at all.
        """
        base = f'"$HOME"/{shlex.quote(self._remote_dir())}'
        tmp = f"{base}/.agent-{self.shared.bundle.digest}.$$"
        unpack = "import io, sys, zipfile; zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read())).extractall(sys.argv[1])"
        # Whatever fails, the bundle on stdin is read to its end before the exit: a
        # host without python3 would otherwise close the channel while it is still
        # being sent, and the write fail ("Channel not open for sending") instead
        # of the status saying that python3 cannot run.
        script = (
            f"{{ umask 077 && mkdir -p {base} && rm -rf {tmp} && "
            f"python3 -c {shlex.quote(unpack)} {tmp} && "
            f"{{ mv {tmp} {self._agent_dir()} 2>/dev/null || rm -rf {tmp}; }} && test -f {self._agent_dir()}/__main__.py; }}; "
            "s=$?; cat >/dev/null; exit $s"
        )
        status, out = await self._run(conn, script, stdin=self.shared.bundle.data)
        if status in NOT_RUNNABLE:
            return False  # python3 cannot run here: the caller falls back
        if status != 0:
            raise LinkError(f"cannot install the agent in ~/{self._remote_dir()}: {out.strip()[:200]}")
        self.uploaded = True
        return True

    def agent_args(self, act: bool = False) -> list[str]:
        """The agent's arguments: streaming, or ``--act`` for one action. A streaming agent
        sends changes (``--changes``): it is the bundle of this dashboard (its folder is
        named by the bundle's digest), so it knows the flag, and AgentLines decodes them."""
        args = ["--act"] if act else ["--interval", str(self.shared.interval), "--changes"]
        if self.shared.state_dir:
            args += ["--state-dir", self.shared.state_dir]
        if self.host.sim:
            args += ["--sim", self.host.sim, "--seed", str(self.host.seed), "--sim-processes", self.host.sim_processes]
            if self.host.gpus:
                args += ["--gpus", str(self.host.gpus)]
            args += ["--host-name", self.host.name]
        return args

    def agent_command(self, act: bool = False) -> str:
        """One round trip in the common case: check, then exec the agent."""
        quoted = " ".join(shlex.quote(a) for a in self.agent_args(act))
        script = (
            f"command -v python3 >/dev/null 2>&1 || {{ echo {NO_PYTHON}; exit 0; }}; "
            f"test -f {self._agent_dir()}/__main__.py || {{ echo {NEEDS_UPLOAD}; exit 0; }}; "
            f"exec python3 {self._agent_dir()} {quoted}"
        )
        return "sh -c " + shlex.quote(script)

    async def act(self, request: bytes) -> bytes:
        """Run the agent once with ``--act`` on a connection of its own: the
        request goes on stdin (never into a command line), the answer comes
        back on stdout."""
        try:
            self.conn = await self._connect()
            for _attempt in range(2):
                result = await self.conn.run(self.agent_command(act=True), input=request, encoding=None, check=False)
                out = result.stdout if isinstance(result.stdout, bytes) else b""
                first = out.split(b"\n", 1)[0].strip()
                if first == NEEDS_UPLOAD.encode() and not self.uploaded:
                    if not await self._upload(self.conn):
                        break
                    continue
                if first.startswith(b"gputui:") or result.exit_status in NOT_RUNNABLE:
                    break
                if not first:
                    err = result.stderr.decode("utf-8", "replace").strip() if isinstance(result.stderr, bytes) else ""
                    raise LinkError(f"the agent gave no answer (status {result.exit_status}): {err[-300:]}")
                return out
            raise LinkError("actions need the agent, and python3 cannot run on this host")
        except asyncssh.Error as exc:
            raise LinkError(f"SSH error: {exc}") from None
        finally:
            await self.close()

    # -- streaming ------------------------------------------------------------
    async def _start_agent(self, conn: asyncssh.SSHClientConnection) -> tuple[bytes, AsyncIterator[bytes]] | None:
        """Start the agent (installing it first if needed): its first line and
        the rest, or None where the host has no python3 that works."""
        for _attempt in range(2):
            self.process = await conn.create_process(self.agent_command(), encoding=None)
            self._drain_stderr(self.process)
            lines = split_lines(self.process.stdout.read, one_per_turn=True)
            first = await self._next_line(lines)
            if first.strip() == NEEDS_UPLOAD.encode():
                if self.uploaded:
                    raise LinkError("the agent was installed but is not found where it was put")
                if not await self._upload(conn):
                    return None
                continue
            if first.startswith(b"gputui:"):
                return None  # no python3, or one older than 3.8
            if not first:
                await self._closed(self.process)
                if self.process.exit_status in NOT_RUNNABLE:
                    return None  # python3 is on the PATH but cannot run (a broken shim, say)
            return first, lines
        raise LinkError("the agent was installed but does not start")

    def _drain_stderr(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        """Keep the last lines of stderr, read as they come: unread stderr
        shares the channel's window with stdout and would stall it."""
        self.stderr_tail.clear()

        async def drain() -> None:
            async for raw in split_lines(process.stderr.read):
                self.stderr_tail.append(raw.decode("utf-8", "replace").strip()[:300])

        if self.stderr_task is not None:
            self.stderr_task.cancel()
        self.stderr_task = asyncio.ensure_future(drain())

    async def _next_line(self, lines: AsyncIterator[bytes]) -> bytes:
        """The next line, or LinkError when the agent goes quiet for too long:
        an NVML call that hangs (as after an XID 79) must not hang the host."""
        quiet = max(WATCHDOG_MIN_S, WATCHDOG_INTERVALS * self.shared.interval)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancel that comes with a line, and the host's task never stops.
            async with asyncio.timeout(quiet):
                return await anext(lines, b"")
        except TimeoutError:
            raise LinkError(f"no frame for {quiet:.0f}s: the agent hangs; restarting it") from None

    async def lines(self) -> AsyncIterator[bytes]:
        self.uploaded = False
        try:
            self.conn = await self._connect()
            started = await self._start_agent(self.conn) if self.agent else None
            if started is None:
                from gputui.transport.smi_fallback import smi_lines  # nvidia-smi, with fewer fields

                why = "no python3 3.8+ on the host" if self.agent else 'read with nvidia-smi only (transport = "nvidia-smi")'
                smi = smi_lines(self.conn, self.name, self.shared.interval, self.host.temp_slowdown_c, self.smi_refused, why)
                async for line in smi:
                    yield line
                return
            first, rest = started
            if first:
                yield first
            while line := await self._next_line(rest):
                yield line
            raise LinkError(f"agent exited{await self._exit_detail()}")
        except asyncssh.ConnectionLost as exc:
            raise LinkError(f"connection lost: {exc.reason}") from None
        except asyncssh.DisconnectError as exc:
            raise LinkError(f"disconnected: {exc.reason}") from None
        except asyncssh.Error as exc:  # e.g. a channel refused (sshd's MaxSessions)
            raise LinkError(f"SSH error: {exc}") from None
        finally:
            await self.close()

    @staticmethod
    async def _closed(process: asyncssh.SSHClientProcess[bytes]) -> None:
        """Wait for the remote process to be reported closed, but not for ever."""
        try:
            async with asyncio.timeout(5.0):
                await process.wait_closed()
        except TimeoutError:
            pass

    async def _exit_detail(self) -> str:
        if self.process is None:
            return ""
        await self._closed(self.process)
        if self.stderr_task is not None:
            await asyncio.wait([self.stderr_task], timeout=1.0)
        tail = f": {self.stderr_tail[-1]}" if self.stderr_tail else ""
        return f" (status {self.process.exit_status}){tail}"

    async def send(self, command: dict[str, object]) -> None:
        import json

        if self.process is None or self.process.stdin.is_closing():
            raise LinkError("agent is not running")
        self.process.stdin.write(json.dumps(command).encode() + b"\n")

    async def close(self) -> None:
        if self.stderr_task is not None:
            self.stderr_task.cancel()
            self.stderr_task = None
        conn, leases = self.conn, self.leases
        self.conn, self.process, self.leases = None, None, []
        last_users: list[asyncssh.SSHClientConnection] = []
        try:
            if conn is not None:
                await self._close_conn(conn)  # first what runs through the hops
        finally:
            for lease in reversed(leases):  # the last hop rides on the one before
                if self.shared.jumps.release(lease):
                    last_users.append(lease.conn)  # this link was its last user
        try:
            for hop in last_users:  # one after the other: each rides on the next
                await self._close_conn(hop)
        finally:
            for hop in last_users:  # cancelled on the way: close the rest at once
                hop.close()

    @staticmethod
    async def _close_conn(conn: asyncssh.SSHClientConnection) -> None:
        conn.close()
        try:
            async with asyncio.timeout(3.0):
                await conn.wait_closed()
        except TimeoutError:
            pass
