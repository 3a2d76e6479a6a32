"""Files with consent and control: asking before accepting, declining, timeouts, --accept-files none, /transfers,
/cancel both ways, /send DIR with its confinement, and the terminal's question, Tab completion of paths and the
80-column progress readout (tmux)."""

import os
import re
import signal
import time

from conftest import Client
from test_files import make_file, sha256_of, start
# The terminal fixture and the key mode of test_terminal: these behaviours do not depend on the key mode (the
# transfers themselves are tested in both by test_files.py), so every test here runs once, with automatic keys.
from test_terminal import joined, mode, terminal  # noqa: F401


def ask_client(clients, name, *extra):
    client = clients(name, extra=["--accept-files", "ask", *extra])
    return client


def test_asked_receiver_accepts_by_number_and_the_file_arrives(tmp_path, clients):
    alice = clients("alice")
    alice.ready()
    bob = ask_client(clients, "bob")
    bob.ready()
    alice.events(event="joined", name="bob")
    source = make_file(tmp_path / "report.pdf", 300_000)
    alice.say(f"/send {source}")
    offer = bob.events(event="file-offer", timeout=30)
    assert offer["from"] == "alice" and offer["name"] == "report.pdf" and offer["bytes"] == 300_000
    assert offer["timeout"] == 60
    # Nothing lands before the answer.
    time.sleep(0.5)
    assert not (tmp_path / "inbox-bob" / "report.pdf").exists()
    bob.say("/transfers")
    listed = bob.events(event="transfers")["transfers"]
    assert listed == [{"id": offer["id"], "direction": "receive", "name": "report.pdf", "from": "alice", "bytes": 0,
                       "total": 300_000, "state": "asking"}]
    bob.say(f"/accept {offer['id']}")
    received = bob.events(event="file", timeout=30)
    assert received["sha256"] == sha256_of(source)
    assert alice.events(event="file-sent", timeout=30)["to"] == ["bob"]


def test_a_declined_offer_tells_the_sender_in_one_line(tmp_path, clients):
    alice, = start(clients, "alice")
    bob = ask_client(clients, "bob")
    bob.ready()
    alice.events(event="joined", name="bob")
    source = make_file(tmp_path / "x.bin", 1000)
    alice.say(f"/send {source}")
    bob.events(event="file-offer", timeout=30)
    bob.say("/decline")
    failed = alice.events(event="file-failed", timeout=30)
    assert failed["to"] == "bob" and failed["reason"] == "bob declined: not wanted"
    assert alice.events(event="file-failed", timeout=10)["reason"] == "nobody accepted the file"
    assert not list((tmp_path / "inbox-bob").iterdir())


def test_an_unanswered_offer_is_declined_after_the_timeout(tmp_path, relay, mode_key):
    os.environ["AESCHAT_ASK_SECONDS"] = "2"
    try:
        bob = Client("bob", relay.port, mode_key, tmp_path / "inbox-bob", extra=["--accept-files", "ask"])
    finally:
        del os.environ["AESCHAT_ASK_SECONDS"]
    alice = None
    try:
        # alice starts once bob is in, so that bob sees her join (started together, either may register first).
        bob.ready()
        alice = Client("alice", relay.port, mode_key, tmp_path / "inbox-alice")
        alice.ready()
        bob.events(event="joined", name="alice")
        source = make_file(tmp_path / "x.bin", 1000)
        alice.say(f"/send {source}")
        offer = bob.events(event="file-offer", timeout=30)
        assert offer["timeout"] == 2
        mine = bob.events(event="file-failed", timeout=15)
        assert mine["reason"] == "not accepted within 2 s, so declined"
        theirs = alice.events(event="file-failed", timeout=15)
        assert theirs["to"] == "bob" and theirs["reason"] == "bob declined: no answer within 2 s"
        bob.say(f"/accept {offer['id']}")
        assert bob.events(event="error")["message"].startswith(f"no file offer #{offer['id']} is waiting")
    finally:
        if alice is not None:
            alice.kill()
        bob.kill()


