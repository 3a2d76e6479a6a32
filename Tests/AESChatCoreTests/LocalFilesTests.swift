import AESChatCrypto
import Foundation
import Testing

@testable import AESChatCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The permissions of the local files and folders a client uses (issue 11, item 13).
@Suite struct LocalFilesTests {
    @Test func inbox_writableByGroupOrOthers_isRefused_namingTheFix() throws {
        let folder = TemporaryFolder()
        for mode: mode_t in [0o770, 0o707, 0o777, 0o1777, 0o720] {
            let inbox = folder.file("inbox-\(String(mode, radix: 8))")
            #expect(mkdir(inbox, 0o700) == 0 && chmod(inbox, mode) == 0)
            do {
                _ = try Inbox(path: inbox)
                Issue.record("an inbox of mode \(String(mode, radix: 8)) was used")
            } catch {
                #expect(error.description.contains("'\(inbox)'") && error.description.contains("chmod 700 \(inbox)"))
            }
        }
        for mode: mode_t in [0o700, 0o755, 0o500] {
            let inbox = folder.file("fine-\(String(mode, radix: 8))")
            #expect(mkdir(inbox, 0o700) == 0 && chmod(inbox, mode) == 0)
            _ = try Inbox(path: inbox)
        }
        // A folder the inbox makes is the user's own, mode 0700.
        let made = folder.file("made/inbox")
        _ = try Inbox(path: made)
        var status = stat()
        #expect(stat(made, &status) == 0 && status.st_mode & 0o777 == 0o700)
    }

    @Test func inbox_ownedByAnotherUser_isRefused() throws {
        guard let nobody = getpwnam("nobody")?.pointee.pw_uid, geteuid() == 0 else {
            // Only root can give a folder away; the check is the same as for a folder found so.
            return
        }
        let folder = TemporaryFolder()
        let inbox = folder.file("theirs")
        #expect(mkdir(inbox, 0o700) == 0 && chown(inbox, nobody, gid_t(getegid())) == 0)
        do {
            _ = try Inbox(path: inbox)
            Issue.record("an inbox owned by uid \(nobody) was used")
        } catch {
            #expect(error.description.contains("'\(inbox)' belongs to another user (uid \(nobody))"))
        }
    }

    @Test func identity_readableByOthers_isWarnedAbout_asKeyFilesAre() throws {
        let folder = TemporaryFolder()
        let path = folder.file("identity")
        try Identity(key: Ed25519PrivateKey()).write(toNewFile: path)
        var warnings: [String] = []
        _ = try Identity.loadOrCreate(path: path, warn: { warnings.append($0) })
        #expect(warnings.isEmpty)
        for mode: mode_t in [0o640, 0o604, 0o644] {
            #expect(chmod(path, mode) == 0)
            warnings = []
            _ = try Identity.loadOrCreate(path: path, warn: { warnings.append($0) })
            #expect(
                warnings == [
                    "identity file '\(path)' can be read by other users (mode \(String(mode, radix: 8))); "
                        + "restrict it with 'chmod 600 \(path)'"
                ])
        }
    }
}
