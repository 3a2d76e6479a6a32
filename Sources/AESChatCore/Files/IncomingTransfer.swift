import AESChatCrypto

final class IncomingTransfer {
    /// The number `/transfers` shows and `/cancel` takes.
    let number: Int
    let sender: String
    let offer: FileOffer
    let cipher: AESGCM
    let partKey: String
    /// The part file's descriptor number, for `pwrite` while ``file`` holds it.
    let descriptor: Int32
    /// The part file being written; closed when the transfer completes or fails.
    private var file: Descriptor?
    /// The first chunk this attempt receives (earlier ones were kept from an interrupted one).
    let start: UInt64
    var nextChunk: UInt64
    let hasher = SHA256Hasher()
    var startedAt: ContinuousClock.Instant = .now
    /// When the last chunk arrived (or the offer was accepted).
    var lastActivity: ContinuousClock.Instant = .now
    var lastProgressShown: ContinuousClock.Instant?
    /// Whether the progress shown last says the transfer stalled.
    var shownStalled = false
    /// The rate shown last, for the status row's totals.
    var lastRate: UInt64 = 0

    init(
        number: Int, sender: String, offer: FileOffer, cipher: AESGCM, partKey: String, part: consuming Inbox.PartFile,
        start: UInt64
    ) {
        self.number = number
        self.sender = sender
        self.offer = offer
        self.cipher = cipher
        self.partKey = partKey
        self.descriptor = part.file.rawValue
        self.start = start
        nextChunk = start
        self.file = .some(part.file)
    }

    /// Closes the part file (once; later calls do nothing).
    func closeFile() {
        file.take()?.close()
    }
}
