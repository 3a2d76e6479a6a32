import Testing

@testable import AESChatCore

@Suite struct KeyDecoderTests {
    private func decode(_ bytes: [UInt8]) -> [Key] {
        var decoder = KeyDecoder()
        return decoder.decode(bytes)
    }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func decode_readsTextAndControlKeys() {
        #expect(decode(bytes("hi")) == [.text("hi")])
        #expect(decode([0x0D]) == [.enter])
        #expect(decode([0x0A]) == [.enter])
        #expect(decode([0x09]) == [.tab])
        #expect(decode([0x7F]) == [.backspace])
        #expect(decode([0x08]) == [.backspace])
        #expect(decode([0x01, 0x05, 0x15, 0x17, 0x0B, 0x03, 0x04]) == "aeuwkcd".map { .control($0) })
        #expect(decode(bytes("ab\rc")) == [.text("ab"), .enter, .text("c")])
    }

    @Test func decode_readsCursorKeys_inCSIAndSS3Forms() {
        let cases: [(String, Key)] = [
            ("\u{1B}[A", .up), ("\u{1B}[B", .down), ("\u{1B}[C", .right), ("\u{1B}[D", .left),
            ("\u{1B}OA", .up), ("\u{1B}OD", .left), ("\u{1B}[H", .home), ("\u{1B}[F", .end),
            ("\u{1B}OH", .home), ("\u{1B}OF", .end), ("\u{1B}[1~", .home), ("\u{1B}[7~", .home),
            ("\u{1B}[4~", .end), ("\u{1B}[8~", .end), ("\u{1B}[3~", .delete), ("\u{1B}[5~", .pageUp),
            ("\u{1B}[6~", .pageDown), ("\u{1B}[1;5C", .wordRight), ("\u{1B}[1;5D", .wordLeft),
            ("\u{1B}[1;3D", .wordLeft), ("\u{1B}[1;2C", .right), ("\u{1B}[3;5~", .deleteWordForward),
            ("\u{1B}b", .wordLeft), ("\u{1B}f", .wordRight), ("\u{1B}d", .deleteWordForward),
            ("\u{1B}\u{7F}", .deleteWordBackward), ("\u{1B}[Z", .backTab),
        ]
        for (sequence, key) in cases {
            #expect(decode(bytes(sequence)) == [key], "\(sequence.debugDescription)")
        }
    }

    @Test func decode_handlesEveryChunking_ofAMixedStream() {
        let stream = bytes("a\u{1B}[Dé你🎉\u{1B}[200~x\ny\u{1B}[201~\u{1B}OB\r")
        let expected: [Key] = [.text("a"), .left, .text("é你🎉"), .paste("x\ny"), .down, .enter]
        for chunk in 1...stream.count {
            var decoder = KeyDecoder()
            var keys: [Key] = []
            var start = 0
            while start < stream.count {
                keys += decoder.decode(stream[start..<min(start + chunk, stream.count)])
                start += chunk
            }
            #expect(merged(keys) == expected, "chunk \(chunk)")
        }
    }

    /// Joins adjacent text keys, which a split stream may deliver in pieces.
    private func merged(_ keys: [Key]) -> [Key] {
        var result: [Key] = []
        for key in keys {
            if case .text(let more) = key, case .text(let text)? = result.last {
                result[result.count - 1] = .text(text + more)
            } else {
                result.append(key)
            }
        }
        return result
    }

    @Test func decode_waits_forAnIncompleteSequence_thenFlushTurnsALoneEscapeIntoTheKey() {
        var decoder = KeyDecoder()
        #expect(decoder.decode([0x1B]).isEmpty)
        #expect(decoder.waitMilliseconds != nil)
        #expect(decoder.flush() == [.escape])
        #expect(decoder.waitMilliseconds == nil)
        #expect(decoder.decode([0x1B, 0x5B]).isEmpty)
        #expect(decoder.decode([0x41]) == [.up])
    }

    @Test func decode_waitsForSplitUTF8_andFlushMakesItAReplacementCharacter() {
        var decoder = KeyDecoder()
        #expect(decoder.decode([0xE4, 0xBD]).isEmpty)
        #expect(decoder.decode([0xA0]) == [.text("你")])
        #expect(decoder.decode([0xE4]).isEmpty)
        #expect(decoder.flush() == [.text("\u{FFFD}")])
        #expect(decode([0xFF, 0x41]) == [.text("\u{FFFD}A")])
    }

