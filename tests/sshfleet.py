"""A real SSH fleet for the tests: OpenSSH servers in network namespaces.

Topology (addresses exist only inside namespaces this harness makes):

    test process (root namespace) --veth--> jump host 10.231.0.2
                                             | bridge 10.231.1.1/24
                   gt-a 10.231.1.10, gt-b .11, gt-c .12, gt-nopy .13

The GPU hosts have no route from the root namespace: the jump host is the
only way in, as on a real cluster. Host keys and the client key are made per
run; the client gets its own ssh_config and known_hosts. ``gt-nopy`` has no
python3 on its PATH (sshd's SetEnv) and a stand-in ``nvidia-smi``. Where
namespaces cannot be made, every sshd listens on its own loopback port
instead, and the harness says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parent.parent
LOCK_PATH = "/run/gputui-sshfleet.lock"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class SshHost:
    name: str
    address: str
    port: int
    namespace: str | None
    sim: str | None
    extra_config: str = ""
    process: subprocess.Popen[bytes] | None = None
    host_key: Path | None = None
    bridge_port: str | None = None  # its cable in the jump host's bridge

    @property
    def remote_dir(self) -> str:
        return f".cache/gputui-test/{self.name}"


def login_home() -> Path:
    """The home folder the fleet's sshd gives its login user (root, from passwd), where remote_dir lives.

    Not ``Path.home()``: that is this process's $HOME, which need not be root's.
    """
    return Path(pwd.getpwnam("root").pw_dir)


@dataclass
class SshFleet:
    root: Path
    run: str = field(default_factory=lambda: secrets.token_hex(2))
    namespaces: bool = True
    hosts: dict[str, SshHost] = field(default_factory=dict)
    made_ns: list[str] = field(default_factory=list)
    made_links: list[str] = field(default_factory=list)
    extra_hosts: int = 0  # more simulated hosts, for the fan-out benchmark
    lock: TextIO | None = None

    @property
    def client_key(self) -> Path:
        return self.root / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    # -- bring-up -------------------------------------------------------------
    def start(self) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("the SSH fleet needs root (network namespaces, sshd); run `make test` as root")
        if not Path(SSHD).exists():
            raise RuntimeError("sshd is not installed; `make test` as root installs openssh-server")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._take_machine()
        keygen(self.client_key)
        (self.root / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        self.namespaces = self._try_namespaces()
        specs = [("gt-jump", None), ("gt-a", "healthy"), ("gt-b", "incident"), ("gt-c", "mixed"), ("gt-nopy", None)]
        specs += [(f"gt-h{i:03d}", "healthy") for i in range(self.extra_hosts)]
        if len(specs) > 240:
            raise ValueError("at most 235 extra hosts fit the test subnet")
        for i, (name, sim) in enumerate(specs):
            if self.namespaces:
                ns = f"{name}-{self.run}"
                address = "10.231.0.2" if name == "gt-jump" else f"10.231.1.{10 + i - 1}"
                host = SshHost(name, address, 22, ns, sim)
            else:
                host = SshHost(name, "127.0.0.1", free_port(), None, sim)
            self.hosts[name] = host
        if self.namespaces:
            self._wire()
        self._nopy(self.hosts["gt-nopy"])
        for host in self.hosts.values():
            self.start_sshd(host)
        self._write_client_files()

    def _take_machine(self) -> None:
        """One test fleet at a time on a machine (they share addresses): wait
        for any other run, then clear what a killed run left behind."""
        self.lock = open(LOCK_PATH, "w")  # noqa: SIM115 - held until stop()
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n"):
            name = ns.split(" ")[0]
            if name.startswith("gt-"):
                kill_namespace(name)
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for link in subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout.split("\n"):
            name = link.split("@")[0].split(" ")[0]
            if name.startswith("gtr"):
                subprocess.run(["ip", "link", "del", name], capture_output=True)

    def _try_namespaces(self) -> bool:
        probe = f"gt-probe-{self.run}"
        ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["ip", "netns", "del", probe], capture_output=True)
        else:
            print("sshfleet: cannot make network namespaces here; using sshd on loopback ports", file=sys.stderr)
        return ok

    def _wire(self) -> None:
        jump = self.hosts["gt-jump"]
        assert jump.namespace is not None
        jns = jump.namespace
        self._ns(jns)
        outside, inside = f"gtr{self.run}", f"gtj{self.run}"
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self.made_links.append(outside)
        ip("link", "set", inside, "netns", jns)
        ip("addr", "add", "10.231.0.1/30", "dev", outside)
        ip("link", "set", outside, "up")
        nsip(jns, "addr", "add", "10.231.0.2/30", "dev", inside)
        nsip(jns, "link", "set", inside, "up")
        nsip(jns, "link", "add", "br0", "type", "bridge")
        nsip(jns, "addr", "add", "10.231.1.1/24", "dev", "br0")
        nsip(jns, "link", "set", "br0", "up")
        for n, host in enumerate(h for h in self.hosts.values() if h.name != "gt-jump"):
            assert host.namespace is not None
            self._ns(host.namespace)
            a, b = f"gth{n}{self.run}", f"gtb{n}{self.run}"
            ip("link", "add", a, "type", "veth", "peer", "name", b)
            ip("link", "set", a, "netns", host.namespace)
            ip("link", "set", b, "netns", jns)
            host.bridge_port = b
            nsip(jns, "link", "set", b, "master", "br0")
            nsip(jns, "link", "set", b, "up")
            nsip(host.namespace, "addr", "add", f"{host.address}/24", "dev", a)
            nsip(host.namespace, "link", "set", a, "up")

    def _ns(self, name: str) -> None:
        ip("netns", "add", name)
        self.made_ns.append(name)
        nsip(name, "link", "set", "lo", "up")

    def _nopy(self, host: SshHost) -> None:
        """A PATH with a shell's tools and nvidia-smi, but no python3."""
        bin_dir = self.root / "nopy-bin"
        bin_dir.mkdir(exist_ok=True)
        for tool in ("sh", "cat", "mkdir", "mv", "test", "env", "sleep"):
            found = shutil.which(tool)
            if found:
                (bin_dir / tool).symlink_to(found)
        smi = bin_dir / "nvidia-smi"
        smi.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
            "from gputui.sim.nvidia_smi import main\nsys.exit(main())\n"
        )
        smi.chmod(0o755)
        unknown = self.root / "nopy-smi-unknown"
        host.extra_config = f"SetEnv PATH={bin_dir} GPUTUI_SIM_SCENARIO=incident GPUTUI_SIM_SMI_UNKNOWN_FILE={unknown}\n"

    @contextlib.contextmanager
    def older_nvidia_smi(self, unknown_fields: list[str]) -> Iterator[None]:
        """gt-nopy's nvidia-smi, while within, is one that predates these query
        fields (as after a driver downgrade): it refuses a query that names one."""
        path = self.root / "nopy-smi-unknown"
        path.write_text(",".join(unknown_fields))
        try:
            yield
        finally:
            path.unlink()

    def start_sshd(self, host: SshHost) -> None:
        if host.host_key is None:
            host.host_key = self.root / f"{host.name}_host_ed25519"
            keygen(host.host_key)
        cfg = self.root / f"{host.name}_sshd_config"
        cfg.write_text(
            f"Port {host.port}\nListenAddress {host.address}\nHostKey {host.host_key}\n"
            f"PidFile {self.root / host.name}.pid\nAuthorizedKeysFile {self.root / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nX11Forwarding no\nPrintMotd no\nLogLevel ERROR\n"
            # gt-a may relay too: the second hop of a two-hop ProxyJump chain.
            f"AllowTcpForwarding {'yes' if host.name in ('gt-jump', 'gt-a') else 'no'}\n{host.extra_config}"
        )
        argv = [SSHD, "-D", "-e", "-f", str(cfg)]
        if host.namespace:
            argv = ["ip", "netns", "exec", host.namespace, *argv]
        host.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_listening(host)

    def set_cable(self, name: str, up: bool) -> None:
        """Unplug or plug a host's network cable (its bridge port on the jump host)."""
        host, jump = self.hosts[name], self.hosts["gt-jump"]
        assert host.bridge_port and jump.namespace, "cables exist only with namespaces"
        nsip(jump.namespace, "link", "set", host.bridge_port, "up" if up else "down")

    def start_delay(self, name: str, delay_ms: int) -> tuple[str, subprocess.Popen[bytes]]:
        """300 ms and the like on the way to and from a host: a delaying forwarder
        inside the host's namespace on port 2222, reached as ``<name>-slow``."""
        host = self.hosts[name]
        argv = [sys.executable, str(REPO / "tests" / "delay_proxy.py"), host.address, "2222", host.address, str(host.port),
                str(delay_ms)]  # fmt: skip
        if host.namespace:
            argv = ["ip", "netns", "exec", host.namespace, *argv]
        proxy = subprocess.Popen(argv, stdout=subprocess.PIPE)
        assert proxy.stdout is not None and proxy.stdout.readline().strip() == b"listening"
        alias = f"{name}-slow"
        self.hosts[alias] = SshHost(alias, host.address, 2222, host.namespace, host.sim, host_key=host.host_key)
        self._write_client_files()
        return alias, proxy

    def stop_sshd(self, host: SshHost) -> None:
        proc = host.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        host.process = None

    def _write_client_files(self) -> None:
        jump = self.hosts["gt-jump"]
        lines = [
            f"Host {jump.name}\n  HostName {jump.address}\n  Port {jump.port}\n  User root\n  IdentityFile {self.client_key}\n"
        ]
        for host in self.hosts.values():
            if host.name == "gt-jump":
                continue
            entry = f"Host {host.name}\n  HostName {host.address}\n  Port {host.port}\n  User root\n"
            lines.append(entry + f"  IdentityFile {self.client_key}\n")
            if self.namespaces:
                lines[-1] += f"  ProxyJump {jump.name}\n"
        if self.namespaces:
            b = self.hosts["gt-b"]
            # Aliases for the multi-hop and ssh-agent tests: two jumps; no IdentityFile.
            lines.append(f"Host gt-b-2hops\n  HostName {b.address}\n  User root\n  IdentityFile {self.client_key}\n"
                         "  ProxyJump gt-jump,gt-a\n")  # fmt: skip
            lines.append(f"Host gt-b-agent\n  HostName {b.address}\n  User root\n  ProxyJump gt-jump\n")
        self.ssh_config.write_text("\n".join(lines))
        self.known_hosts.write_text("".join(self.known_line(h) for h in self.hosts.values() if h.host_key))

    def known_line(self, host: SshHost) -> str:
        assert host.host_key is not None
        key = host.host_key.with_suffix(".pub").read_text().split()
        pattern = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
        return f"{pattern} {key[0]} {key[1]}\n"

    def config_toml(self, names: list[str], known_hosts: Path | None = None, accept_new: bool = False,
                    interval: float = 0.5, gpus: int = 2, sim_processes: str = "standin",
                    connect_timeout: float = 10.0) -> str:  # fmt: skip
        out = [
            f"interval = {interval}\n",
            "[ssh]\n",
            f'config_file = "{self.ssh_config}"\n',
            f'known_hosts = "{known_hosts or self.known_hosts}"\n',
            f"accept_new = {'true' if accept_new else 'false'}\n",
            f"connect_timeout_s = {connect_timeout}\nkeepalive_s = 1.0\n",
        ]
        for name in names:
            host = self.hosts[name]
            out.append(f'\n[[hosts]]\nname = "{name}"\nremote_dir = "{host.remote_dir}"\n')
            if host.sim:
                out.append(f'sim = "{host.sim}"\ngpus = {gpus}\nsim_processes = "{sim_processes}"\n')
        return "".join(out)

    # -- tear-down --------------------------------------------------------------
    def stop(self) -> None:
        for host in self.hosts.values():
            try:
                self.stop_sshd(host)
            except subprocess.TimeoutExpired:
                assert host.process is not None
                host.process.kill()
        for ns in self.made_ns:
            kill_namespace(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for link in self.made_links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        shutil.rmtree(login_home() / ".cache" / "gputui-test", ignore_errors=True)
        if self.lock is not None:
            self.lock.close()  # releases the flock
            self.lock = None


@contextlib.contextmanager
def running_fleet(root: Path) -> Iterator[SshFleet]:
    """A started fleet for a test module, stopped afterwards, and checked to
    leave no network namespace behind."""
    fleet = SshFleet(root)
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert fleet.run not in left, f"namespaces left behind: {left}"


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def nsip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True)


def kill_namespace(ns: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(host: SshHost) -> None:
    """sshd -D -e prints nothing on success; poll its port until it accepts."""
    import time

    argv = ["ip", "netns", "exec", host.namespace] if host.namespace else []
    check = [*argv, sys.executable, "-c",
             "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))",
             host.address, str(host.port)]  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(check, capture_output=True).returncode == 0:
            return
        assert host.process is not None
        if host.process.poll() is not None:
            err = host.process.stderr.read().decode() if host.process.stderr else ""
            raise RuntimeError(f"sshd for {host.name} exited: {err}")
    raise RuntimeError(f"sshd for {host.name} did not listen on {host.address}:{host.port}")
