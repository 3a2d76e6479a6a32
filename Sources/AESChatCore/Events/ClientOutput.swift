/// Where the client's events go.
public protocol ClientOutput: AnyObject {
    /// Shows one event.
    func emit(_ event: ClientEvent)
}