    @Test func decode_dropsUnknownSequencesAndStringsATerminalMightSend() {
        #expect(decode(bytes("a\u{1B}[?1;2cb")) == [.text("a"), .text("b")])
        #expect(decode(bytes("\u{1B}]11;rgb:0000/0000/0000\u{07}x")) == [.text("x")])
        #expect(decode(bytes("\u{1B}P1$r0m\u{1B}\\x")) == [.text("x")])
        #expect(decode(bytes("\u{1B}[12;40Rx")) == [.text("x")])
        #expect(decode(bytes("\u{1B}_secret\u{1B}\\")) == [])
    }

    @Test func decode_collectsABracketedPaste_withItsControlsAsText() {
        let pasted = decode(bytes("\u{1B}[200~one\r\ntwo\rthree\u{1B}[Dx\u{1B}[201~"))
        #expect(pasted == [.paste("one\ntwo\nthree\u{1B}[Dx")])
        var decoder = KeyDecoder()
        #expect(decoder.decode(bytes("\u{1B}[200~abc")).isEmpty)
        #expect(decoder.decode(bytes("\u{1B}[20")).isEmpty)
        #expect(decoder.decode(bytes("1~z")) == [.paste("abc"), .text("z")])
    }

    @Test func flush_endsAPasteWhoseEndMarkerNeverCame() {
        var decoder = KeyDecoder()
        #expect(decoder.decode(bytes("\u{1B}[200~lost")).isEmpty)
        #expect(decoder.waitMilliseconds == 1000)
        #expect(decoder.flush() == [.paste("lost")])
    }
}

@Suite struct LineEditorTests {
    private func editor(_ text: String) -> LineEditor {
        var editor = LineEditor()
        editor.insert(text)
        return editor
    }

    @Test func editing_atTheCursor() {
        var line = editor("hello world")
        for _ in 0..<6 { line.moveLeft() }
        line.deleteBackward()
        #expect(line.text == "hell world")
        line.insert("o,")
        #expect(line.text == "hello, world")
        line.moveHome()
        line.deleteForward()
        line.insert("H")
        #expect(line.text == "Hello, world")
        #expect(line.cursor == 1)
        line.moveEnd()
        #expect(line.cursor == line.characters.count)
    }

    @Test func killsAndYank() {
        var line = editor("one two  three")
        line.killWhitespaceWordBackward()
        #expect(line.text == "one two  ")
        line.killWhitespaceWordBackward()
        #expect(line.text == "one ")
        line.yank()
        #expect(line.text == "one two  ")
        line.moveHome()
        line.moveWordRight()
        line.killToEnd()
        #expect(line.text == "one")
        line.killToStart()
        #expect(line.text.isEmpty)
        line.yank()
        #expect(line.text == "one")
        var words = editor("alpha beta-gamma")
        words.killWordBackward()
        #expect(words.text == "alpha beta-")
        words.moveHome()
        words.killWordForward()
        #expect(words.text == " beta-")
    }

    @Test func history_upAndDown_keepsTheDraft() {
        var line = LineEditor()
        for entry in ["first", "second", "second", ""] {
            line.insert(entry)
            _ = line.submit()
        }
        #expect(line.historyEntries == ["first", "second"])
        line.insert("draft")
        line.historyPrevious()
        #expect(line.text == "second")
        line.historyPrevious()
        line.historyPrevious()
        #expect(line.text == "first")
        line.historyNext()
        #expect(line.text == "second")
        line.historyNext()
        #expect(line.text == "draft")
        line.historyNext()
        #expect(line.text == "draft")
    }

    @Test func graphemes_combiningMarksAndFlagsMergeWithTheirNeighbours() {
        var line = editor("e")
        line.insert("\u{301}")
        #expect(line.characters == ["é"])
        #expect(line.cursor == 1)
        line.insert("\u{1F1EB}")
        line.insert("\u{1F1F7}")
        #expect(line.characters.count == 2)
        line.deleteBackward()
        #expect(line.text == "e\u{301}")
        var middle = editor("ab")
        middle.moveLeft()
        middle.insert("\u{301}")
        #expect(middle.characters == ["a\u{301}", "b"])
        #expect(middle.cursor == 1)
    }

    @Test func transpose_swapsAroundTheCursor() {
        var line = editor("ab")
        line.transpose()
        #expect(line.text == "ba")
        line.moveHome()
        line.moveRight()
        line.insert("c")
        line.transpose()
        #expect(line.text == "bac")
    }

