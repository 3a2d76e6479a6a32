import AESChatCrypto
import Testing

@testable import AESChatCore

/// The parsers of the files a client reads from its configuration folder: identity and known
/// peers. Seeded random and mutated inputs (the same parsers are libFuzzer targets in
/// `Sources/aeschat-fuzz`).
@Suite struct ConfigurationFileTests {
    /// RFC 8032 section 7.1, test 1: the seed and its public key.
    static let seedHex = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
    static let publicKeyHex = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"

    @Test func identityFile_parsesTheSeed_withOrWithoutSurroundingWhitespace() throws {
        for text in ["aeschat-identity-v1 \(Self.seedHex)\n", "  aeschat-identity-v1 \(Self.seedHex)\r\n"] {
            #expect(Hex.encode(try Identity.parse(text, path: "id").publicKey) == Self.publicKeyHex)
        }
    }

    @Test func identityFile_refusesEveryOtherShape() {
        let bad = [
            "", "aeschat-identity-v1", "aeschat-identity-v2 \(Self.seedHex)", "aeschat-identity-v1 \(Self.seedHex)00",
            "aeschat-identity-v1 \(Self.seedHex.dropLast())", "aeschat-identity-v1  \(Self.seedHex) x",
            "aeschat-identity-v1 " + String(repeating: "g", count: 64), Self.seedHex,
        ]
        for text in bad {
            #expect(throws: KeyFileError.self) { try Identity.parse(text, path: "id") }
        }
    }

    @Test func identityFile_seededMutations_eitherParseToAKeyOrAreRefused() {
        var generator = SeededGenerator(seed: 11)
        let valid = Array("aeschat-identity-v1 \(Self.seedHex)\n".utf8)
        var parsed = 0
        for round in 0..<5_000 {
            var bytes = valid
            if round % 5 == 0 {
                bytes = (0..<Int.random(in: 0...120, using: &generator)).map { _ in
                    UInt8.random(in: 0...255, using: &generator)
                }
            } else {
                for _ in 0..<Int.random(in: 1...3, using: &generator) {
                    let index = Int.random(in: 0..<bytes.count, using: &generator)
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0: bytes[index] = UInt8.random(in: 0...255, using: &generator)
                    case 1: bytes.remove(at: index)
                    default: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: index)
                    }
                    if bytes.isEmpty { bytes = [0] }
                }
            }
            do {
                let identity = try Identity.parse(String(decoding: bytes, as: UTF8.self), path: "id")
                // Whatever parsed is a whole 32-byte seed written the one accepted way.
                #expect(identity.publicKey.count == 32)
                let written = identity.key.seed.withUnsafeBytes { Hex.encode(Array($0)) }
                #expect(
                    String(decoding: bytes, as: UTF8.self).lowercased().contains(written),
                    "parsed a seed that is not in the file")
                parsed += 1
            } catch {
                #expect(error.description.contains("'id'"))
            }
        }
        // Some mutations only touch the trailing newline or the hex digits' case and still parse.
        #expect(parsed > 0)
    }

    @Test func knownPeers_parse_readsBothFormats_laterLinesWin_andLegacyRoomsMergePreferringVerified() throws {
        let a = String(repeating: "ab", count: 32)
        let b = String(repeating: "cd", count: 32)
        let text = """
            # a comment, then a blank line

            127.0.0.1:7777 bob \(a) unverified
            127.0.0.1:7777 bob \(a) messaged
            [::1]:7000 carol \(b) verified
            127.0.0.1:7777 lobby dave \(a) verified
            127.0.0.1:7777 ops dave \(b) unverified
            chat.example:7777 ops erin \(b) unverified\r
            chat.example:7777 lobby erin \(a) unverified
            """
        let (pins, legacy) = try KnownPeers.parse(text)
        typealias Key = KnownPeers.PinKey
        #expect(pins.count == 2 && legacy.count == 2)
        #expect(
            pins[Key(relay: "127.0.0.1:7777", name: "bob")] == PeerPin(identityKey: Hex.decode(a)!, state: .messaged))
        #expect(pins[Key(relay: "[::1]:7000", name: "carol")] == PeerPin(identityKey: Hex.decode(b)!, state: .verified))
        // dave was verified in one room: that pin wins over a later unverified one of another room.
        #expect(
            legacy[Key(relay: "127.0.0.1:7777", name: "dave")] == PeerPin(identityKey: Hex.decode(a)!, state: .verified)
        )
        // Otherwise the last line wins (CRLF line ends are read too).
        #expect(
            legacy[Key(relay: "chat.example:7777", name: "erin")]
                == PeerPin(identityKey: Hex.decode(a)!, state: .unverified))
    }

    @Test func knownPeers_parse_refusesEveryLineThatIsNotAPin_namingItsNumber() {
        let key = String(repeating: "ab", count: 32)
        let bad = [
            "127.0.0.1:7777 bob \(key) trusted", "127.0.0.1:7777 bob \(key.dropLast()) verified",
            "127.0.0.1:7777 lobby bob \(key) messaged", "127.0.0.1:7777 bob", "garbage",
            "127.0.0.1:7777 bob \(key) verified extra fields here", "127.0.0.1:7777 bob \(key)zz verified",
        ]
        for line in bad {
            #expect(throws: KnownPeers.ParseError.self) { try KnownPeers.parse("# fine\n\(line)\n") }
            do {
                _ = try KnownPeers.parse("# fine\n\(line)\n")
            } catch {
                #expect(error.line == 2, "\(line)")
            }
        }
    }

    @Test func knownPeers_seededRandomText_eitherParsesToWholePins_orNamesALineOfIt() {
        var generator = SeededGenerator(seed: 13)
        let alphabet = Array("0123456789abcdefABCDEF verifiedunverifiedmessaged.:[]#\n\r\t\u{1B}é".utf8)
        var parsed = 0
        for _ in 0..<3_000 {
            let bytes = (0..<Int.random(in: 0...300, using: &generator)).map { _ in
                Bool.random(using: &generator)
                    ? alphabet[Int.random(in: 0..<alphabet.count, using: &generator)]
                    : UInt8.random(in: 0...255, using: &generator)
            }
            let text = String(decoding: bytes, as: UTF8.self)
            do {
                let (pins, legacy) = try KnownPeers.parse(text)
                #expect((Array(pins.values) + Array(legacy.values)).allSatisfy { $0.identityKey.count == 32 })
                parsed += 1
            } catch {
                #expect(error.line >= 1 && error.line <= text.count + 1)
            }
        }
        #expect(parsed > 0)
    }
}
