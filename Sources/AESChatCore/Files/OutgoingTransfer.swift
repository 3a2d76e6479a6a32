import AESChatCrypto

/// A receiver's standing in an outgoing transfer.
struct ReceiverProgress {
    /// The first chunk it does not hold yet.
    var acknowledged: UInt64
    var resumeFrom: UInt64
    /// When it last acknowledged (or accepted): with ``OutgoingTransfer/stallClockStart(of:)``, when its stall clock
    /// started.
    var lastProgress: ContinuousClock.Instant
}

final class OutgoingTransfer {
    enum Phase {
        case offering
        case streaming
        case finishing
        case done
    }

    /// Tells this transfer's timers from another's (the same file may be sent twice at once).
    let serial: UInt64
    /// The path as the user typed it, for the line that says how to send it again.
    let path: String
    let offer: FileOffer
    /// The file's descriptor number, for `pread` while ``file`` holds it.
    let descriptor: Int32
    /// The file being sent; closed when the transfer is done.
    private var file: Descriptor?
    let cipher: AESGCM
    let recipient: String?
    let targets: [String]
    var phase = Phase.offering
    var receivers: [String: ReceiverProgress] = [:]
    var declined: Set<String> = []
    /// Per receiver after done: nil when it accepted the file, else why not.
    var results: [String: String?] = [:]
    var nextChunk: UInt64 = 0
    let hasher = SHA256Hasher()
    var digest: [UInt8] = []
    var startedAt: ContinuousClock.Instant = .now
    var bytesAtStart: UInt64 = 0
    var lastProgressShown: ContinuousClock.Instant?
    /// When the last chunk went out (or streaming started): the watchdog shows a transfer that
    /// stopped moving as stalled.
    var lastChunkSent: ContinuousClock.Instant = .now
    /// When each of the last ``FileTransfers/window`` chunks went out, chunk `i` at `i % window`: that is every chunk
    /// a receiver may lack first, since none is sent while a receiver lacks one a window before it.
    private var chunkSentAt = [ContinuousClock.Instant](repeating: .now, count: Int(FileTransfers.window))
    /// Whether the progress shown last says the transfer stalled.
    var shownStalled = false
    /// The rate shown last, for the status row's totals.
    var lastRate: UInt64 = 0
    /// The folder this file belongs to (`/send DIR`), if any.
    var folder: FolderSend?
    /// One chunk of plaintext, for hashing what the receivers already hold when resuming.
    var buffer: [UInt8] = []
    /// Frame buffers, reused once the connection has sent them.
    private var frameBuffers: [SharedBuffer] = []
    /// Enough for the output high-water mark of chunks in flight plus the one being sealed.
    private static let maximumFrameBuffers = 24

    /// An empty frame buffer of at least `capacity` bytes that no connection still holds.
    func takeFrameBuffer(capacity: Int) -> SharedBuffer {
        for index in frameBuffers.indices
        where frameBuffers[index].capacity >= capacity && isKnownUniquelyReferenced(&frameBuffers[index]) {
            frameBuffers[index].reset()
            return frameBuffers[index]
        }
        let buffer = SharedBuffer(capacity: capacity)
        if frameBuffers.count < Self.maximumFrameBuffers { frameBuffers.append(buffer) }
        return buffer
    }

    init(
        serial: UInt64, path: String, offer: FileOffer, file: consuming Descriptor, cipher: AESGCM, recipient: String?,
        targets: [String]
    ) {
        self.serial = serial
        self.path = path
        self.offer = offer
        self.descriptor = file.rawValue
        self.cipher = cipher
        self.recipient = recipient
        self.targets = targets
        self.file = .some(file)
    }

    /// The command that sends the file again, which resumes where the receivers stopped.
    var resendCommand: String {
        let path = folderPath ?? self.path
        let quoted = path.contains(" ") ? "\"\(path)\"" : path
        return "/send \(quoted)" + (recipient.map { " \($0)" } ?? "")
    }

    /// The folder as the user typed it, for a file of a folder.
    var folderPath: String?

    /// Records that chunk ``nextChunk`` went out at `instant`, and moves on to the next.
    func chunkSent(at instant: ContinuousClock.Instant) {
        chunkSentAt[Int(nextChunk % FileTransfers.window)] = instant
        nextChunk += 1
        lastChunkSent = instant
    }

    /// When `progress`'s receiver started to hold the transfer back: its last acknowledgement, or, if it had
    /// acknowledged everything sent then, the sending of the first chunk it lacks (it was waiting at the window,
    /// not stalled, until that chunk existed). Only for a receiver that lacks a chunk already sent.
    func stallClockStart(of progress: ReceiverProgress) -> ContinuousClock.Instant {
        assert(progress.acknowledged < nextChunk && nextChunk - progress.acknowledged <= FileTransfers.window)
        return max(progress.lastProgress, chunkSentAt[Int(progress.acknowledged % FileTransfers.window)])
    }

    /// Closes the file (once; later calls do nothing).
    func closeFile() {
        file.take()?.close()
    }
}