    @Test func complete_insertsTheOnlyMatch_withTheSuffix() {
        var line = editor("B")
        let shown = line.complete { request in
            #expect(request == .init(previousWords: [], prefix: "B"))
            return .init(candidates: ["bob", "carol"], suffix: ": ")
        }
        #expect(shown.isEmpty)
        #expect(line.text == "bob: ")
    }

    @Test func complete_extendsToTheCommonPrefix_thenCycles() {
        var line = editor("hi ca")
        var requests: [LineEditor.CompletionRequest] = []
        let source: (LineEditor.CompletionRequest) -> LineEditor.CompletionOffer = { request in
            requests.append(request)
            return .init(candidates: ["carol", "caroline", "bob"], suffix: " ")
        }
        #expect(line.complete(using: source) == ["carol", "caroline"])
        #expect(line.text == "hi carol")
        #expect(line.complete(using: source).isEmpty)
        #expect(line.text == "hi carol ")
        _ = line.complete(using: source)
        #expect(line.text == "hi caroline ")
        _ = line.complete(using: source)
        #expect(line.text == "hi carol ")
        #expect(requests == [.init(previousWords: ["hi"], prefix: "ca")])
        line.insert("x")
        #expect(line.complete(using: source).isEmpty)
        #expect(line.text == "hi carol x")
        #expect(requests.last == .init(previousWords: ["hi", "carol"], prefix: "x"))
    }
}

@Suite struct DisplayWidthTests {
    @Test func widths_ofCommonText() {
        #expect(DisplayWidth.of("hello") == 5)
        #expect(DisplayWidth.of("你好") == 4)
        #expect(DisplayWidth.of("こんにちは") == 10)
        #expect(DisplayWidth.of("한국어") == 6)
        #expect(DisplayWidth.of("ＡＢ") == 4)
        #expect(DisplayWidth.of("🎉") == 2)
        #expect(DisplayWidth.of("e\u{301}") == 1)
        #expect(DisplayWidth.of("\u{1100}\u{1161}\u{11A8}") == 2)
        #expect(DisplayWidth.of("\u{1F1EB}\u{1F1F7}") == 2)
        #expect(DisplayWidth.of("👩\u{200D}👩\u{200D}👧") == 2)
        #expect(DisplayWidth.of("👍🏽") == 2)
        #expect(DisplayWidth.of("\u{2764}\u{FE0F}") == 2)
        #expect(DisplayWidth.of("\u{2764}") == 1)
        #expect(DisplayWidth.of("Grüße") == 5)
    }

    @Test func widths_ofInvisibleScalars() {
        for scalar: Unicode.Scalar in ["\u{301}", "\u{200B}", "\u{200D}", "\u{FE0F}", "\u{202E}", "\u{1B}", "\u{9B}"] {
            #expect(DisplayWidth.of(scalar) == 0, "\(scalar.value)")
        }
        #expect(DisplayWidth.of(Unicode.Scalar(0x20000)!) == 2)
        #expect(DisplayWidth.of(Unicode.Scalar(0x3000)!) == 2)
        #expect(DisplayWidth.of(Unicode.Scalar(0x303F)!) == 1)
    }
}

@Suite struct TerminalCommandsTests {
    @Test func interpret_plainTextAndDoubleSlash_areMessages() {
        #expect(TerminalCommands.interpret("hello") == .message("hello"))
        #expect(TerminalCommands.interpret("//etc/passwd is a path") == .message("//etc/passwd is a path"))
        #expect(TerminalCommands.interpret(" /help") == .message(" /help"))
    }

