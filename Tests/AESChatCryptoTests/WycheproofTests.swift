import Testing

@testable import AESChatCrypto

/// Every case of the Wycheproof AES-GCM, HMAC-SHA-256, HKDF-SHA-256, X25519 and Ed25519 files. Each failure names
/// its tcId.
@Suite("Wycheproof")
struct WycheproofTests {
    private static let aesGCMFile = "aes_gcm_test.json"
    private static let hmacFile = "hmac_sha256_test.json"
    private static let hkdfFile = "hkdf_sha256_test.json"
    private static let x25519File = "x25519_test.json"
    private static let ed25519File = "ed25519_test.json"

    // Skipped, with the reason printed, when the vectors are absent and AESCHAT_REQUIRE_WYCHEPROOF is not 1.
    @Test(.enabled(if: Wycheproof.shouldRun(aesGCMFile), Wycheproof.skipComment(aesGCMFile)))
    func aesGCM_wycheproof_passesEveryCase() {
        Wycheproof.run(Self.aesGCMFile, algorithm: "AES-GCM", cases: "AES-GCM", groups: AEADTestGroup.self) { _ in
            { checkAESGCM($0) }
        }
    }

    @Test(.enabled(if: Wycheproof.shouldRun(hmacFile), Wycheproof.skipComment(hmacFile)))
    func hmacSHA256_wycheproof_passesEveryCase() {
        Wycheproof.run(Self.hmacFile, algorithm: "HMACSHA256", cases: "HMAC", groups: MACTestGroup.self) { group in
            { checkHMAC($0, tagSize: group.tagSize / 8) }
        }
    }

    @Test(.enabled(if: Wycheproof.shouldRun(hkdfFile), Wycheproof.skipComment(hkdfFile)))
    func hkdfSHA256_wycheproof_passesEveryCase() {
        Wycheproof.run(Self.hkdfFile, algorithm: "HKDF-SHA-256", cases: "HKDF", groups: HKDFTestGroup.self) { _ in
            { checkHKDF($0) }
        }
    }

    /// X25519: `valid` cases must give exactly the expected secret. Of the `acceptable` cases, those whose expected
    /// secret is all zero (flag `ZeroSharedSecret`, with `LowOrderPublic`) must be refused with
    /// ``CryptoError/weakSharedSecret``; all others (`Twist`, `NonCanonicalPublic`, `SmallPublicKey` with a non-zero
    /// result, edge cases) are accepted and must give exactly the expected secret, as RFC 7748 defines it.
    @Test(.enabled(if: Wycheproof.shouldRun(x25519File), Wycheproof.skipComment(x25519File)))
    func x25519_wycheproof_passesEveryCase() {
        var refusedAsWeak = 0
        Wycheproof.run(
            Self.x25519File, algorithm: "XDH", cases: "X25519", groups: XDHTestGroup.self,
            summary: { ", \(refusedAsWeak) all-zero results refused as weak" },
            checker: { group in
                #expect(group.curve == "curve25519")
                return { if checkX25519($0) { refusedAsWeak += 1 } }
            })
    }

    /// Ed25519: `valid` cases must verify and `invalid` ones must be refused; the file has no `acceptable` case (one
    /// would be reported, and must at least not crash).
    @Test(.enabled(if: Wycheproof.shouldRun(ed25519File), Wycheproof.skipComment(ed25519File)))
    func ed25519_wycheproof_passesEveryCase() {
        var counts: [WycheproofResult: Int] = [:]
        Wycheproof.run(
            Self.ed25519File, algorithm: "EDDSA", cases: "Ed25519", groups: EdDSATestGroup.self,
            summary: {
                " (\(counts[.valid, default: 0]) valid, \(counts[.invalid, default: 0]) invalid, "
                    + "\(counts[.acceptable, default: 0]) acceptable)"
            },
            checker: { group in
                #expect(group.publicKey.curve == "edwards25519")
                guard
                    let publicKey = wycheproofBytes(
                        group.publicKey.pk, field: "pk", tcId: group.tests.first?.tcId ?? 0)
                else { return nil }
                return { test in
                    checkEd25519(test, publicKey: publicKey)
                    counts[test.result, default: 0] += 1
                }
            })
    }

    // MARK: - Runners

