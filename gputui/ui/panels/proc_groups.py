"""The Processes tab's grouping: by Slurm job, container, parent process or user.

Eight ranks of one training run are one thing to an operator: which job
holds GPUs 0-7, how much memory it has, whether its SMs are busy. A group is
drawn as a header row with its totals above its processes. Groups come in
the order of their first process under the tab's sort (sorted by GPU memory,
the group holding the biggest process comes first), and the processes keep
that order inside their group; the processes with nothing to group by come
last, under a header of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text

from gputui.frames import ProcessInfo
from gputui.render import NA

# (grouping, the words for it in the tab's title, the words for a process with nothing to group by)
GROUPINGS: tuple[tuple[str, str, str], ...] = (
    ("none", "", ""),
    ("job", "Slurm job (else container)", "no Slurm job or container"),
    ("container", "container", "no container"),
    ("parent", "parent process", "parent unknown"),
    ("user", "user", "user unknown"),
)
WORDS = {by: words for by, words, _ in GROUPINGS}
NOTHING = {by: nothing for by, _, nothing in GROUPINGS}
HEADER_PREFIX = "group:"


def job_words(p: ProcessInfo) -> str:
    return (p.slurm_job and f"slurm {p.slurm_job}") or (p.container and f"ctr {p.container}") or ""


def label_of(by: str, p: ProcessInfo) -> str | None:
    """The group ``p`` belongs to, as its header names it; None when it has none."""
    if by == "job":
        return job_words(p) or None
    if by == "container":
        return p.container and f"ctr {p.container}"
    if by == "parent":
        if p.ppid is None:
            return None
        return f"parent {p.ppid} ({p.parent_command})" if p.parent_command else f"parent {p.ppid}"
    if by == "user":
        return p.user and f"user {p.user}"
    return None


@dataclass(frozen=True)
class Group:
    key: str  # the header row's key: never a process's "gpu:pid"
    label: str
    members: tuple[str, ...]  # process row keys, in display order


def grouped(by: str, ordered: Sequence[str], procs: dict[str, tuple[int, ProcessInfo]]) -> list[Group]:
    """The groups of ``ordered`` (row keys already sorted), each keeping that order."""
    members: dict[str | None, list[str]] = {}
    for key in ordered:
        members.setdefault(label_of(by, procs[key][1]), []).append(key)
    named = [(label, keys) for label, keys in members.items() if label is not None]
    if None in members:
        named.append((NOTHING[by], members[None]))
    return [Group(f"{HEADER_PREFIX}{by}:{label}", label, tuple(keys)) for label, keys in named]


def gpu_list(indices: Iterable[int]) -> str:
    """GPU indices as runs: "0-3,6"."""
    runs: list[list[int]] = []
    for i in sorted(set(indices)):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def total(values: Iterable[float | int | None]) -> float | None:
    """The sum of what is known; None when nothing is (N/A, never 0)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def header_cells(group: Group, procs: dict[str, tuple[int, ProcessInfo]], style: Style) -> dict[str, Text]:
    """A group's header row by column key: its totals, and what its processes share.

    SM and memory bandwidth are summed like CPU % over cores: 4 ranks each
    using all of their GPU show 400 %."""
    rows = [procs[k] for k in group.members]
    gpus = {gpu for gpu, _ in rows}
    users = {p.user for _, p in rows}
    jobs = {job_words(p) for _, p in rows}
    n = len(rows)

    def num(value: float | None, form: str) -> Text:
        return Text(NA if value is None else form.format(value), style=style, justify="right")

    return {
        "pid": Text(""),
        "user": Text(str(next(iter(users)) or NA) if len(users) == 1 else f"{len(users)} users", style=style),
        "gpu": Text(gpu_list(gpus), style=style, justify="right"),
        "gpu_mem": num(total(p.gpu_mem_mib for _, p in rows), "{:,} MiB"),
        "sm": num(total(p.sm_pct for _, p in rows), "{}%"),
        "mem_bw": num(total(p.mem_bw_pct for _, p in rows), "{}%"),
        "cpu": num(total(p.cpu_pct for _, p in rows), "{:.0f}%"),
        "rss": num(total(p.rss_mib for _, p in rows), "{:,.0f} MiB"),
        "running": Text(""),
        "mig": Text(""),  # a group may span instances; each process row says its own
        "job": Text(next(iter(jobs)) if len(jobs) == 1 else "", style=style),
        "command": Text(f"{group.label}: {n} process{'es' * (n != 1)} on {len(gpus)} GPU{'s' * (len(gpus) != 1)}", style=style),
    }
