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
            #expect(throws: IdentityError.self) { try Identity.parse(text, path: "id") }
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

    @Test func knownPeers_roundTrip_andKeepEveryLineTheyDoNotUnderstand() {
        let key = Array(repeating: UInt8(0xAB), count: 32)
        let entries = [
            KnownPeers.Entry(
                relay: "127.0.0.1:7777", room: "lobby", name: "bob", pin: PeerPin(identityKey: key, isVerified: true)),
            KnownPeers.Entry(
                relay: "[::1]:7000", room: "ops", name: "carol", pin: PeerPin(identityKey: key, isVerified: false)),
        ]
        let foreign = ["# a comment", "a line from a newer version with more fields x y z"]
        let text = KnownPeers.render(entries: entries, foreignLines: foreign)
        let (parsedEntries, parsedForeign) = KnownPeers.parse(text)
        #expect(parsedEntries == entries)
        #expect(parsedForeign == foreign)
        #expect(KnownPeers.render(entries: parsedEntries, foreignLines: parsedForeign) == text)
    }

    @Test func knownPeers_seededRandomText_losesNoLine() {
        var generator = SeededGenerator(seed: 13)
        let alphabet = Array("0123456789abcdefABCDEF verifiedunverified.:[]\n\r\t\u{1B}é".utf8)
        for _ in 0..<3_000 {
            let bytes = (0..<Int.random(in: 0...300, using: &generator)).map { _ in
                Bool.random(using: &generator)
                    ? alphabet[Int.random(in: 0..<alphabet.count, using: &generator)]
                    : UInt8.random(in: 0...255, using: &generator)
            }
            let text = String(decoding: bytes, as: UTF8.self)
            let (entries, foreign) = KnownPeers.parse(text)
            #expect(entries.count + foreign.count == text.split(separator: "\n").count)
            #expect(entries.allSatisfy { $0.pin.identityKey.count == 32 })
        }
    }
}
