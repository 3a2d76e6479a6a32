"""The interactive terminal of `aeschat join`, driven through tmux like a person at a keyboard.

Each test starts a private tmux server (its own socket, a fixed 100x30 window) whose pane runs a
small script: it records `stty -g`, runs the real binary, records its exit status and `stty -g`
again. The other members are `--json` clients (conftest.Client). Every wait is bounded and the
tmux server is killed at the end of each test. tmux is required: scripts/test installs it.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import binary_path

TMUX = shutil.which("tmux") or "/usr/bin/tmux"
WIDTH, HEIGHT = 100, 30


def require_tmux():
    if not os.path.exists(TMUX):
        pytest.fail("tmux is required for the terminal tests: run scripts/test, which installs it, or apt-get install tmux")


class Pane:
    """A tmux pane running `aeschat join` through a script that records the terminal modes."""

    def __init__(self, folder, arguments, environment=None, width=WIDTH, height=HEIGHT):
        require_tmux()
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.socket = "aeschat-test-" + uuid.uuid4().hex[:12]
        self.socket_path = None
        settings = {"NO_COLOR": None, "COLORTERM": None, "HOME": str(folder), "XDG_CONFIG_HOME": None,
                    "XDG_STATE_HOME": None}
        settings.update(environment or {})
        lines = ["cd " + shlex.quote(str(folder))]
        for key, value in settings.items():
            lines.append(f"unset {key}" if value is None else f"export {key}={shlex.quote(value)}")
        command = " ".join(shlex.quote(part) for part in [os.path.abspath(binary_path()), *arguments])
        lines += [
            "stty -g > stty-before",
            # The inner shell writes its pid, then becomes the client: the pid is the client's.
            f"sh -c 'echo $$ > pid; exec \"$@\"' aeschat {command}",
            "echo $? > status.tmp && mv status.tmp status",
            "stty -g > stty-after",
            "exec sleep 600",
        ]
        (folder / "pane.sh").write_text("\n".join(lines) + "\n")
        self.tmux("new-session", "-d", "-x", str(width), "-y", str(height), "-s", "t", "sh " + shlex.quote(str(folder / "pane.sh")))
        self.socket_path = self.tmux("display", "-p", "#{socket_path}").strip()

    def tmux(self, *arguments):
        environment = dict(os.environ, LC_ALL="C.UTF-8")
        result = subprocess.run(
            [TMUX, "-L", self.socket, "-f", "/dev/null", *arguments],
            capture_output=True, timeout=10, env=environment,
        )
        assert result.returncode == 0, f"tmux {arguments}: {result.stderr.decode(errors='replace')}"
        return result.stdout.decode("utf-8", "replace")

    def screen(self, escapes=False):
        """The visible lines of the pane (with SGR codes if `escapes`)."""
        return self.tmux("capture-pane", "-p", "-t", "t", *(["-e"] if escapes else [])).split("\n")[:HEIGHT]

    def text(self):
        return "\n".join(self.screen())

    def input_line(self):
        lines = [line.rstrip() for line in self.screen()]
        return lines[self.rows() - 1]

    def rows(self):
        return int(self.tmux("display", "-p", "-t", "t", "#{pane_height}").strip())

    def cursor(self):
        x, y = self.tmux("display", "-p", "-t", "t", "#{cursor_x} #{cursor_y}").split()
        return int(x), int(y)

    def wait_for(self, predicate, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{text}")
            time.sleep(0.05)

    def wait_for_text(self, fragment, timeout=10.0):
        return self.wait_for(lambda text: fragment in text, repr(fragment), timeout)

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text):
        self.tmux("send-keys", "-t", "t", "-l", text)

    def pid(self):
        return int(self.wait_file("pid"))

    def wait_file(self, name, timeout=15.0):
        path = self.folder / name
        deadline = time.monotonic() + timeout
        # The shell creates the file before writing it: wait for a whole line.
        while not (path.exists() and path.read_text().endswith("\n")):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {name}; screen:\n{self.text()}")
            time.sleep(0.05)
        return path.read_text().strip()

    def exit_status(self):
        return int(self.wait_file("status"))

    def close(self):
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
        if self.socket_path and os.path.exists(self.socket_path):
            os.unlink(self.socket_path)


@pytest.fixture
def mode():
    """The terminal does not depend on the key mode: run these once, with automatic keys (the default)."""
    return "automatic"


@pytest.fixture
def terminal(tmp_path, mode_key, relay):
    panes = []

    def start(name="alice", environment=None, extra=(), inbox=True, **size):
        key = ["--key", str(mode_key)] if mode_key else []
        arguments = ["join", "--name", name, *key, "--port", str(relay.port), "--relay-key", relay.key, *extra]
        if inbox:
            arguments += ["--inbox", str(tmp_path / f"inbox-{name}")]
        pane = Pane(tmp_path / f"pane-{name}", arguments, environment, **size)
        panes.append(pane)
        return pane

    yield start
    for pane in panes:
        pane.close()


def joined(terminal, clients, others=("bob",), **options):
    """Alice in a pane, the others as JSON clients, everyone present."""
    alice = terminal(**options)
    alice.wait_for_text("you are alice in lobby")
    made = []
    for name in others:
        other = clients(name)
        other.ready()
        alice.wait_for_text(f"{name} joined")
        made.append(other)
    return alice, made


def next_message(client, timeout=10.0):
    event = client.events(event="message", timeout=timeout)
    assert event["from"] == "alice"
    return event["text"]


def test_typing_during_a_flood_of_messages_leaves_the_input_line_intact(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    typed = "typing while it floods: héllo 你好 🎉 done"

    def flood():
        for number in range(50):
            bob.say(f"flood {number:02d}")
            time.sleep(0.02)

    sender = threading.Thread(target=flood)
    sender.start()
    seen_inputs = set()
    for index, character in enumerate(typed):
        alice.type(character)
        if index % 5 == 0:
            seen_inputs.add(alice.input_line())
    sender.join()
    alice.wait_for_text("<bob> flood 49")
    alice.wait_for(lambda text: alice.input_line() == "> " + typed, "the whole typed line")
    for line in seen_inputs:
        assert ("> " + typed).startswith(line), f"garbled input line {line!r}"
    screen = [line.rstrip() for line in alice.screen()]
    assert screen[-1] == "> " + typed
    assert "alice in lobby | 1 other here" in screen[-2]
    assert re.fullmatch(r"\d\d:\d\d <bob> flood 49", screen[-3])
    assert alice.cursor() == (2 + len(typed) + 3, HEIGHT - 1)  # 你, 好 and 🎉 take two columns
    alice.keys("Enter")
    assert next_message(bob) == typed
    alice.wait_for(lambda text: f"<alice> {typed}" in text, "alice's own line")
    assert alice.input_line() == ">"


def test_editing_keys_produce_the_expected_line(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    alice.type("hello world")
    alice.keys(*["Left"] * 6, "BSpace", "Enter")
    alice.type("one two three")
    alice.keys("C-w", "C-w")
    alice.type("four")
    alice.keys("Enter")
    alice.type("scrap")
    alice.keys("C-u")
    alice.type("again")
    alice.keys("Enter")
    alice.keys("Up", "Up")
    alice.type("!")
    alice.keys("Enter")
    alice.type("x")
    alice.keys("Home")
    alice.type("y")
    alice.keys("End")
    alice.type("z")
    alice.keys("C-a", "Right", "Delete", "C-e", "Enter")
    assert [next_message(bob) for _ in range(5)] == ["hell world", "one four", "again", "one four!", "yz"]


def test_tab_completes_a_member_name_and_a_command(terminal, clients):
    alice, (bob, carol) = joined(terminal, clients, others=("bob", "carol"))
    alice.type("b")
    alice.keys("Tab")
    alice.wait_for(lambda text: alice.input_line() == "> bob:", "the completed name")
    alice.type("lunch?")
    alice.keys("Enter")
    assert next_message(bob) == "bob: lunch?"
    assert next_message(carol) == "bob: lunch?"
    alice.type("/he")
    alice.keys("Tab")
    alice.wait_for(lambda text: alice.input_line() == "> /help", "the completed command")
    alice.keys("Enter")
    alice.wait_for_text("/unignore NAME")
    alice.type("after help")
    alice.keys("Enter")
    assert next_message(bob) == "after help"


def test_no_color_leaves_no_colour_codes_on_screen(terminal, clients):
    alice, (bob,) = joined(terminal, clients, environment={"NO_COLOR": "1"})
    bob.say("hi alice")
    alice.type("hi bob")
    alice.keys("Enter")
    alice.wait_for_text("<alice> hi bob")
    alice.wait_for_text("<bob> hi alice")
    captured = "\n".join(alice.screen(escapes=True))
    assert "\x1b" not in captured


def test_names_are_coloured_without_no_color(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    bob.say("hi there")
    alice.wait_for_text("<bob> hi there")
    captured = "\n".join(alice.screen(escapes=True))
    assert re.search(r"\x1b\[[0-9;]*(3[1-7]|9[1-7]|38;5;\d+)[0-9;]*mbob", captured), captured


@pytest.mark.parametrize(
    "how, status",
    [("ctrl-c", 130), ("sigterm", 130), ("sighup", 130), ("ctrl-d", 0), ("quit", 0), ("crash", 128 + 11)],
)
def test_the_terminal_is_restored_however_the_client_ends(terminal, clients, how, status):
    # A crash is played by SIGSEGV with Swift's backtracer off, so that the default action follows
    # the client's own handler (the backtracer, on a terminal, would wait for a key).
    environment = {"SWIFT_BACKTRACE": "enable=no"} if how == "crash" else None
    alice, (bob,) = joined(terminal, clients, environment=environment)
    if how == "crash":
        alice.type("half a line")
        # Wait until the client has the keys: sent after it died, the shell around it would echo them.
        alice.wait_for_text("half a line")
        os.kill(alice.pid(), signal.SIGSEGV)
    elif how == "ctrl-c":
        # The first Ctrl-C clears the line being typed, the second (on the empty line) quits.
        alice.type("half a line")
        alice.wait_for_text("half a line")
        alice.keys("C-c")
        alice.wait_for(lambda text: alice.input_line() == ">", "the cleared line")
        alice.keys("C-c")
    elif how == "sigterm":
        alice.type("half a line")
        alice.wait_for_text("half a line")
        os.kill(alice.pid(), signal.SIGTERM)
    elif how == "sighup":
        os.kill(alice.pid(), signal.SIGHUP)
    elif how == "ctrl-d":
        alice.keys("C-d")
    else:
        alice.type("/quit")
        alice.keys("Enter")
    assert alice.exit_status() == status
    before = alice.wait_file("stty-before")
    after = alice.wait_file("stty-after")
    assert before and after == before
    bob.events(event="left", name="alice")
    captured = "\n".join(alice.screen(escapes=True))
    assert "half a line" not in captured


def test_ctrl_c_clears_a_typed_line_and_only_a_second_ctrl_c_quits(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    alice.type("a line I thought better of")
    alice.wait_for_text("a line I thought better of")
    alice.keys("C-c")
    alice.wait_for(lambda text: alice.input_line() == ">", "the cleared line")
    alice.wait_for_text("Ctrl-C again quits")
    assert not (alice.folder / "status").exists()
    # The client goes on: the next line is sent, and Ctrl-Y would have put the cleared one back.
    alice.keys("C-y")
    alice.wait_for(lambda text: alice.input_line() == "> a line I thought better of", "the line put back")
    alice.keys("C-u")
    alice.type("still here")
    alice.keys("Enter")
    assert next_message(bob) == "still here"
    assert "Ctrl-C again quits" not in alice.text()
    # Ctrl-C on an empty line quits at once.
    alice.keys("C-c")
    assert alice.exit_status() == 130
    bob.events(event="left", name="alice")


def message_rows(pane):
    """The rows of the message area (all but the status and input rows), trailing spaces removed."""
    return [line.rstrip() for line in pane.screen()][: pane.rows() - 2]


def test_page_up_scrolls_back_through_the_session_and_page_down_returns(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    for number in range(60):
        bob.say(f"line {number:02d}")
    alice.wait_for_text("<bob> line 59")
    alice.keys("PPage")
    # The message area has 28 rows; a page keeps one line for context.
    alice.wait_for(lambda text: message_rows(alice)[-1].endswith("<bob> line 32"), "the page before")
    assert "line 59" not in alice.text()
    assert "scrolled back: PgDn for newer" in alice.screen()[alice.rows() - 2]
    alice.keys("PPage")
    alice.wait_for(lambda text: message_rows(alice)[-1].endswith("<bob> line 05"), "two pages back")
    # What arrives meanwhile waits below, counted in the status row; the view does not move.
    bob.say("arrived while scrolled back")
    alice.wait_for(lambda text: "scrolled back, 1 new" in text, "the new line counted")
    assert message_rows(alice)[-1].endswith("<bob> line 05")
    # Three pages down: two back to where the view started, one for the line that arrived meanwhile.
    alice.keys("NPage")
    alice.keys("NPage")
    alice.keys("NPage")
    alice.wait_for(lambda text: message_rows(alice)[-1].endswith("<bob> arrived while scrolled back"), "the latest")
    assert "PgDn for newer" not in alice.screen()[alice.rows() - 2]
    # Typing is unaffected throughout.
    alice.type("still typing")
    alice.keys("Enter")
    assert next_message(bob) == "still typing"


def test_search_shows_the_latest_matching_line_then_earlier_ones(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    bob.say("the first secret word is Swordfish")
    for number in range(40):
        bob.say(f"filler {number:02d}")
    bob.say("a second swordfish, later")
    for number in range(40, 80):
        bob.say(f"filler {number:02d}")
    alice.wait_for_text("<bob> filler 79")
    alice.type("/search swordfish")
    alice.keys("Enter")
    alice.wait_for(lambda text: message_rows(alice)[-1].endswith("<bob> a second swordfish, later"), "the latest match")
    assert "found 'swordfish'" in alice.screen()[alice.rows() - 2]
    alice.type("/search swordfish")
    alice.keys("Enter")
    alice.wait_for(lambda text: message_rows(alice)[-1].endswith("<bob> the first secret word is Swordfish"),
                   "the earlier match")
    alice.type("/search swordfish")
    alice.keys("Enter")
    alice.wait_for_text("no earlier line contains 'swordfish'")
    # /search is the terminal's own: nothing was sent.
    alice.type("done")
    alice.keys("Enter")
    assert next_message(bob) == "done"


def test_input_history_bell_and_ignores_are_kept_across_sessions(tmp_path, terminal, clients):
    state = tmp_path / "state"
    environment = {"XDG_STATE_HOME": str(state)}
    alice, (bob,) = joined(terminal, clients, environment=environment)
    alice.type("a line worth recalling")
    alice.keys("Enter")
    assert next_message(bob) == "a line worth recalling"
    for command in ("/bell all", "/ignore mallory"):
        alice.type(command)
        alice.keys("Enter")
    alice.wait_for_text("ignoring: mallory")
    alice.keys("C-d")
    assert alice.exit_status() == 0
    history = state / "aeschat" / "history"
    saved = state / "aeschat" / "state"
    for path in (history, saved, state / "aeschat"):
        assert os.stat(path).st_mode & 0o077 == 0, path
    assert history.read_text().splitlines() == ["a line worth recalling", "/bell all", "/ignore mallory"]
    again = terminal(name="alice2", environment=environment)
    again.wait_for_text("you are alice2 in lobby")
    status = again.screen()[again.rows() - 2]
    assert "bell: all" in status and "ignoring: mallory" in status
    for _ in range(3):
        again.keys("Up")
    again.wait_for(lambda text: again.input_line() == "> a line worth recalling", "the recalled line")


HOSTILE = [
    ("title", "a\x1b]0;pwned\x07b", "a\\x1B]0;pwned\\x07b"),
    ("cursor", "c\x1b[10;1Hd\x1b[Ae", "c\\x1B[10;1Hd\\x1B[Ae"),
    ("clear", "f\x1b[2J\x1b[Hg", "f\\x1B[2J\\x1B[Hg"),
    ("osc8", "\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\", "\\x1B]8;;http://evil.example\\x1B\\link"),
    ("osc52", "h\x1b]52;c;cHduZWQ=\x07i", "h\\x1B]52;c;cHduZWQ=\\x07i"),
    ("csi8", "j\u009b2Jk", "j\\x9B2Jk"),
    ("cr", "innocent\r<bob> fake", "innocent\\r<bob> fake"),
    ("bidi", "l\u202eevil\u202cm", "l\\u{202E}evil\\u{202C}m"),
]


def test_hostile_messages_show_as_text_and_change_nothing_else(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    alice.type("draft")
    alice.wait_for(lambda text: alice.input_line() == "> draft", "the draft")
    title = alice.tmux("display", "-p", "-t", "t", "#{pane_title}")
    before = [line.rstrip() for line in alice.screen()]
    for _, text, _ in HOSTILE:
        bob.say(text)
    bob.say("the end")
    alice.wait_for_text("<bob> the end")
    after = [line.rstrip() for line in alice.screen()]
    count = len(HOSTILE) + 1
    shown = after[-2 - count : -3]
    for (kind, _, visible), line in zip(HOSTILE, shown):
        assert re.fullmatch(r"\d\d:\d\d <bob> .*", line), (kind, line)
        assert visible in line, (kind, line)
    # Everything above scrolled up by exactly the new lines; the status and input rows stayed.
    assert after[: -2 - count] == before[count:-2]
    assert after[-2:] == before[-2:]
    assert alice.input_line() == "> draft"
    assert alice.cursor() == (7, HEIGHT - 1)
    assert alice.tmux("display", "-p", "-t", "t", "#{pane_title}") == title
    assert alice.tmux("display", "-p", "-t", "t", "#{alternate_on}").strip() == "0"
    assert alice.tmux("list-buffers") == ""
    assert len([line for line in after if "<bob>" in line]) == count


def test_terminal_queries_in_messages_make_the_client_send_nothing(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    queries = ["\x1b[6n", "\x1bP$qm\x1b\\", "\x1b[21t", "\x1b[c", "\x1b]10;?\x07", "\x1b[>c", "\u009b6n"]
    for query in queries:
        bob.say("q" + query)
    bob.say("queries done")
    alice.wait_for_text("<bob> queries done")
    time.sleep(1.0)
    assert alice.input_line() == ">"
    # Had anything been sent (an answer to a query, say), it would arrive at bob before "ok".
    alice.type("ok")
    alice.keys("Enter")
    assert next_message(bob) == "ok"


def test_wide_and_combining_characters_keep_the_cursor_in_place(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    alice.type("你好e\u0301")
    alice.wait_for(lambda text: alice.input_line() == "> 你好e\u0301", "the wide line")
    assert alice.cursor() == (7, HEIGHT - 1)
    alice.keys("Left", "Left")
    alice.wait_for(lambda text: alice.cursor() == (4, HEIGHT - 1), "the cursor between the wide characters")
    alice.type("x")
    alice.keys("Enter")
    assert next_message(bob) == "你x好e\u0301"


def test_long_input_scrolls_horizontally_and_is_sent_whole(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    long_line = " ".join(f"word{number:03d}" for number in range(40))
    alice.type(long_line)
    alice.wait_for(lambda text: alice.input_line().endswith("word039"), "the end of the line")
    assert alice.input_line().startswith("> <")
    assert len(alice.input_line()) <= WIDTH - 1
    alice.keys("Home")
    alice.wait_for(lambda text: alice.input_line().startswith("> word000 word001"), "the start of the line")
    assert alice.input_line().endswith(">")
    alice.keys("Enter")
    assert next_message(bob) == long_line


def test_window_resize_redraws_the_screen(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    bob.say("before the resize")
    alice.wait_for_text("<bob> before the resize")
    alice.type("still typing")
    alice.tmux("resize-window", "-t", "t", "-x", "60", "-y", "12")
    alice.wait_for(lambda text: alice.rows() == 12 and alice.input_line() == "> still typing", "the redraw")
    lines = [line.rstrip() for line in alice.screen()][:12]
    assert "alice in lobby | 1 other here" in lines[10]
    assert any(line.endswith("<bob> before the resize") for line in lines[:10])
    assert alice.cursor() == (14, 11)
    alice.keys("Enter")
    assert next_message(bob) == "still typing"


def test_stop_and_continue_return_to_raw_mode_and_redraw(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    bob.say("before the stop")
    alice.wait_for_text("<bob> before the stop")
    alice.type("half typed")
    alice.wait_for(lambda text: alice.input_line() == "> half typed", "the typed text")
    tty = alice.tmux("display", "-p", "-t", "t", "#{pane_tty}").strip()
    pid = alice.pid()

    def modes():
        result = subprocess.run(["stty", "-F", tty, "-a"], capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr
        return set(result.stdout.replace(";", " ").split())

    assert {"-icanon", "-echo", "-isig"} <= modes()
    os.kill(pid, signal.SIGSTOP)
    try:
        # What a shell does when its job stops: its own modes back, and its lines over the screen.
        subprocess.run(["stty", "-F", tty, "sane"], check=True, timeout=10)
        with open(tty, "w") as pane:
            pane.write("\r\n[1]+  Stopped                 aeschat join\r\n$ fg\r\n")
        alice.wait_for_text("Stopped")
        assert {"icanon", "echo", "isig"} <= modes()
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while not {"-icanon", "-echo", "-isig"} <= modes():
        assert time.monotonic() < deadline, f"not back in raw mode: {sorted(modes())}"
        time.sleep(0.05)
    # The whole screen is repainted: the shell's lines are gone, the chat, status row and input line are back.
    alice.wait_for(lambda text: "Stopped" not in text and alice.input_line() == "> half typed", "the redraw")
    lines = [line.rstrip() for line in alice.screen()]
    assert any(line.endswith("<bob> before the stop") for line in lines)
    assert "alice in lobby | 1 other here" in lines[alice.rows() - 2]
    # Keys reach the line editor again, one by one (a cooked terminal would hold them until Enter and echo them).
    alice.type(" and finished")
    alice.wait_for(lambda text: alice.input_line() == "> half typed and finished", "the keys")
    alice.keys("Enter")
    assert next_message(bob) == "half typed and finished"


def test_a_multi_line_paste_asks_before_sending_one_message(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    alice.tmux("set-buffer", "-b", "paste", "first line\nsecond line")
    alice.tmux("paste-buffer", "-p", "-d", "-b", "paste", "-t", "t")
    alice.wait_for(lambda text: alice.input_line() == "> first line\u23cesecond line", "the pasted text")
    alice.keys("Enter")
    alice.wait_for_text("Send these 2 lines as one message?")
    alice.type("y")
    assert next_message(bob) == "first line\nsecond line"
    alice.wait_for_text("<alice> first line")


def test_local_commands_answer_here_and_send_nothing(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    for line in ["/frobnicate", "/bell loud", "/ignore", "/send no-such-file.txt"]:
        alice.type(line)
        alice.keys("Enter")
    alice.wait_for_text("-- unknown command '/frobnicate': type /help for the list")
    alice.wait_for_text("-- unknown bell setting 'loud': expected /bell off, /bell mentions or /bell all")
    alice.wait_for_text("-- expected /ignore NAME: a member name")
    alice.wait_for_text("cannot read 'no-such-file.txt': No such file or directory")
    alice.type("/msg bob just for you")
    alice.keys("Enter")
    assert bob.events(event="message", text="just for you")["private"] is True
    alice.type("/ignore bob")
    alice.keys("Enter")
    alice.wait_for_text("ignoring bob")
    bob.say("you cannot see this")
    bob.say("/me waves")
    time.sleep(1.0)  # let both arrive while bob is ignored
    alice.type("/unignore bob")
    alice.keys("Enter")
    alice.wait_for_text("no longer ignoring bob")
    bob.say("/me bows")
    alice.wait_for_text("* bob bows")
    assert "you cannot see this" not in alice.text()
    alice.type("/me waves back")
    alice.keys("Enter")
    action = bob.events(event="message", action=True)
    assert (action["from"], action["text"]) == ("alice", "waves back")
    alice.wait_for_text("* alice waves back")


def test_the_inbox_folder_is_asked_for_on_a_terminal(terminal, tmp_path):
    alice = terminal(inbox=False)
    alice.wait_for_text("Inbox folder for received files [~/aeschat-inbox]:")
    alice.keys("Enter")
    alice.wait_for_text("you are alice in lobby")
    assert (alice.folder / "aeschat-inbox").is_dir()
    alice.keys("C-d")
    assert alice.exit_status() == 0


def test_a_dumb_terminal_gets_plain_lines_without_escape_codes(terminal, clients):
    alice = terminal(environment={"TERM": "dumb"})
    alice.wait_for_text("* you are alice in lobby")
    bob = clients("bob")
    bob.ready()
    bob.say("plain")
    alice.wait_for_text("<bob> plain")
    assert "\x1b" not in "\n".join(alice.screen(escapes=True))
    alice.type("hello from a dumb terminal")
    alice.keys("Enter")
    assert next_message(bob) == "hello from a dumb terminal"
    alice.keys("C-d")
    assert alice.exit_status() == 0
    assert alice.wait_file("stty-after") == alice.wait_file("stty-before")


def test_own_fingerprint_check_marks_and_the_room_code_in_the_status_row(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    # The banner shows the user's own fingerprint, the one bob's client sees for alice.
    bob.say("/who")
    alice_fingerprint = bob.events(event="who")["members"][0]["fingerprint"]
    alice.wait_for_text(f"-- your fingerprint: {alice_fingerprint} (/verify shows it again)")
    alice.wait_for_text("* bob is new to you (")
    # The room code lives in the status row, never as a line per arrival.
    alice.wait_for(lambda text: re.search(r"\| code [0-9]{5} [0-9]{5}… changed \|", text), "the changed code")
    assert "room code" not in alice.text()
    alice.type("/verify room")
    alice.keys("Enter")
    alice.wait_for_text("* room code ")
    code = re.search(r"\* room code ((?:[0-9]{5} ){7}[0-9]{5}) \(", alice.text()).group(1)
    alice.wait_for(lambda text: f"| code {code[:11]}… |" in text, "the code, seen")
    alice.type("/verify bob")
    alice.keys("Enter")
    alice.wait_for_text("-- if it matches, type /trust bob")
    alice.type("/trust bob")
    alice.keys("Enter")
    alice.wait_for_text("bob is now verified \u2713")
    bob.say("checked")
    alice.wait_for_text("<bob \u2713> checked")
    assert "ghost" not in alice.text()


def test_ctrl_r_finds_an_earlier_line_and_enter_puts_it_in_the_input_line(terminal, clients):
    alice, (bob,) = joined(terminal, clients)
    for line in ("lunch at noon?", "the report is done", "see you"):
        alice.type(line)
        alice.keys("Enter")
        assert next_message(bob) == line
    alice.type("draft")
    alice.keys("C-r")
    alice.type("rep")
    alice.wait_for(lambda text: alice.input_line() == "(search history)'rep': the report is done", "the match")
    alice.keys("C-g")
    alice.wait_for(lambda text: alice.input_line() == "> draft", "the draft back")
    alice.keys("C-u", "C-r")
    alice.type("lun")
    alice.wait_for(lambda text: alice.input_line() == "(search history)'lun': lunch at noon?", "the second match")
    alice.keys("Enter")
    alice.wait_for(lambda text: alice.input_line() == "> lunch at noon?", "the line taken")
    alice.type(" again")
    alice.keys("Enter")
    assert next_message(bob) == "lunch at noon? again"


def test_held_lines_never_look_sent_and_hold_all_holds_every_line(tmp_path, terminal, clients):
    alice, (bob, carol) = joined(terminal, clients, others=("bob", "carol"))
    alice.type("/trust bob")
    alice.keys("Enter")
    alice.wait_for_text("bob is now verified \u2713")
    bob.close_input()
    assert bob.wait() == 0
    alice.wait_for_text("bob left")
    impostor = clients("bob", extra=["--identity", str(tmp_path / "other-identity")])
    impostor.ready()
    alice.wait_for(lambda text: "messages held for bob: key changed" in alice.screen()[alice.rows() - 2], "held")
    alice.type("for carol only")
    alice.keys("Enter")
    alice.wait_for_text("<alice> for carol only  (held for bob)")
    assert carol.events(event="message", text="for carol only")["from"] == "alice"
    alice.type("/hold all")
    alice.keys("Enter")
    alice.wait_for(lambda text: "all messages held (/hold all): bob key changed" in alice.screen()[alice.rows() - 2],
                   "everything held")
    alice.type("for nobody yet")
    alice.keys("Enter")
    alice.wait_for_text("(held, not sent) <alice> for nobody yet")
    alice.type("/trust bob")
    alice.keys("Enter")
    assert carol.events(event="message", text="for nobody yet")["from"] == "alice"
    assert impostor.events(event="message", text="for carol only")["from"] == "alice"
    assert impostor.events(event="message", text="for nobody yet")["from"] == "alice"
    alice.wait_for(lambda text: "held" not in alice.screen()[alice.rows() - 2], "nothing held")
