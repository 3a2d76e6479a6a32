package import AESChatCrypto

/// The wire constructions of automatic-key mode (docs/PROTOCOL.md, section 6). Pure functions
/// over libgcrypt primitives; the stateful parts live in ``AutomaticKeySecurity``.
package enum AutomaticKeys {
    /// Profile layout version byte of clients before features (docs/PROTOCOL.md section 6.1).
    package static let profileVersion: UInt8 = 0x01
    /// Profile size: version, identity key, session key, signature.
    package static let profileSize = 1 + 32 + 32 + 64
    /// Profile layout version byte of a profile with features (docs/PROTOCOL.md section 6.5).
    package static let featuresProfileVersion: UInt8 = 0x02
    /// The shortest version-2 profile: version, identity key, session key, an empty features field, signature.
    package static let featuresProfileMinimumSize = 1 + 32 + 32 + 1 + 64
    /// Channel plaintext kind carrying a sender chain.
    package static let senderKeyKind: UInt8 = 0x10
    /// Bytes of a chain id.
    package static let chainIDSize = 16
    /// Group header: kind, chain id, index, the sender's room view (member count and digest).
    package static let groupHeaderSize = 1 + chainIDSize + 4 + 4 + SHA256.digestSize
    /// The furthest a group message index may jump ahead of the next expected one.
    package static let maximumSkip: UInt32 = 2000
    /// Chain indexes run from 0 to `indexLimit - 1` (2^32 − 2): a sender key or group message at
    /// 2^32 − 1 is refused, so that the next index after an accepted message always exists.
    package static let indexLimit: UInt32 = .max

    package static let label = Array("aeschat/1".utf8)

    // MARK: Profiles

    package static func profileSignedBytes(room: String, name: String, identityKey: [UInt8], sessionKey: [UInt8])
        -> [UInt8]
    {
        var writer = ByteWriter(capacity: 128)
        writer.write(contentsOf: Array("aeschat/1 session key".utf8))
        writer.writeShortString(room)
        writer.writeShortString(name)
        writer.write(contentsOf: identityKey)
        writer.write(contentsOf: sessionKey)
        return writer.bytes
    }

    /// What a version-2 profile's signature covers: the label, a zero byte (where a version-1 signature has the
    /// room's length, never 0), the room, the name, and the profile up to its signature.
    package static func featuresProfileSignedBytes(room: String, name: String, body: ArraySlice<UInt8>) -> [UInt8] {
        var writer = ByteWriter(capacity: 128 + body.count)
        writer.write(contentsOf: Array("aeschat/1 session key".utf8))
        writer.write(UInt8(0))
        writer.writeShortString(room)
        writer.writeShortString(name)
        writer.write(contentsOf: body)
        return writer.bytes
    }

    /// The profile to send in hello: version 2 with `features` (section 6.5), or version 1 without (clients before
    /// features; kept for the worked examples and tests of older peers).
    package static func makeProfile(
        identity: Ed25519PrivateKey, sessionKey: [UInt8], room: String, name: String, features: MemberFeatures? = nil
    ) throws(CryptoError) -> [UInt8] {
        guard let features else {
            let signed = profileSignedBytes(
                room: room, name: name, identityKey: identity.publicKey, sessionKey: sessionKey)
            return [profileVersion] + identity.publicKey + sessionKey + (try identity.signature(for: signed))
        }
        precondition(features.bits.count <= MemberFeatures.maximumBytes, "at most 32 bytes of features")
        let body =
            [featuresProfileVersion] + identity.publicKey + sessionKey + [UInt8(features.bits.count)] + features.bits
        let signed = featuresProfileSignedBytes(room: room, name: name, body: body[...])
        return body + (try identity.signature(for: signed))
    }

    /// A member's verified keys and features, or why its profile is refused.
    package enum ProfileCheck: Equatable {
        case valid(identityKey: [UInt8], sessionKey: [UInt8], features: MemberFeatures)
        case missing
        case invalid(String)
    }

    /// The session key a profile presents, before any check (nil if it is not a profile of version 1 or 2).
    package static func sessionKey(inProfile profile: [UInt8]) -> [UInt8]? {
        guard
            (profile.count == profileSize && profile.first == profileVersion)
                || (profile.count >= featuresProfileMinimumSize && profile.first == featuresProfileVersion)
        else { return nil }
        return Array(profile[33..<65])
    }

    package static func checkProfile(_ profile: [UInt8], room: String, name: String) -> ProfileCheck {
        guard let version = profile.first else { return .missing }
        switch version {
        case profileVersion:
            guard profile.count == profileSize else {
                return .invalid("its profile is \(profile.count) bytes, not a version-1 profile of \(profileSize)")
            }
            let identityKey = Array(profile[1..<33])
            let sessionKey = Array(profile[33..<65])
            let signature = Array(profile[65...])
            let signed = profileSignedBytes(room: room, name: name, identityKey: identityKey, sessionKey: sessionKey)
            guard Ed25519.isValidSignature(signature, for: signed, publicKey: identityKey) else {
                return .invalid("the signature on its session key does not verify")
            }
            return .valid(identityKey: identityKey, sessionKey: sessionKey, features: .basic)
        case featuresProfileVersion:
            // version, identity key, session key, features count, features, later fields (ignored), signature.
            guard profile.count >= featuresProfileMinimumSize else {
                return .invalid(
                    "its profile is \(profile.count) bytes, shorter than a version-2 profile (at least "
                        + "\(featuresProfileMinimumSize))")
            }
            let count = Int(profile[65])
            guard count <= MemberFeatures.maximumBytes, profile.count >= featuresProfileMinimumSize + count else {
                return .invalid("its profile's features field (\(count) bytes) does not fit its \(profile.count) bytes")
            }
            let identityKey = Array(profile[1..<33])
            let sessionKey = Array(profile[33..<65])
            let signed = featuresProfileSignedBytes(room: room, name: name, body: profile[..<(profile.count - 64)])
            let signature = Array(profile[(profile.count - 64)...])
            guard Ed25519.isValidSignature(signature, for: signed, publicKey: identityKey) else {
                return .invalid("the signature on its session key does not verify")
            }
            return .valid(
                identityKey: identityKey, sessionKey: sessionKey,
                features: MemberFeatures(bits: Array(profile[66..<(66 + count)])))
        default:
            return .invalid("its profile has version \(version); this client reads versions 1 and 2")
        }
    }

    // MARK: Pairwise channels

    /// The two directional keys of a channel between two members: `(send, receive)` from the
    /// point of view of `me`.
    package static func channelKeys(
        sharedSecret: SecretBytes, room: String, me: (name: String, sessionKey: [UInt8]),
        peer: (name: String, sessionKey: [UInt8])
    ) throws(CryptoError) -> (send: [UInt8], receive: [UInt8]) {
        let meFirst = Array(me.name.utf8).lexicographicallyPrecedes(Array(peer.name.utf8))
        let (low, high) = meFirst ? (me, peer) : (peer, me)
        var info = ByteWriter(capacity: 160)
        info.write(contentsOf: Array("aeschat/1 pairwise".utf8))
        info.writeShortString(room)
        info.writeShortString(low.name)
        info.write(contentsOf: low.sessionKey)
        info.writeShortString(high.name)
        info.write(contentsOf: high.sessionKey)
        let okm = try HKDFSHA256.deriveKey(
            inputKeyMaterial: sharedSecret, salt: [], info: info.bytes, outputByteCount: 64)
        let lowToHigh = okm.withUnsafeBytes { Array($0[0..<32]) }
        let highToLow = okm.withUnsafeBytes { Array($0[32..<64]) }
        return meFirst ? (lowToHigh, highToLow) : (highToLow, lowToHigh)
    }

    package static func channelAssociatedData(counter: UInt64, room: String, from: String, to: String) -> [UInt8] {
        var writer = ByteWriter(capacity: 96)
        writer.write(contentsOf: label)
        writer.write(EnvelopeKind.channel.rawValue)
        writer.write(counter)
        writer.writeShortString(room)
        writer.writeShortString(from)
        writer.writeShortString(to)
        return writer.bytes
    }

    package static func counterNonce(_ counter: UInt64) -> [UInt8] {
        [0, 0, 0, 0] + withUnsafeBytes(of: counter.bigEndian, Array.init)
    }

    // MARK: Sender chains

    /// One step of a chain: the message key for this index and the next chain key.
    package static func ratchet(_ chainKey: SecretBytes) -> (messageKey: SecretBytes, next: SecretBytes) {
        (
            HMACSHA256.authenticationCode(for: [0x01], key: chainKey),
            HMACSHA256.authenticationCode(for: [0x02], key: chainKey)
        )
    }

    /// The AES key and nonce used with one message key (each message key seals one message).
    package static func groupCipherInputs(messageKey: SecretBytes) throws(CryptoError) -> (
        key: [UInt8], nonce: [UInt8]
    ) {
        let okm = try HKDFSHA256.deriveKey(
            inputKeyMaterial: messageKey, salt: [], info: Array("aeschat/1 group message key".utf8), outputByteCount: 44
        )
        return okm.withUnsafeBytes { (Array($0[0..<32]), Array($0[32..<44])) }
    }

    package static func groupHeader(chainID: [UInt8], index: UInt32, view: RoomView) -> [UInt8] {
        var writer = ByteWriter(capacity: groupHeaderSize)
        writer.write(EnvelopeKind.group.rawValue)
        writer.write(contentsOf: chainID)
        writer.write(index)
        writer.write(view.count)
        writer.write(contentsOf: view.digest)
        return writer.bytes
    }

    /// A member's view of the room as a group message carries it: how many members it counts and their digest.
    package struct RoomView: Equatable, Sendable {
        package let count: UInt32
        package let digest: [UInt8]
    }

    /// The room view over `members` (the sender included): SHA-256 of the label, the room, the count and each
    /// member's name and identity key, sorted by name bytewise (docs/PROTOCOL.md section 6.3).
    package static func roomView(room: String, members: [(name: String, identityKey: [UInt8])]) -> RoomView {
        let sorted = members.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
        var writer = ByteWriter(capacity: 64 + members.count * 66)
        writer.write(contentsOf: Array("aeschat/1 room view".utf8))
        writer.writeShortString(room)
        writer.write(UInt32(truncatingIfNeeded: sorted.count))
        for member in sorted {
            writer.writeShortString(member.name)
            writer.write(contentsOf: member.identityKey)
        }
        return RoomView(count: UInt32(truncatingIfNeeded: sorted.count), digest: SHA256.hash(writer.bytes))
    }

    package static func groupAssociatedData(header: ArraySlice<UInt8>, room: String, sender: String) -> [UInt8] {
        associatedData(label: label, header: header, room: room, sender: sender).bytes
    }

    /// What the sender signs: the label, room, sender and the SHA-256 of header and ciphertext (a
    /// digest, because messages reach megabytes and libgcrypt signs at most 64 KiB).
    package static func groupSignedBytes(room: String, sender: String, headerAndSealed: ArraySlice<UInt8>) -> [UInt8] {
        var writer = ByteWriter(capacity: 128)
        writer.write(contentsOf: Array("aeschat/1 group message".utf8))
        writer.writeShortString(room)
        writer.writeShortString(sender)
        headerAndSealed.withUnsafeBytes { writer.write(contentsOf: SHA256.hash($0)) }
        return writer.bytes
    }

    /// Seals one group message at `index` with the message key of that index, carrying the sender's `view`.
    package static func sealGroupMessage(
        _ plaintext: [UInt8], chainID: [UInt8], index: UInt32, messageKey: SecretBytes, view: RoomView, room: String,
        sender: String, identity: Ed25519PrivateKey
    ) throws(CryptoError) -> [UInt8] {
        let header = groupHeader(chainID: chainID, index: index, view: view)
        let (key, nonce) = try groupCipherInputs(messageKey: messageKey)
        let sealed = try AESGCM(key: key).seal(
            plaintext, nonce: nonce,
            authenticating: groupAssociatedData(header: header[...], room: room, sender: sender))
        let body = header + sealed
        let signature = try identity.signature(
            for: groupSignedBytes(room: room, sender: sender, headerAndSealed: body[...]))
        return body + signature
    }
}
