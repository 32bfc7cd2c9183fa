"""Reading Slurm's answers across releases: 22.05 (what the test controller
runs, read for real in tests/test_slurm_view.py) gives plain numbers and
states; 23.x and later wrap numbers as {"set", "infinite", "number"} and give
states as lists. A site upgrading Slurm must not see its jobs vanish."""

from __future__ import annotations

import json

import pytest

from gputui.slurm.parse import SlurmParseError, expand_hostlist, gres_indices, reservations, sinfo_nodes, squeue_jobs


def number(n: int | None) -> dict[str, object]:
    return {"set": n is not None, "infinite": False, "number": n or 0}


def test_a_23x_squeue_answer_reads_as_22_05s_does() -> None:
    job = {
        "job_id": number(4242), "name": "eval|run", "user_name": "bob", "partition": "a100", "job_state": ["RUNNING"],
        "start_time": number(1_795_000_000), "time_limit": {"set": True, "infinite": True, "number": 0},
        "gres_detail": ["gpu:a100:2(IDX:1,3)", "gpu:a100:1(IDX:0)"], "nodes": "gpu-[07-08]",
        "job_resources": {"allocated_nodes": [{"nodename": "gpu-07"}, {"nodename": "gpu-08"}]},
    }  # fmt: skip
    pending = dict(job, job_id=number(4243), job_state=["PENDING"])
    (read,) = squeue_jobs(json.dumps({"jobs": [job, pending]}))  # a pending job holds no GPU yet
    assert (read.id, read.name, read.user, read.partition, read.time_limit_s) == ("4242", "eval|run", "bob", "a100", None)
    assert read.gpus == {"gpu-07": (1, 3), "gpu-08": (0,)}
    assert read.start_time == 1_795_000_000


def test_a_23x_sinfo_answer_gives_sinfos_words() -> None:
    nodes = [
        {
            "name": "gpu-01",
            "state": ["IDLE", "DRAIN"],
            "reason": "fan",
            "reason_set_by_user": "ops",
            "reason_changed_at": number(5),
        },
        {"name": "gpu-02", "state": ["MIXED", "DRAIN"], "reason": "", "reason_set_by_user": None},
        {"name": "gpu-03", "state": ["DOWN", "NOT_RESPONDING"], "reason": "Not responding"},
        {"name": "gpu-04", "state": ["ALLOCATED"]},
    ]
    read = sinfo_nodes(json.dumps({"nodes": nodes}))
    assert {n: v.state for n, v in read.items()} == {
        "gpu-01": "drained", "gpu-02": "draining", "gpu-03": "down", "gpu-04": "allocated",
    }  # fmt: skip
    assert read["gpu-01"].words().startswith("drained: fan (ops, ")
    assert read["gpu-02"].reason is None


def test_hostlists_and_gres_indices() -> None:
    assert expand_hostlist("gpu-[01-03,10],login1") == ["gpu-01", "gpu-02", "gpu-03", "gpu-10", "login1"]
    assert expand_hostlist("rack[1-2]-gpu[1-2]") == ["rack1-gpu1", "rack1-gpu2", "rack2-gpu1", "rack2-gpu2"]
    assert gres_indices("gpu:h100:4(IDX:0-2,7),gpu:1(IDX:N/A)") == (0, 1, 2, 7)
    assert gres_indices("nic:1(IDX:0)") == ()


def test_reservation_lines() -> None:
    line = (
        "ReservationName=gputui-gpu-07 StartTime=2026-12-05T02:41:02 EndTime=2026-12-05T04:41:02 Duration=02:00:00 "
        "Nodes=gpu-[07-08] NodeCnt=2 CoreCnt=4 Features=(null) PartitionName=(null) Flags=MAINT,IGNORE_JOBS,SPEC_NODES "
        "TRES=cpu=4 Users=bob Groups=(null) Accounts=(null) Licenses=(null) State=ACTIVE BurstBuffer=(null) Watts=n/a"
    )
    (r,) = reservations(line + "\n")
    assert (r.name, r.users, r.end, r.state, r.node_names) == (
        "gputui-gpu-07", "bob", "2026-12-05T04:41:02", "ACTIVE", ("gpu-07", "gpu-08"),
    )  # fmt: skip
    assert reservations("No reservations in the system\n") == []


@pytest.mark.parametrize("text", ["", "squeue: error: Invalid user", "[]", '{"jobs": 3}'])
def test_an_answer_that_is_not_squeues_says_so(text: str) -> None:
    with pytest.raises(SlurmParseError, match="squeue --json"):
        squeue_jobs(text)
