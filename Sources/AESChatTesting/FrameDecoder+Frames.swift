public import AESChatCore

extension FrameDecoder {
    /// Splits what is buffered plus `bytes` into frames through ``FrameDecoder/feed(_:_:)`` (the
    /// path the relay and the client run) and returns copies of them, with the error that ended
    /// the stream, if any (the frames before it are returned). For tests, the fuzzer and hostile
    /// peers, which want frames as values; not for the `aeschat` command.
    public mutating func frames<C: Collection<UInt8>>(after bytes: C) -> (frames: [Frame], error: WireError?) {
        var frames: [Frame] = []
        let contiguous = Array(bytes)
        let error: WireError? = contiguous.withUnsafeBytes { raw in
            do throws(WireError) {
                try feed(raw) { (type: UInt8, body: UnsafeRawBufferPointer) throws(WireError) -> Bool in
                    frames.append(Frame(type: type, body: ArraySlice(body)))
                    return true
                }
                return nil
            } catch {
                return error
            }
        }
        return (frames, error)
    }
}
