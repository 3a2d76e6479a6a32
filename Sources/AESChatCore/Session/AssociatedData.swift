/// The start of every chat message's associated data in both key modes: `label | header | str8(room) |
/// str8(sender)` (docs/PROTOCOL.md). Pre-shared-key envelopes append the recipient; group messages use it as is.
/// - Parameters:
///   - label: the protocol label, `aeschat/1`.
///   - header: the envelope header, as sent.
///   - room: the room the message is for.
///   - sender: the member who sent it.
/// - Returns: a writer holding those bytes, for the caller to finish.
func associatedData(label: [UInt8], header: ArraySlice<UInt8>, room: String, sender: String) -> ByteWriter {
    var writer = ByteWriter(capacity: 128)
    writer.write(contentsOf: label)
    writer.write(contentsOf: header)
    writer.writeShortString(room)
    writer.writeShortString(sender)
    return writer
}