def test_accept_files_none_declines_everything_saying_why(tmp_path, clients):
    alice, = start(clients, "alice")
    bob = clients("bob", extra=["--accept-files", "none"])
    bob.ready()
    alice.events(event="joined", name="bob")
    # With automatic keys bob's profile says he takes no files (docs/PROTOCOL.md 6.5): nothing is offered to him.
    assert alice.events(event="member", name="bob")["features"] == []
    alice.say(f"/send {make_file(tmp_path / 'x.bin', 10)}")
    assert alice.events(event="error")["message"] == (
        "nobody here takes files (their clients say so: no inbox, or --accept-files none); nothing was offered")
    # An offer that reaches him anyway (a client that does not read features) is declined, saying why: carol
    # takes files, so the room offer goes out, and bob declines it too (not counted by alice: he is not a target).
    carol = clients("carol")
    carol.ready()
    alice.events(event="joined", name="carol")
    alice.say(f"/send {make_file(tmp_path / 'y.bin', 10)}")
    assert alice.events(event="file-sent", timeout=30)["to"] == ["carol"]
    declined = bob.events(event="file-failed", timeout=30)
    assert declined["reason"] == "bob takes no files (--accept-files none)"


def test_cancel_both_ways_tells_the_other_side(tmp_path, clients, monkeypatch):
    """Carol is stopped once she accepted, so the transfer stalls within its window (flow control) and stays
    cancellable; nobody is dropped as too slow meanwhile (60 s)."""
    monkeypatch.setenv("AESCHAT_TRANSFER_STALL_SECONDS", "60")
    alice, bob, carol = start(clients, "alice", "bob", "carol")
    source = make_file(tmp_path / "big.bin", 128 * 1024 * 1024)
    alice.say(f"/send {source}")
    # Once the first chunk went out, every reply is in (carol's reply could still wait in her output queue when her
    # file-incoming line is written, so stopping her then could hold the offer back).
    alice.events(event="file-progress", timeout=60)
    os.kill(carol.process.pid, signal.SIGSTOP)
    try:
        bob.events(event="file-incoming", timeout=60)
        bob.say("/transfers")
        listed = bob.events(event="transfers")["transfers"]
        assert len(listed) == 1 and listed[0]["state"] == "moving" and listed[0]["from"] == "alice"
        bob.say(f"/cancel #{listed[0]['id']}")
        mine = bob.events(event="file-failed", timeout=15)
        assert mine["reason"].startswith("bob cancelled")  # with where its part is kept, once chunks arrived
        theirs = alice.events(event="file-failed", to="bob", timeout=15)
        assert theirs["reason"] == "bob stopped receiving: bob cancelled"
        alice.say("/transfers")
        sending = alice.events(event="transfers")["transfers"]
        assert len(sending) == 1 and sending[0]["direction"] == "send" and sending[0]["to"] == "the room"
        assert sending[0]["state"] == "moving" and sending[0]["bytes"] < sending[0]["total"]
        alice.say("/cancel big.bin")
        assert alice.events(event="file-failed", timeout=15)["reason"] == "alice cancelled"
    finally:
        os.kill(carol.process.pid, signal.SIGCONT)
    told = carol.events(event="file-failed", timeout=30)
    assert told["reason"].startswith("alice stopped sending: alice cancelled")
    assert not (tmp_path / "inbox-bob" / "big.bin").exists()


def test_send_a_folder_lands_under_its_relative_paths_and_follows_no_link(tmp_path, clients):
    alice, bob = start(clients, "alice", "bob")
    top = tmp_path / "photos"
    (top / "2024" / "june").mkdir(parents=True)
    (top / "a.txt").write_text("a")
    (top / "2024" / "b.txt").write_text("bb")
    (top / "2024" / "june" / "c.txt").write_text("ccc")
    (top / ".hidden").write_text("h")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (top / "link.txt").symlink_to(secret)
    (top / "linkdir").symlink_to(tmp_path)
    alice.say(f"/send {top}")
    first = alice.events(event="info", timeout=30)["message"]
    assert first.startswith("offering the folder photos/ (3 files, 6 B) to the room")
    assert first.endswith("3 links, hidden or special entries skipped")
    names = sorted(bob.events(event="file", timeout=30)["name"] for _ in range(3))
    assert names == ["photos/2024/b.txt", "photos/2024/june/c.txt", "photos/a.txt"]
    assert alice.events(event="info", message="sent the folder photos/ (3 files)", timeout=30)
    inbox = tmp_path / "inbox-bob"
    assert (inbox / "photos" / "2024" / "june" / "c.txt").read_text() == "ccc"
    assert (inbox / "photos" / "a.txt").read_text() == "a"
    assert not (inbox / "photos" / "link.txt").exists() and not (inbox / "photos" / "linkdir").exists()
    assert not (inbox / "photos" / ".hidden").exists()
    assert os.stat(inbox / "photos" / "2024").st_mode & 0o777 == 0o700


