/// Where the client's events go.
public protocol ClientOutput: AnyObject {
    /// Shows one event.
    func emit(_ event: ClientEvent)
    /// The file transfers under way changed (their set, percentage or rate): a status row shows
    /// them. Lines and JSON show nothing (each transfer has its own events).
    func transfersChanged(_ totals: TransferTotals)
}

extension ClientOutput {
    public func transfersChanged(_ totals: TransferTotals) {}
}
