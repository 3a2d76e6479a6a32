import Foundation

/// Reads standard input on a thread of its own (a blocking read has no place on the loop) and
/// posts each line to the loop.
enum StandardInputReader {
    static func start(posting inbox: LoopInbox<InputEvent>) {
        let thread = Thread {
            while let line = readLine(strippingNewline: true) {
                inbox.post(.line(line.hasSuffix("\r") ? String(line.dropLast()) : line))
            }
            inbox.post(.end)
        }
        thread.name = "aeschat-stdin"
        thread.start()
    }
}
