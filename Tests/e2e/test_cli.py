"""The command line of the real binary: exit codes, where text goes, key files."""

import os
import stat
import subprocess

import pytest

from aeschat_link import StaticKey
from conftest import binary_path, free_port, key_from_join_line, show_key

# A relay key for joins to a port where no relay listens (the join fails before any key could matter).
NOBODY_KEY = StaticKey().text


def run(*args, stdin=b""):
    return subprocess.run([binary_path(), *args], input=stdin, capture_output=True, timeout=30)


@pytest.mark.parametrize(
    "args",
    [["--help"], ["-h"], ["help"], ["help", "join"], ["join", "--help"], ["serve", "-h"], ["keygen", "--help"]],
)
def test_help_goes_to_stdout_with_status_0(args):
    result = run(*args)
    assert result.returncode == 0
    assert b"USAGE" in result.stdout.upper()
    assert result.stderr == b""


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(b"aeschat ")


@pytest.mark.parametrize(
    "args, fragment",
    [
        ([], b"command"),
        (["chat"], b"chat"),
        (["serve", "--port", "0"], b"port"),
        (["serve", "--port=70000"], b"70000"),
        (["serve", "--prot", "1"], b"--port"),
        (["join", "--name", "", "--inbox", "x"], b"name"),
        (["join", "--inbox", "x"], b"--name"),
        (["join", "--name", "alice", "--inbox", ""], b"--inbox"),
        (["keygen", "--out"], b"--out"),
        (["serve", "--cluster", "redis://u:secret@127.0.0.1"], b"AESCHAT_CLUSTER_PASSWORD"),
        (["serve", "--cluster", "nats://127.0.0.1"], b"NATS"),
        (["serve", "--cluster-prefix", "a:b"], b"cluster prefix"),
        (["serve", "--cluster-dead-after", "1"], b"seconds from 2 to 3600"),
    ],
)
def test_usage_errors_exit_64_with_the_problem_first_on_stderr(args, fragment):
    result = run(*args)
    assert result.returncode == 64
    assert result.stdout == b""
    first = result.stderr.decode().splitlines()[0]
    assert first.startswith("Error: ")
    assert fragment.decode() in first
    assert b"Usage:" in result.stderr


def test_join_without_a_key_uses_automatic_keys_and_makes_an_identity(tmp_path):
    environment = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = subprocess.run(
        [binary_path(), "join", "--name", "alice", "--inbox", str(tmp_path / "in"), "--port", str(free_port()),
         "--relay-key", NOBODY_KEY],
        capture_output=True, timeout=30, env=environment,
    )
    assert result.returncode == 69
    identity = tmp_path / "config" / "aeschat" / "identity"
    assert b"made a new identity key" in result.stderr
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    assert stat.S_IMODE(identity.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    "content",
    [None, b"", b"abc", b"zz" * 32, b"00" * 31, b"00" * 33, b"\xff\xfe" * 32, b"00" * 3000],
)
def test_bad_key_files_exit_65(tmp_path, content):
    key = tmp_path / "room.key"
    if content is not None:
        key.write_bytes(content)
        key.chmod(0o600)
    result = run("join", "--name", "alice", "--inbox", str(tmp_path / "in"), "--key", str(key), "--port", str(free_port()),
                 "--relay-key", NOBODY_KEY)
    assert result.returncode == 65, result.stderr
    assert len(result.stderr.decode().strip().splitlines()) == 1
    assert str(key) in result.stderr.decode()


def test_key_file_that_is_a_directory_exits_65(tmp_path):
    result = run("join", "--name", "alice", "--inbox", str(tmp_path / "in"), "--key", str(tmp_path), "--relay-key", NOBODY_KEY)
    assert result.returncode == 65


def test_keygen_prints_a_fresh_key_each_time():
    first, second = run("keygen"), run("keygen")
    assert first.returncode == 0 and second.returncode == 0
    a, b = first.stdout.decode().strip(), second.stdout.decode().strip()
    assert len(a) == 64 and int(a, 16) >= 0
    assert a != b


def test_keygen_out_writes_mode_0600_and_never_overwrites(tmp_path):
    path = tmp_path / "room.key"
    old_umask = os.umask(0)
    try:
        result = run("keygen", "--out", str(path))
    finally:
        os.umask(old_umask)
    assert result.returncode == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    original = path.read_text()
    assert len(original.strip()) == 64
    again = run("keygen", "--out", str(path))
    assert again.returncode == 74
    assert b"already exists" in again.stderr
    assert path.read_text() == original


def test_keygen_out_refuses_to_follow_a_symlink(tmp_path):
    target = tmp_path / "target"
    link = tmp_path / "link.key"
    link.symlink_to(target)
    result = run("keygen", "--out", str(link))
    assert result.returncode == 74
    assert not target.exists()


