import Testing

@testable import AESChatCore

/// Ctrl-R on the input line (issue 14 item 18): the search itself, then the keys on the screen.
@Suite struct ReverseSearchTests {
    let history = ["hello bob", "/msg carol lunch?", "Hello again", "bye"]

    @Test func typing_findsTheLatestLineContainingTheQuery_caseInsensitively() {
        var search = ReverseSearch(entries: history)
        #expect(search.match == "bye")
        search.type("hel")
        #expect(search.match == "Hello again")
        search.type("lo b")
        #expect(search.match == "hello bob")
        #expect(search.prompt == "(search history)'hello b': ")
    }

    @Test func ctrlRAgain_goesOlder_andStaysOnTheOldestWhenNoneIsLeft() {
        var search = ReverseSearch(entries: history)
        search.type("hello")
        #expect(search.match == "Hello again")
        search.older()
        #expect(search.match == "hello bob")
        #expect(!search.failed)
        search.older()
        #expect(search.match == "hello bob")
        #expect(search.failed)
        #expect(search.prompt.hasPrefix("(failing search history)"))
    }

    @Test func aQueryNothingMatches_showsNoLine_andBackspaceFindsAgain() {
        var search = ReverseSearch(entries: history)
        search.type("lunchx")
        #expect(search.match == nil)
        #expect(search.failed)
        search.deleteBackward()
        #expect(search.match == "/msg carol lunch?")
        #expect(!search.failed)
        var empty = ReverseSearch(entries: [])
        empty.type("a")
        #expect(empty.match == nil)
        empty.deleteBackward()
        empty.deleteBackward()
        #expect(empty.query.isEmpty)
    }

    func harnessWithHistory() -> ScreenHarness {
        let harness = ScreenHarness()
        harness.show(.ready(name: "alice", room: "lobby", members: ["bob"], fingerprint: nil))
        for line in ["first message", "second message", "third"] { harness.type(line + "\r") }
        harness.actions = []
        return harness
    }

    @Test func ctrlR_typeToFind_enterPutsTheLineInTheInput_andASecondEnterSendsIt() {
        let harness = harnessWithHistory()
        harness.type("draft")
        harness.type("\u{12}")
        #expect(harness.inputLine == "(search history)'': third")
        harness.type("mess")
        #expect(harness.inputLine == "(search history)'mess': second message")
        harness.type("\u{12}")
        #expect(harness.inputLine == "(search history)'mess': first message")
        harness.type("\r")
        #expect(harness.inputLine == "> first message")
        #expect(harness.actions.isEmpty)
        harness.type("\r")
        #expect(harness.actions == [.send("first message")])
    }

    @Test func escapeOrCtrlG_cancels_andTheLineTypedBeforeComesBack() {
        let harness = harnessWithHistory()
        harness.type("draft")
        harness.type("\u{12}sec")
        #expect(harness.inputLine == "(search history)'sec': second message")
        harness.type("\u{07}")
        #expect(harness.inputLine == "> draft")
        harness.type("\u{12}thi\u{1B}")
        harness.actions += harness.screen.inputPaused()
        harness.pump()
        #expect(harness.inputLine == "> draft")
        // Ctrl-C cancels the search and does not quit.
        harness.type("\u{12}\u{03}")
        #expect(harness.inputLine == "> draft")
        #expect(harness.actions.isEmpty)
    }

    @Test func anotherKey_takesTheLineFound_andActsOnIt() {
        let harness = harnessWithHistory()
        harness.type("\u{12}sec")
        harness.type("\u{01}X")  // Ctrl-A, then X at the start
        #expect(harness.inputLine == "> Xsecond message")
        harness.type("\u{12}nothing like it")
        #expect(harness.inputLine == "(failing search history)'nothing like it':")
        harness.type("\r")
        #expect(harness.inputLine == "> Xsecond message")
    }
}
