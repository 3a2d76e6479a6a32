/// What file transfers ask their client to do, in the order given: the transfers return these
/// instead of calling back into the client.
public enum FileTransferAction {
    /// Send file control through the end-to-end layer: to the room (`nil`) or one member.
    case sendControl(MessageContent, to: String?)
    /// Queue a complete relay frame (a sealed chunk) that is `range` of `buffer`, keeping the
    /// buffer until it is sent.
    case sendFrame(SharedBuffer, range: Range<Int>)
    /// Queue a complete relay frame (a sealed chunk behind another header, past 255 receivers).
    case sendFrameBytes([UInt8])
    /// Show an event.
    case show(ClientEvent)
    /// The transfers under way changed (their set, percentage or rate): tell the output's status row.
    case totals(TransferTotals)
    /// Call ``FileTransfers/timerFired(_:)`` with `timer` after `delay`.
    case schedule(after: Duration, FileTransferTimer)
}

/// A timer file transfers asked for (see ``FileTransferAction/schedule(after:_:)``).
public enum FileTransferTimer: Equatable, Sendable {
    /// The outgoing transfer with this serial stops waiting for replies to its offer.
    case offerTimeout(UInt64)
    /// The outgoing transfer with this serial stops waiting for results after its last chunk.
    case resultsTimeout(UInt64)
    /// The offer with this number, asked about, was not answered in time: it is declined.
    case askTimeout(Int)
    /// The watchdog over stalled receivers and silent senders.
    case watchdog
}
