"""`aeschat-load run`'s exit statuses (its usage text, "Exit status"): 64 for options it cannot run with, 1 for a run
that cannot go on where it is, each with one line on standard error. Nothing here reaches a relay: both checks come
before the first connection."""
import resource
import subprocess
from pathlib import Path

from conftest import binary_path


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