    @Test func interpret_localCommands() {
        #expect(TerminalCommands.interpret("/help") == .help)
        #expect(TerminalCommands.interpret("/clear") == .clear)
        #expect(TerminalCommands.interpret("/quit") == .quit)
        #expect(TerminalCommands.interpret("/bell") == .bell(nil))
        #expect(TerminalCommands.interpret("/bell off") == .bell(.off))
        #expect(TerminalCommands.interpret("/bell all") == .bell(.all))
        #expect(TerminalCommands.interpret("/ignore bob") == .ignore("bob"))
        #expect(TerminalCommands.interpret("/unignore  bob ") == .unignore("bob"))
        #expect(
            TerminalCommands.interpret("/me waves  hello") == .action(line: "/me waves  hello", text: "waves  hello"))
    }

    @Test func interpret_clientCommands_arePassedOnToTheClient() {
        for line in [
            "/who", "/msg bob hi", "/send a.txt", "/send a.txt bob", "/verify bob", "/verify room", "/trust bob",
        ] {
            #expect(TerminalCommands.interpret(line) == .clientCommand(line), "\(line)")
        }
    }

    @Test func interpret_wrongCommandsAndArguments_sayWhatWasExpected() {
        let cases: [(String, String)] = [
            ("/frobnicate", "unknown command '/frobnicate': type /help for the list"),
            ("/hlep", "unknown command '/hlep': type /help for the list. Did you mean /help?"),
            ("/qu", "unknown command '/qu': type /help for the list. Did you mean /quit?"),
            ("/bell loud", "unknown bell setting 'loud': expected /bell off, /bell mentions or /bell all"),
            ("/ignore", "expected /ignore NAME: a member name"),
            ("/ignore a b", "expected /ignore NAME: one member name, got 'a b'"),
            ("/unignore", "expected /unignore NAME: a member name"),
            ("/me", "expected /me ACTION, for example /me waves"),
            ("/quit now", "/quit takes nothing after it: expected just /quit"),
            ("/clear all", "/clear takes nothing after it: expected just /clear"),
            ("/x\u{1B}[2J", "unknown command '/x\\x1B[2J': type /help for the list"),
        ]
        for (line, message) in cases {
            #expect(TerminalCommands.interpret(line) == .problem(message), "\(line.debugDescription)")
        }
        guard case .problem(let invalid) = TerminalCommands.interpret("/ignore zoë") else {
            Issue.record("expected a problem")
            return
        }
        #expect(invalid.hasPrefix("invalid name 'zoë' for /ignore"))
    }

    @Test func slashCommandTable_everyClientCommand_isKnownToLineModeAndInItsHelp() {
        for command in SlashCommand.all where command.handler != .terminal {
            #expect(ChatCommand.helpText.contains(command.name) || command.name == "/help", "\(command.name)")
            if case .invalid(let message) = ChatCommand(parsing: command.name) {
                #expect(!message.hasPrefix("unknown command"), "\(command.name)")
            }
        }
        for command in SlashCommand.all where command.handler == .terminal {
            #expect(
                ChatCommand(parsing: command.name)
                    == .invalid(
                        "unknown command '\(command.name)'; /help lists the commands, and // starts a message with /"))
        }
    }

    @Test func help_listsEveryCommand_withItsArguments() {
        let help = TerminalCommands.helpLines(bell: .mentions)
        for command in TerminalCommands.names {
            #expect(help.contains { $0.hasPrefix("  " + command + " ") }, "\(command)")
        }
        #expect((help.first { $0.hasPrefix("  /send") } ?? "").contains("PATH [NAME]"))
        #expect((help.first { $0.hasPrefix("  /verify") } ?? "").contains("NAME|room"))
        #expect((help.first { $0.hasPrefix("  /bell") } ?? "").contains("(now: mentions)"))
    }
}

@Suite struct TerminalSettingsTests {
    @Test func colorMode_followsTheEnvironment() {
        #expect(ColorMode.detect(environment: ["NO_COLOR": "1", "TERM": "xterm-256color"]) == .none)
        #expect(ColorMode.detect(environment: ["NO_COLOR": "", "TERM": "xterm"]) == .none)
        #expect(ColorMode.detect(environment: ["TERM": "xterm-256color"]) == .extended)
        #expect(ColorMode.detect(environment: ["TERM": "xterm", "COLORTERM": "truecolor"]) == .extended)
        #expect(ColorMode.detect(environment: ["TERM": "screen"]) == .basic)
    }

    @Test func nameColor_isStableAcrossRuns() {
        #expect(NameColor.hash("alice") == 0x8722_13E7)
        #expect(NameColor.hash("bob") == 0x86C6_A0D4)
        #expect(ColorMode.basic.nameColor("alice") == String(NameColor.basicPalette[4]))
        #expect(ColorMode.extended.nameColor("bob") == "38;5;" + String(NameColor.extendedPalette[20]))
        #expect(ColorMode.none.nameColor("bob").isEmpty)
    }

    @Test func inboxPrompt_expandsTheHomeFolder_andDefaults() {
        #expect(InboxPrompt.folder(from: "", home: "/home/a") == "/home/a/aeschat-inbox")
        #expect(InboxPrompt.folder(from: "  ~/in  ", home: "/home/a") == "/home/a/in")
        #expect(InboxPrompt.folder(from: "~", home: "/home/a") == "/home/a")
        #expect(InboxPrompt.folder(from: "/tmp/x", home: "/home/a") == "/tmp/x")
        #expect(InboxPrompt.folder(from: "~bob/x", home: "/home/a") == "~bob/x")
        #expect(InboxPrompt.folder(from: "", home: nil) == "~/aeschat-inbox")
    }
}
