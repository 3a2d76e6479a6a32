import CHiredisShims

/// Encodes commands with hiredis's encoder (`redisFormatCommandArgv`, through CHiredisShims).
enum RESPEncoder {
    /// One command as RESP (an array of bulk strings), ready to write.
    /// - Parameter arguments: the command name and its arguments, any bytes.
    static func command(_ arguments: [[UInt8]]) -> [UInt8] {
        precondition(!arguments.isEmpty && arguments.count <= Int(Int32.max), "a command has a name")
        // Every argument in one buffer, so that the pointers handed to C all come from one live array.
        var joined: [UInt8] = []
        joined.reserveCapacity(arguments.reduce(1) { $0 + $1.count })
        var offsets: [Int] = []
        offsets.reserveCapacity(arguments.count)
        for argument in arguments {
            offsets.append(joined.count)
            joined.append(contentsOf: argument)
        }
        joined.append(0)  // a valid address for empty arguments at the end
        let lengths = arguments.map(\.count)
        return joined.withUnsafeBytes { raw -> [UInt8] in
            let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
            let pointers = offsets.map { UnsafePointer(base + $0) }
            var target: UnsafeMutablePointer<CChar>?
            let length = pointers.withUnsafeBufferPointer { argv in
                lengths.withUnsafeBufferPointer { argvlen in
                    chiredis_format_command(&target, Int32(arguments.count), argv.baseAddress!, argvlen.baseAddress!)
                }
            }
            defer { chiredis_command_free(target) }
            guard length >= 0, let target else {
                // hiredis fails only when malloc does: like any other allocation failure, fatal.
                fatalError("hiredis could not encode a command (out of memory)")
            }
            return Array(UnsafeRawBufferPointer(start: target, count: Int(length)))
        }
    }

    /// ``command(_:)`` for arguments given as text.
    static func command(_ arguments: [String]) -> [UInt8] {
        command(arguments.map { Array($0.utf8) })
    }
}

/// Parses what a Redis server sends with hiredis's reply reader, one complete reply at a time, and keeps the reply
/// in progress bounded: a reply that grows past ``maximumReplyBytes`` before it is complete is an error (hiredis has
/// no such limit itself). The shim under it refuses, whatever the hiredis version, RESP3 replies, arrays nested more
/// than `CHIREDIS_MAXIMUM_DEPTH` deep and arrays announcing more elements than ``maximumReplyBytes`` can hold, so
/// that ``value(of:)`` recurses a bounded number of times. Loop thread only.
final class RESPReader {
    private let reader: UnsafeMutableRawPointer
    /// The most bytes one reply may take on the wire.
    let maximumReplyBytes: Int
    /// Bytes fed since the reader was made.
    private var fed = 0
    /// Bytes of ``fed`` taken by complete replies.
    private var consumed = 0

    init(maximumReplyBytes: Int) {
        guard let reader = chiredis_reader_create(maximumReplyBytes) else {
            fatalError("hiredis could not make a reader (out of memory)")
        }
        self.reader = reader
        self.maximumReplyBytes = maximumReplyBytes
    }

    deinit {
        chiredis_reader_free(reader)
    }

    /// Bytes of the reply in progress received so far.
    var incompleteByteCount: Int { fed - consumed }

    /// Feeds `bytes` and hands each complete reply to `body`, in order, for as long as `body` returns true.
    /// - Throws: ``RedisError/protocolError(_:)`` when the bytes are not RESP, ``RedisError/replyTooLarge(limit:)``
    ///   when the reply in progress passes the limit.
    func feed(_ bytes: UnsafeRawBufferPointer, _ body: (RedisValue) -> Bool) throws(RedisError) {
        if !bytes.isEmpty {
            guard chiredis_reader_feed(reader, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count) == 0
            else { throw .protocolError(String(cString: chiredis_reader_error(reader))) }
            fed += bytes.count
        }
        while true {
            var reply: UnsafeMutableRawPointer?
            guard chiredis_reader_get_reply(reader, &reply) == 0 else {
                throw .protocolError(String(cString: chiredis_reader_error(reader)))
            }
            guard let reply else { break }
            consumed = fed - chiredis_reader_unparsed(reader)
            let value = Self.value(of: UnsafeRawPointer(reply))
            chiredis_reply_free(reply)
            guard body(value) else { return }
        }
        if incompleteByteCount > maximumReplyBytes { throw .replyTooLarge(limit: maximumReplyBytes) }
    }

    /// Copies a hiredis reply into a ``RedisValue``.
    private static func value(of reply: UnsafeRawPointer) -> RedisValue {
        switch Int(chiredis_reply_type(reply)) {
        case Int(CHIREDIS_REPLY_STRING): .bulk(bytes(of: reply))
        case Int(CHIREDIS_REPLY_STATUS): .status(String(decoding: bytes(of: reply), as: UTF8.self))
        case Int(CHIREDIS_REPLY_ERROR): .error(String(decoding: bytes(of: reply), as: UTF8.self))
        case Int(CHIREDIS_REPLY_INTEGER): .integer(chiredis_reply_integer(reply))
        case Int(CHIREDIS_REPLY_ARRAY):
            .array((0..<chiredis_reply_element_count(reply)).map { value(of: chiredis_reply_element(reply, $0)) })
        case Int(CHIREDIS_REPLY_NIL): .null
        default: .error("unsupported reply type \(chiredis_reply_type(reply))")
        }
    }

    private static func bytes(of reply: UnsafeRawPointer) -> [UInt8] {
        var length = 0
        guard let start = chiredis_reply_string(reply, &length), length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: start, count: length))
    }
}