def test_a_link_planted_in_the_inbox_is_not_followed(tmp_path, clients):
    alice, bob = start(clients, "alice", "bob")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "inbox-bob" / "photos").symlink_to(outside)
    top = tmp_path / "photos"
    top.mkdir()
    (top / "a.txt").write_text("a")
    alice.say(f"/send {top}")
    failed = bob.events(event="file-failed", timeout=30)
    assert failed["reason"].startswith("cannot use the folder 'photos' in the inbox")
    assert not list(outside.iterdir())


def status_row(pane):
    return [line.rstrip() for line in pane.screen()][pane.rows() - 2]


def test_the_terminal_asks_and_y_accepts(terminal, clients, tmp_path):
    alice, (bob,) = joined(terminal, clients)
    source = make_file(tmp_path / "notes.bin", 5000)
    bob.say(f"/send {source}")
    alice.wait_for_text("? bob offers notes.bin, 5.0 kB — accept? [y/N]", timeout=30)
    alice.wait_for(lambda text: alice.input_line() == "accept notes.bin (5.0 kB) from bob? [y/N]", "the question")
    assert "file offered: y/n" in status_row(alice)
    alice.type("y")
    assert bob.events(event="file-sent", timeout=30)["to"] == ["alice"]
    assert (tmp_path / "inbox-alice" / "notes.bin").read_bytes() == source.read_bytes()
    alice.wait_for(lambda text: alice.input_line() == ">", "the prompt back")
    bob.say(f"/send {source}")
    alice.wait_for_text("? bob offers notes.bin", timeout=30)
    alice.wait_for(lambda text: alice.input_line().startswith("accept notes.bin"), "the second question")
    alice.keys("Enter")
    assert bob.events(event="file-failed", timeout=30)["reason"] == "alice declined: not wanted"


def test_tab_completes_send_paths_relative_to_the_working_folder(terminal, clients, tmp_path):
    folder = tmp_path / "pane-alice"
    (folder / "reports").mkdir(parents=True)
    (folder / "report.pdf").write_text("r")
    (folder / "reports" / "q1.pdf").write_text("q1")
    alice, (bob,) = joined(terminal, clients)
    alice.type("/send rep")
    alice.keys("Tab")
    alice.wait_for(lambda text: alice.input_line() == "> /send report", "the common beginning")
    alice.type("s")
    alice.keys("Tab")
    alice.wait_for(lambda text: alice.input_line() == "> /send reports/", "the folder, with its slash")
    alice.keys("Tab")
    alice.wait_for(lambda text: alice.input_line() == "> /send reports/q1.pdf", "the file inside")
    alice.keys("Enter")
    assert bob.events(event="file", timeout=30)["name"] == "q1.pdf"
    alice.type("/send ~/rep")
    alice.keys("Tab")
    alice.wait_for(lambda text: alice.input_line() == "> /send ~/report", "the home folder's entries")


def test_the_progress_readout_fits_80_columns(terminal, clients, tmp_path, monkeypatch):
    monkeypatch.setenv("AESCHAT_TRANSFER_STALL_SECONDS", "60")
    stall = {"AESCHAT_TRANSFER_STALL_SECONDS": "60"}
    alice, (bob, carol) = joined(terminal, clients, others=("bob", "carol"), width=80, environment=stall)
    source = make_file(tmp_path / "big.bin", 128 * 1024 * 1024)
    alice.type(f"/send {source}")
    alice.keys("Enter")
    # Carol stopped once the chunks flow (bob has one): the transfer stalls within its window, so the readout
    # stays on screen.
    bob.events(event="file-progress", timeout=60)
    os.kill(carol.process.pid, signal.SIGSTOP)
    try:
        readout = re.compile(r"↑ big\.bin \d+% (\S+ [kMG]?B/s ETA \d+:\d\d|stalled)")
        alice.wait_for(lambda text: readout.search(status_row(alice)), "the whole readout in the status row", 60)
        assert len(status_row(alice)) <= 80
        bob.say("hello")
        alice.wait_for_text("<bob> hello")
    finally:
        os.kill(carol.process.pid, signal.SIGCONT)