    private func checkAESGCM(_ test: AEADTestCase) {
        let id = test.tcId
        guard let key = wycheproofBytes(test.key, field: "key", tcId: id),
            let iv = wycheproofBytes(test.iv, field: "iv", tcId: id),
            let aad = wycheproofBytes(test.aad, field: "aad", tcId: id),
            let message = wycheproofBytes(test.msg, field: "msg", tcId: id),
            let ciphertext = wycheproofBytes(test.ct, field: "ct", tcId: id),
            let tag = wycheproofBytes(test.tag, field: "tag", tcId: id)
        else { return }

        switch test.result {
        case .valid, .acceptable:
            do {
                let cipher = try AESGCM(key: key)
                let sealed = try cipher.seal(message, iv: iv, authenticating: aad)
                #expect(sealed == ciphertext + tag, "tcId \(id) (\(test.comment)): seal gave a different output")
                let opened = try cipher.open(ciphertext: ciphertext, tag: tag, iv: iv, authenticating: aad)
                #expect(opened == message, "tcId \(id) (\(test.comment)): open gave a different plaintext")
            } catch {
                Issue.record("tcId \(id) (\(test.comment)): \(test.result) case was refused: \(error)")
            }
        case .invalid:
            let cipher: AESGCM
            do {
                cipher = try AESGCM(key: key)
            } catch {
                return  // Refusing the key refuses the case.
            }
            do {
                let opened = try cipher.open(ciphertext: ciphertext, tag: tag, iv: iv, authenticating: aad)
                Issue.record("tcId \(id) (\(test.comment)): invalid case was opened to \(opened.count) bytes")
            } catch {
                if test.flags.contains("ZeroLengthIv") {
                    #expect(error == .invalidNonceSize(expected: AESGCM.nonceSize, actual: 0), "tcId \(id)")
                } else if test.flags == ["ModifiedTag"] {
                    #expect(error == .authenticationFailed, "tcId \(id) (\(test.comment))")
                }
            }
            if iv.isEmpty {
                #expect(throws: CryptoError.self, "tcId \(id): sealing with an empty IV must be refused") {
                    try cipher.seal(message, iv: iv, authenticating: aad)
                }
            }
        }
    }

    private func checkHMAC(_ test: MACTestCase, tagSize: Int) {
        let id = test.tcId
        guard let key = wycheproofBytes(test.key, field: "key", tcId: id),
            let message = wycheproofBytes(test.msg, field: "msg", tcId: id),
            let tag = wycheproofBytes(test.tag, field: "tag", tcId: id)
        else { return }
        let verified = HMACSHA256.isValidAuthenticationCode(tag, for: message, key: key)
        switch test.result {
        case .valid, .acceptable:
            let computed = HMACSHA256.authenticationCode(for: message, key: key)
            #expect(Array(computed.prefix(tagSize)) == tag, "tcId \(id) (\(test.comment)): wrong HMAC")
            #expect(verified, "tcId \(id) (\(test.comment)): a valid tag was rejected")
        case .invalid:
            #expect(!verified, "tcId \(id) (\(test.comment)): an invalid tag was accepted")
        }
    }

    private func checkHKDF(_ test: HKDFTestCase) {
        let id = test.tcId
        guard let inputKeyMaterial = wycheproofBytes(test.ikm, field: "ikm", tcId: id),
            let salt = wycheproofBytes(test.salt, field: "salt", tcId: id),
            let info = wycheproofBytes(test.info, field: "info", tcId: id),
            let expected = wycheproofBytes(test.okm, field: "okm", tcId: id)
        else { return }
        switch test.result {
        case .valid, .acceptable:
            do {
                let derived = try HKDFSHA256.deriveKey(
                    inputKeyMaterial: inputKeyMaterial, salt: salt, info: info, outputByteCount: test.size)
                #expect(derived == expected, "tcId \(id) (\(test.comment)): wrong output keying material")
            } catch {
                Issue.record("tcId \(id) (\(test.comment)): \(test.result) case was refused: \(error)")
            }
        case .invalid:
            #expect(throws: CryptoError.self, "tcId \(id) (\(test.comment)): invalid case was accepted") {
                try HKDFSHA256.deriveKey(
                    inputKeyMaterial: inputKeyMaterial, salt: salt, info: info, outputByteCount: test.size)
            }
        }
    }

    /// Checks one X25519 case; returns whether it was (rightly) refused as a weak, all-zero secret.
    private func checkX25519(_ test: XDHTestCase) -> Bool {
        let id = test.tcId
        guard let publicKey = wycheproofBytes(test.public, field: "public", tcId: id),
            let privateKey = wycheproofBytes(test.private, field: "private", tcId: id),
            let expected = wycheproofBytes(test.shared, field: "shared", tcId: id)
        else { return false }
        let expectsZero = expected == [UInt8](repeating: 0, count: expected.count)
        #expect(
            expectsZero == test.flags.contains("ZeroSharedSecret"),
            "tcId \(id): the ZeroSharedSecret flag and the expected secret disagree")
        let key: X25519PrivateKey
        do {
            key = try X25519PrivateKey(rawRepresentation: privateKey)
        } catch {
            Issue.record("tcId \(id) (\(test.comment)): the private key was refused: \(error)")
            return false
        }
        switch (test.result, expectsZero) {
        case (.valid, _), (.acceptable, false):
            do {
                let secret = try key.sharedSecret(with: publicKey)
                #expect(
                    secret.withUnsafeBytes { Array($0) } == expected,
                    "tcId \(id) (\(test.comment)): wrong shared secret")
            } catch {
                Issue.record("tcId \(id) (\(test.comment)): \(test.result) case was refused: \(error)")
            }
            return false
        case (.acceptable, true):
            #expect(throws: CryptoError.weakSharedSecret, "tcId \(id) (\(test.comment)): zero secret accepted") {
                try key.sharedSecret(with: publicKey)
            }
            return true
        case (.invalid, _):
            #expect(throws: CryptoError.self, "tcId \(id) (\(test.comment)): invalid case was accepted") {
                try key.sharedSecret(with: publicKey)
            }
            return false
        }
    }

    private func checkEd25519(_ test: EdDSATestCase, publicKey: [UInt8]) {
        let id = test.tcId
        guard let message = wycheproofBytes(test.msg, field: "msg", tcId: id),
            let signature = wycheproofBytes(test.sig, field: "sig", tcId: id)
        else { return }
        let verified = Ed25519.isValidSignature(signature, for: message, publicKey: publicKey)
        switch test.result {
        case .valid:
            #expect(verified, "tcId \(id) (\(test.comment)): a valid signature was refused")
        case .acceptable:
            print("Wycheproof Ed25519 tcId \(id) is acceptable (\(test.flags)); isValidSignature said \(verified)")
        case .invalid:
            #expect(!verified, "tcId \(id) (\(test.comment)): an invalid signature was accepted")
        }
    }
}
