"""`aeschat-load room-keys` (docs/BENCHMARKS.md, issue 15 §2): the room built on several threads is the room the
sequential joins build. Built on one thread and on three, a small room gives the same counted relay traffic for the
measured join and for the leave and messages, every member reads every message, the room codes agree and no member
is shown a warning (the tool exits non-zero otherwise: a build that lost a delivery leaves a pairwise channel a
message behind, and the leave's chain over it is reported missing); lazy rotation sends a chain only from each
sender: 2 s (N - 2) frames."""
import json
import os
import subprocess
from pathlib import Path

from conftest import binary_path


def load_binary():
    return str(Path(binary_path()).parent / "aeschat-load")


def room_keys(*arguments):
    return subprocess.run([load_binary(), "room-keys", *arguments], capture_output=True, text=True, timeout=300)


def figures(members, threads):
    run = room_keys("--members", str(members), "--threads", str(threads))
    assert run.returncode == 0, f"room-keys --threads {threads} failed (exit {run.returncode}): {run.stderr[-2000:]}"
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, run.stdout
    return json.loads(lines[0])


def test_a_room_built_on_three_threads_counts_the_same_traffic_as_one_built_on_one():
    members = 12
    one, three = figures(members, 1), figures(members, 3)
    assert (one["build_threads"], three["build_threads"]) == (1, 3)
    senders = 10
    assert one["senders"] == three["senders"] == senders
    for key in ("join_relay_bytes", "leave_relay_frames", "leave_relay_bytes", "leave_messages_read"):
        assert one[key] == three[key], key
    assert one["leave_relay_frames"] == 2 * senders * (members - 2)
    assert one["leave_messages_read"] == senders * (members - 2)
    assert one["join_relay_bytes"] > 0 and one["us_per_received_message"] > 0


def test_no_build_threads_is_refused_with_one_line():
    run = room_keys("--members", "5", "--threads", "0")
    assert run.returncode == 64
    assert run.stderr.strip() == "aeschat-load: room-keys: --threads must be at least 1"
    assert run.stdout == ""


def test_a_lost_delivery_fails_the_run_with_status_1_and_one_line():
    # The in-memory relay loses the first room message after the leave (AESCHAT_LOAD_LOSE_DELIVERY=1): a runtime
    # failure, not a usage error, so the status is run's 1 and not the usage 64.
    run = subprocess.run([load_binary(), "room-keys", "--members", "5", "--threads", "1"], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "AESCHAT_LOAD_LOSE_DELIVERY": "1"})
    assert run.returncode == 1, f"exit {run.returncode}: {run.stderr}"
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("aeschat-load: room-keys: "), run.stderr
    assert "of 12 messages read" in run.stderr, run.stderr
    assert run.stdout == ""


def test_too_few_members_is_a_usage_error():
    run = room_keys("--members", "2")
    assert run.returncode == 64
    assert run.stderr.strip() == "aeschat-load: room-keys: --members must be at least 3"
