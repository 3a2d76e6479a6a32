/// A direct or multicast payload as the relay received it: its bytes, valid during the call, and,
/// when the frame was read into a buffer of its own, that buffer and the payload's offset in it.
struct ReceivedPayload {
    var bytes: UnsafeRawBufferPointer
    var storage: (buffer: SharedBuffer, offset: Int)?
}