def test_group_readable_key_file_is_warned_about(tmp_path, key_file):
    key_file.chmod(0o644)
    result = run("join", "--name", "alice", "--inbox", str(tmp_path / "in"), "--key", str(key_file), "--port", str(free_port()),
                 "--relay-key", NOBODY_KEY)
    assert b"chmod 600" in result.stderr
    assert result.returncode == 69


def test_unreachable_relay_exits_69_with_one_clear_line(tmp_path, key_file):
    result = run("join", "--name", "alice", "--inbox", str(tmp_path / "in"), "--key", str(key_file), "--port", str(free_port()),
                 "--relay-key", NOBODY_KEY)
    assert result.returncode == 69
    assert b"cannot reach relay" in result.stderr
    assert b"Connection refused" in result.stderr


def test_join_creates_the_inbox_folder(tmp_path, key_file, relay):
    inbox = tmp_path / "deep" / "inbox"
    result = run("join", "--name", "alice", "--inbox", str(inbox), "--key", str(key_file), "--port", str(relay.port),
                 "--relay-key", relay.key)
    assert result.returncode == 0, result.stderr
    assert inbox.is_dir()


def test_serve_on_a_port_in_use_exits_69(relay):
    result = run("serve", "--port", str(relay.port))
    assert result.returncode == 69
    assert b"Address already in use" in result.stderr


def test_serve_with_a_cluster_user_but_no_password_exits_64(tmp_path):
    environment = {key: value for key, value in os.environ.items() if key != "AESCHAT_CLUSTER_PASSWORD"}
    result = subprocess.run(
        [binary_path(), "serve", "--port", str(free_port()), "--relay-key", str(tmp_path / "key"), "--cluster",
         "redis://relay@127.0.0.1:6379"], capture_output=True, timeout=30, env=environment)
    assert result.returncode == 64
    assert result.stderr.decode().splitlines() == [
        "Error: the cluster URL names the Redis user 'relay' but AESCHAT_CLUSTER_PASSWORD is not set"]


def test_serve_on_ipv6_loopback_and_join_over_it(tmp_path, key_file):
    port = free_port()
    key_path = tmp_path / "relay-key"
    server = subprocess.Popen([binary_path(), "serve", "--host", "::1", "--port", str(port), "--relay-key", str(key_path)],
                              stderr=subprocess.PIPE)
    try:
        lines = []
        while not any("[::1]" in line for line in lines):
            lines.append(server.stderr.readline().decode())
            assert lines[-1] and len(lines) < 20, lines
        relay_key = next(filter(None, map(key_from_join_line, lines)), None) or show_key(key_path)
        result = run("join", "--name", "alice", "--inbox", str(tmp_path / "in"), "--key", str(key_file), "--host", "::1",
                     "--port", str(port), "--json", "--relay-key", relay_key)
        assert result.returncode == 0, result.stderr
        assert b'"event":"ready"' in result.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_join_with_an_inbox_under_a_file_exits_74(tmp_path, key_file, relay):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = subprocess.run(
        [binary_path(), "join", "--name", "eve", "--port", str(relay.port), "--key", str(key_file), "--inbox",
         str(blocker / "inbox"), "--relay-key", relay.key], input="", capture_output=True, text=True, timeout=30)
    assert result.returncode == 74, result.stderr
    assert result.stderr.count("\n") <= 2, result.stderr


def test_selftest_passes_on_a_healthy_installation_and_reports_each_check(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir(mode=0o700)
    result = run("selftest", "--inbox", str(inbox))
    assert result.returncode == 0, result.stdout.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("aeschat ") and lines[0].endswith(" selftest")
    for name in ["libgcrypt", "AES-256-GCM", "Ed25519", "worked example 9.3", "worked example 9.5", "chat in process",
                 "chat over loopback TCP", "identity file", "inbox", "random generator"]:
        assert any(line.startswith("  ok    " + name) for line in lines), name
    count = len(lines) - 2
    assert lines[-1].startswith(f"{count} checks, {count} passed, 0 failed, in ")
    assert result.stderr == b""


def test_selftest_json_and_a_failing_check_exit_1(tmp_path):
    import json

    folder = tmp_path / "xdg-config" / "aeschat"  # the private configuration folder of conftest.py
    folder.mkdir(parents=True, mode=0o700)
    identity = folder / "identity"
    made = run("keygen", "--identity", str(identity))
    assert made.returncode == 0, made.stderr
    os.chmod(identity, 0o644)
    result = run("selftest", "--json")
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stdout.decode().splitlines()]
    failed = [event for event in events if event["event"] == "check" and not event["passed"]]
    assert [event["name"] for event in failed] == ["identity file"]
    assert "chmod 600" in failed[0]["detail"]
    assert events[-1]["event"] == "summary" and events[-1]["failed"] == 1 and events[-1]["passed"] is False
