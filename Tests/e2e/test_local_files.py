"""The client's own files with the real binary (issue 11): the trust store (known_peers) fails closed and pins a
name on a relay in every room, the inbox must be the user's alone, and a loose identity file is warned about."""

import os
import pwd
import stat
import subprocess

import pytest

from conftest import Client, binary_path


@pytest.fixture
def mode():
    """Every test here is about automatic keys: run each once."""
    return "automatic"


def make_identity(config):
    """An identity in `config`'s aeschat folder, made by keygen (so that join prints nothing about making one)."""
    folder = config / "aeschat"
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [binary_path(), "keygen", "--identity", str(folder / "identity")], capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return folder


def join_once(tmp_path, relay, config, inbox=None, extra=()):
    """Runs join with no input: it registers, then leaves at once (or fails before connecting)."""
    environment = dict(os.environ, XDG_CONFIG_HOME=str(config))
    return subprocess.run(
        [binary_path(), "join", "--name", "alice", "--inbox", str(inbox or tmp_path / "inbox"), "--port",
         str(relay.port), "--relay-key", relay.key, *extra],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, env=environment,
    )


def snapshot(path):
    if path.is_dir():
        return ("directory", sorted(os.listdir(path)))
    with open(path, "rb") as file:
        return ("file", path.stat().st_size, file.read(4096))


@pytest.mark.parametrize("damage", ["oversize", "directory", "not-text", "garbage-line"])
def test_a_known_peers_file_that_cannot_be_read_stops_join_with_exit_74_and_is_never_written(tmp_path, relay, damage):
    config = tmp_path / "config"
    folder = make_identity(config)
    store = folder / "known_peers"
    pin = "127.0.0.1:7777 bob " + "ab" * 32 + " verified\n"
    if damage == "oversize":
        store.write_text(pin)
        os.truncate(store, 16 * 1024 * 1024 + 1)
    elif damage == "directory":
        store.mkdir()
    elif damage == "not-text":
        store.write_bytes(pin.encode() + b"\xff\xfe\x00\x80\n")
    else:
        store.write_text(pin + "this is not a pin\n")
    before = snapshot(store)
    result = join_once(tmp_path, relay, config)
    assert result.returncode == 74, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and f"'{store}'" in lines[0], lines
    assert "aside to start again with no pins" in lines[0]
    assert snapshot(store) == before
    # Nothing reached the relay: join stopped before connecting.
    assert not any("alice joined" in line for line in relay.log.seen)


def test_a_pin_covers_the_name_in_every_room_of_the_relay_however_it_is_addressed(tmp_path, relay):
    alice_config = tmp_path / "alice-config"
    alice = Client("alice", relay.port, None, tmp_path / "inbox-alice", config=alice_config)
    alice.ready()
    bob = Client("bob", relay.port, None, tmp_path / "inbox-bob")
    bob_fingerprint = bob.ready()["fingerprint"]
    alice.events(event="member", name="bob")
    alice.say("/trust bob")
    alice.events(event="trusted", name="bob")
    for client in (alice, bob):
        client.close_input()
        assert client.wait() == 0
    # The pin names the relay by its key's fingerprint (relay-<32 hex digits>) and bob without a room.
    relay_identity = "relay-" + "".join(relay.fingerprint.split()[1:])
    lines = (alice_config / "aeschat" / "known_peers").read_text().splitlines()
    assert [line.split()[:2] + line.split()[3:] for line in lines] == [
        [relay_identity, "bob", "unverified"],
        [relay_identity, "bob", "verified"],
    ]
    # Someone else as bob, in another room, with alice reaching the relay as localhost.
    impostor = Client("bob", relay.port, None, tmp_path / "inbox-impostor", room="ops")
    assert impostor.ready()["fingerprint"] != bob_fingerprint
    again = Client(
        "alice", relay.port, None, tmp_path / "inbox-alice", room="ops", config=alice_config,
        extra=["--host", "localhost"],
    )
    again.ready()
    warning = again.events(event="warning", kind="key-changed")
    assert warning["name"] == "bob" and "messages are held for them" in warning["message"]
    assert again.events(event="member", name="bob")["status"] == "changed"
    again.say("only for the real bob")
    assert again.events(event="info", what="held notice")["message"].startswith("message held, not sent")
    again.say("/msg bob only for the real bob")
    again.events(event="error")
    again.close_input()
    again.wait()
    impostor.close_input()
    assert impostor.wait() == 0
    assert not any("only for the real bob" in line for line in impostor.out.seen)
    for client in (alice, bob, impostor, again):
        client.kill()


@pytest.mark.parametrize("problem", ["writable-by-others", "writable-by-group", "owned-by-nobody"])
def test_an_inbox_that_is_not_the_users_alone_is_refused_with_exit_74(tmp_path, relay, problem):
    config = tmp_path / "config"
    make_identity(config)
    inbox = tmp_path / "shared"
    inbox.mkdir(mode=0o700)
    if problem == "writable-by-others":
        os.chmod(inbox, 0o777)
        expected = "can be written by other users (mode 777)"
    elif problem == "writable-by-group":
        os.chmod(inbox, 0o770)
        expected = "can be written by other users (mode 770)"
    else:
        if os.geteuid() != 0:
            pytest.skip("only root can give a folder to another user")
        nobody = pwd.getpwnam("nobody").pw_uid
        os.chown(inbox, nobody, os.getegid())
        expected = f"belongs to another user (uid {nobody})"
    result = join_once(tmp_path, relay, config, inbox=inbox)
    assert result.returncode == 74, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and f"inbox folder '{inbox}' {expected}" in lines[0], lines
    assert "chmod 700" in lines[0]
    assert os.listdir(inbox) == []


def test_an_identity_file_readable_by_others_is_warned_about_and_a_private_one_is_not(tmp_path, relay):
    config = tmp_path / "config"
    identity = make_identity(config) / "identity"
    quiet = join_once(tmp_path, relay, config)
    assert quiet.returncode == 0 and "warning" not in quiet.stderr, quiet
    os.chmod(identity, 0o644)
    loose = join_once(tmp_path, relay, config)
    assert loose.returncode == 0, loose
    assert (
        f"warning: identity file '{identity}' can be read by other users (mode 644); "
        f"restrict it with 'chmod 600 {identity}'"
    ) in loose.stderr.splitlines()
    assert stat.S_IMODE(identity.stat().st_mode) == 0o644
