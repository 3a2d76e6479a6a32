"""Everyday settings (issue 14, items 15 and 19; docs/CLI.md, "Configuration file" and "Session log"): `join` takes
its settings from `$XDG_CONFIG_HOME/aeschat/config` under its command line, and `--log` appends the session to a
private plain-text file."""

import os
import re
import stat
import subprocess

from conftest import binary_path, relay_key_for

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "


def run_join(arguments, environment, text=b"", timeout=30):
    return subprocess.run([binary_path(), "join", *arguments], input=text, capture_output=True, timeout=timeout,
                          env=environment)


def test_a_run_takes_name_room_port_relay_key_and_log_from_the_config_file(tmp_path, clients, relay, mode_key):
    bob = clients("bob", room="team")
    bob.ready()
    config_home = tmp_path / "ann-config"
    (config_home / "aeschat").mkdir(parents=True)
    log = tmp_path / "logs" / "ann.log"
    log.parent.mkdir()
    lines = [
        "# ann's usual settings",
        "name = ann",
        "room = team",
        f"port = {relay.port}",
        f"relay-key = {relay_key_for(relay.port)}",
        "log = ~/logs/ann.log",
        "bell = off",
        "colour = never",
    ]
    if mode_key is not None:
        lines.append(f"key = {mode_key}")
    (config_home / "aeschat" / "config").write_text("\n".join(lines) + "\n")
    environment = dict(os.environ, XDG_CONFIG_HOME=str(config_home), HOME=str(tmp_path), USER="someone-else")
    # --json on the command line, everything else from the file.
    result = run_join(["--json"], environment, b"hello from the config\n")
    assert result.returncode == 0, result.stderr
    message = bob.events(event="message", text="hello from the config", timeout=15)
    assert message["from"] == "ann"
    # The log: private, plain text, every line stamped, the user's own line as others see it.
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    text = log.read_text()
    assert "\x1b" not in text
    logged = text.splitlines()
    assert all(re.match(STAMP, line) for line in logged), logged
    bodies = [line[20:] for line in logged]
    assert bodies[0] == f"--- session started: ann in team at 127.0.0.1:{relay.port}"
    assert "<ann> hello from the config" in bodies
    assert any(body.startswith("* you are ann in team") for body in bodies), bodies
    assert bodies[-1] == "--- session ended"
    # A second run appends; the command line wins over the file (--name).
    result = run_join(["--json", "--name", "ann2"], environment, b"second\n")
    assert result.returncode == 0, result.stderr
    assert bob.events(event="message", text="second", timeout=15)["from"] == "ann2"
    again = log.read_text()
    assert again.startswith(text) and "<ann2> second" in again


def test_received_messages_are_logged_escaped(tmp_path, clients, relay, mode_key):
    log = tmp_path / "alice.log"
    alice = clients("alice", extra=["--log", str(log)])
    alice.ready()
    bob = clients("bob")
    bob.ready()
    alice.events(event="joined", name="bob")
    bob.say("look \x1b[31mred\x1b[0m")
    alice.events(event="message", text="look \x1b[31mred\x1b[0m")
    alice.close_input()
    assert alice.wait() == 0
    text = log.read_text()
    assert "\x1b" not in text
    assert re.search(STAMP + r"<bob> look \\x1B\[31mred\\x1B\[0m$", text, re.M), text
    assert re.search(STAMP + r"\* bob joined$", text, re.M), text


def test_a_log_file_others_may_read_is_refused_before_connecting(tmp_path, relay):
    log = tmp_path / "shared.log"
    log.write_text("")
    os.chmod(log, 0o644)
    result = run_join(["--name", "ann", "--port", str(relay.port), "--relay-key", relay_key_for(relay.port), "--log",
                       str(log)], dict(os.environ))
    assert result.returncode == 74
    assert result.stderr.decode().strip() == (
        f"Error: the log file '{log}' can be read or written by other users (mode 644); restrict it with "
        f"'chmod 600 {log}' or choose another file")
    assert log.read_text() == ""
    link = tmp_path / "link.log"
    link.symlink_to(tmp_path / "elsewhere.log")
    result = run_join(["--name", "ann", "--port", str(relay.port), "--relay-key", relay_key_for(relay.port), "--log",
                       str(link)], dict(os.environ))
    assert result.returncode == 74
    assert "symbolic link" in result.stderr.decode()
    assert not (tmp_path / "elsewhere.log").exists()


def test_a_bad_config_line_is_one_line_naming_file_and_line_with_exit_64(tmp_path):
    config_home = tmp_path / "bad-config"
    (config_home / "aeschat").mkdir(parents=True)
    path = config_home / "aeschat" / "config"
    path.write_text("name = ann\n\nport = 70000\n")
    environment = dict(os.environ, XDG_CONFIG_HOME=str(config_home))
    result = run_join([], environment)
    assert result.returncode == 64
    assert result.stderr.decode() == (
        f"Error: {path}:3: invalid port '70000': expected a number from 1 to 65535\n")
    assert result.stdout == b""
    # --no-config skips it; --config names another file, which must exist.
    result = run_join(["--no-config", "--name", "ann", "--port", "0"], environment)
    assert result.returncode == 64 and "invalid port '0'" in result.stderr.decode()
    result = run_join(["--config", str(tmp_path / "missing")], environment)
    assert result.returncode == 64
    assert result.stderr.decode() == f"Error: {tmp_path / 'missing'}: no such configuration file\n"


def test_the_name_defaults_to_user_and_an_invalid_user_is_a_clear_error(tmp_path):
    environment = dict(os.environ, USER="Jo Doe")
    environment.pop("HOME", None)
    result = run_join(["--port", "0"], environment)
    assert result.returncode == 64
    # The command line is checked first.
    assert result.stderr.decode().startswith("Error: invalid port '0'")
    result = run_join([], environment)
    assert result.returncode == 64
    assert result.stderr.decode().splitlines()[0] == (
        "Error: no --name given, and $USER 'Jo Doe' is not a valid member name: expected 1 to 32 characters: "
        "letters, digits, '-', '_' and '.'; give --name <name>")
