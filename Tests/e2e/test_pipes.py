"""Pipes and scripts: a send-only `join` needs no inbox, and every `--json` event carries the time (issue 14, item
16; docs/CLI.md, "JSON output")."""

import json
import os
import subprocess
from datetime import datetime, timezone

from conftest import binary_path, relay_key_for


def test_echo_into_join_without_an_inbox_delivers_the_line_and_exits_0(tmp_path, clients, relay, mode_key):
    bob = clients("bob")
    bob.ready()
    command = [binary_path(), "join", "--name", "piper", "--port", str(relay.port), "--relay-key",
               relay_key_for(relay.port)]
    if mode_key is not None:
        command += ["--key", str(mode_key)]
    environment = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "piper-config"))
    result = subprocess.run(command, input=b"hi from a pipe\n", capture_output=True, timeout=30, env=environment)
    assert result.returncode == 0, result.stderr
    # No question, no usage error, no complaint about the missing inbox.
    assert b"inbox" not in result.stderr.lower() + result.stdout.lower(), result
    assert bob.events(event="message", text="hi from a pipe", timeout=15)["from"] == "piper"


def test_a_client_without_an_inbox_declines_files_with_a_reason_and_can_still_send_them(tmp_path, clients, mode):
    alice = clients("alice")
    alice.ready()
    piper = clients("piper", send_only=True)
    piper.ready()
    alice.events(event="joined", name="piper")
    offered = tmp_path / "report.txt"
    offered.write_bytes(b"quarterly numbers\n" * 100)
    alice.say(f"/send {offered} piper")
    if mode == "automatic":
        # piper's profile says it takes no files (docs/PROTOCOL.md 6.5): nothing is offered.
        assert alice.events(event="error")["message"] == (
            "piper takes no files (its client says so: no inbox, or --accept-files none); nothing was offered")
    else:
        failed = alice.events(event="file-failed", timeout=20)
        assert failed["to"] == "piper"
        assert failed["reason"] == "piper declined: piper takes no files: it joined without --inbox"
        # The receiver is told what it declined and why, once.
        declined = piper.events(event="file-failed", timeout=10)
        assert declined["from"] == "alice" and "without --inbox" in declined["reason"]
    # Sending needs no inbox: piper's file reaches alice.
    sent = tmp_path / "from-piper.txt"
    sent.write_bytes(b"a file from a bot\n")
    piper.say(f"/send {sent}")
    received = alice.events(event="file", timeout=20)
    assert received["from"] == "piper"
    with open(received["path"], "rb") as landed:
        assert landed.read() == sent.read_bytes()


def test_every_json_event_ends_with_its_utc_time_in_milliseconds(clients):
    before = datetime.now(timezone.utc)
    alice = clients("alice")
    alice.ready()
    bob = clients("bob")
    bob.ready()
    alice.events(event="joined", name="bob")
    bob.say("what time is it")
    alice.events(event="message", text="what time is it")
    bob.close_input()
    alice.events(event="left", name="bob")
    after = datetime.now(timezone.utc)
    lines = [line for line in alice.out.seen if line.startswith("{")]
    assert len(lines) >= 4
    stamps = []
    for line in lines:
        event = json.loads(line)
        assert list(event)[0] == "event" and list(event)[-1] == "time", line
        stamp = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%S.%f%z")
        assert stamp.utcoffset().total_seconds() == 0
        stamps.append(stamp)
    # The times are the wall clock's (within the test's own start and end, a second's slack for rounding) and never
    # go backwards from one event to the next.
    assert before.timestamp() - 1 <= stamps[0].timestamp() and stamps[-1].timestamp() <= after.timestamp() + 1
    assert stamps == sorted(stamps)
