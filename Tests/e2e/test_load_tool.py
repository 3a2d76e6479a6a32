"""`aeschat-load run`: its exit statuses (its usage text, "Exit status"): 64 for options it cannot run with, 1 for a
run that cannot go on where it is, each with one line on standard error (nothing reaches a relay: both checks come
before the first connection); and a join storm on two threads, where the storm's thread holds none of the chatting
members, still counts every paced delivery and welcomes every storm member."""
import json
import resource
import subprocess
from pathlib import Path

from conftest import Relay, binary_path, free_port


def load(*arguments, descriptors=None):
    def limit():
        if descriptors is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors))

    return subprocess.run([str(Path(binary_path()).parent / "aeschat-load"), "run", *arguments],
                          capture_output=True, text=True, timeout=60, preexec_fn=limit)


def test_too_few_descriptors_fails_the_run_with_status_1_and_one_line():
    # The same options work where more descriptors are allowed: not a usage error.
    run = load("--protocol", "irc", "--port", "9", "--members", "100", descriptors=64)
    assert run.returncode == 1, f"exit {run.returncode}: {run.stderr}"
    assert run.stderr == "aeschat-load: descriptor limit 64 is too low for 100 members; raise ulimit -n\n"
    assert run.stdout == ""


def test_a_missing_relay_key_is_a_usage_error():
    run = load("--port", "9", "--members", "100")
    assert run.returncode == 64
    assert run.stderr.startswith("aeschat-load: --relay-key is required"), run.stderr
    assert run.stdout == ""


def test_a_join_storm_on_its_own_thread_counts_every_delivery_and_welcomes_every_member():
    relay = Relay(free_port(), extra=["--max-connections-per-address", "0", "--handshake-rate", "0",
                                      "--message-rate", "0"])
    try:
        run = load("--port", str(relay.port), "--pid", str(relay.process.pid), "--relay-key", relay.key,
                   "--members", "6", "--messages", "20", "--paced-seconds", "2", "--senders", "3", "--rate", "5",
                   "--storm-joins", "60", "--storm-delay", "0.5", "--idle-seconds", "0.2", "--threads", "2",
                   "--phase-timeout", "60")
        results = [line for line in run.stdout.splitlines() if line.startswith("{")]
        assert results, f"aeschat-load printed no result (exit {run.returncode}): {run.stderr[-2000:]}"
        figures = json.loads(results[-1])
        assert run.returncode == 0 and "error" not in figures, (figures, run.stderr[-2000:])
        # 3 senders x 5 messages/s for 2 s, each to the 5 others, all counted by the one engine that holds them.
        assert figures["paced_deliveries"] == 3 * 5 * 2 * 5, figures
        assert figures["storm_joins"] == 60 and figures["storm_join_seconds"] > 0, figures
        for key in ("out_of_order", "duplicates", "relay_errors", "link_failures"):
            assert figures[key] == 0, (key, figures)
    finally:
        relay.stop()
