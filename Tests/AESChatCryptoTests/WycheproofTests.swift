import Testing

@testable import AESChatCrypto

/// Every case of the Wycheproof AES-GCM, HMAC-SHA-256 and HKDF-SHA-256 files. Each failure names its tcId.
@Suite("Wycheproof")
struct WycheproofTests {
    private static let aesGCMFile = "aes_gcm_test.json"
    private static let hmacFile = "hmac_sha256_test.json"
    private static let hkdfFile = "hkdf_sha256_test.json"

    // Skipped, with the reason printed, when the vectors are absent and AESCHAT_REQUIRE_WYCHEPROOF is not 1.
    @Test(.enabled(if: Wycheproof.shouldRun(aesGCMFile), Wycheproof.skipComment(aesGCMFile)))
    func aesGCM_wycheproof_passesEveryCase() {
        guard let file = Wycheproof.load(WycheproofFile<AEADTestGroup>.self, from: Self.aesGCMFile) else { return }
        #expect(file.algorithm == "AES-GCM")
        var checked = 0
        for group in file.testGroups {
            for test in group.tests {
                checkAESGCM(test)
                checked += 1
            }
        }
        #expect(checked == file.numberOfTests, "checked \(checked) AES-GCM cases of \(file.numberOfTests)")
        print("Wycheproof \(Self.aesGCMFile): checked \(checked) of \(file.numberOfTests) cases")
    }

    @Test(.enabled(if: Wycheproof.shouldRun(hmacFile), Wycheproof.skipComment(hmacFile)))
    func hmacSHA256_wycheproof_passesEveryCase() {
        guard let file = Wycheproof.load(WycheproofFile<MACTestGroup>.self, from: Self.hmacFile) else { return }
        #expect(file.algorithm == "HMACSHA256")
        var checked = 0
        for group in file.testGroups {
            for test in group.tests {
                checkHMAC(test, tagSize: group.tagSize / 8)
                checked += 1
            }
        }
        #expect(checked == file.numberOfTests, "checked \(checked) HMAC cases of \(file.numberOfTests)")
        print("Wycheproof \(Self.hmacFile): checked \(checked) of \(file.numberOfTests) cases")
    }

    @Test(.enabled(if: Wycheproof.shouldRun(hkdfFile), Wycheproof.skipComment(hkdfFile)))
    func hkdfSHA256_wycheproof_passesEveryCase() {
        guard let file = Wycheproof.load(WycheproofFile<HKDFTestGroup>.self, from: Self.hkdfFile) else { return }
        #expect(file.algorithm == "HKDF-SHA-256")
        var checked = 0
        for group in file.testGroups {
            for test in group.tests {
                checkHKDF(test)
                checked += 1
            }
        }
        #expect(checked == file.numberOfTests, "checked \(checked) HKDF cases of \(file.numberOfTests)")
        print("Wycheproof \(Self.hkdfFile): checked \(checked) of \(file.numberOfTests) cases")
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
}
