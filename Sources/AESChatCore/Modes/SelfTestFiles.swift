import AESChatCLI
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The self test's look at the user's own files: the configuration folder, the identity file, `known_peers`, and the
/// inbox if one was named. Nothing is created or changed, except a probe file made and removed in the inbox.
struct SelfTestFiles {
    let environment: [String: String]
    let inbox: String?

    func checks() -> [SelfTestCheck] {
        let folder = ConfigurationFolder.path(environment: environment)
        var checks = [
            check("configuration folder") { configurationFolder(folder) },
            check("identity file") { identityFile(Identity.defaultPath(environment: environment)) },
            check("known_peers") { knownPeers(KnownPeers.defaultPath(configurationFolder: folder)) },
            check("configuration file") { configurationFile() },
        ]
        if let inbox {
            checks.append(check("inbox") { self.inbox(inbox) })
        }
        return checks
    }

    private func check(_ name: String, _ body: () -> (Bool, String)) -> SelfTestCheck {
        let (passed, detail) = body()
        return SelfTestCheck(name: name, passed: passed, detail: detail, milliseconds: 0)
    }

    /// The file's status without following a link, or nil when nothing is there.
    private func status(_ path: String) -> stat? {
        var info = stat()
        return lstat(path, &info) == 0 ? info : nil
    }

    private static func mode(_ info: stat) -> String { "mode " + String(info.st_mode & 0o7777, radix: 8) }

    /// `join`'s configuration file, read as `join` reads it.
    private func configurationFile() -> (Bool, String) {
        do {
            guard let (path, settings) = try CommandLineParser.checkJoinConfigurationFile(environment: environment)
            else {
                let path = ConfigurationFile.standardPath(environment: environment) ?? "(no HOME)"
                return (true, "no configuration file at '\(path)' (optional)")
            }
            return (true, "'\(path)': \(settings) setting\(settings == 1 ? "" : "s"), each one join accepts")
        } catch {
            return (false, error.message)
        }
    }

    private func configurationFolder(_ path: String) -> (Bool, String) {
        guard let info = status(path) else { return (true, "'\(path)' is not made yet (join makes it, mode 0700)") }
        guard info.st_mode & S_IFMT == S_IFDIR else { return (false, "'\(path)' is not a folder") }
        guard info.st_uid == getuid() else { return (false, "'\(path)' belongs to another user (uid \(info.st_uid))") }
        guard info.st_mode & 0o022 == 0 else {
            return (false, "'\(path)' can be changed by other users (\(Self.mode(info))); run 'chmod 700 \(path)'")
        }
        return (true, "'\(path)', \(Self.mode(info))")
    }

    private func identityFile(_ path: String) -> (Bool, String) {
        guard let info = status(path) else { return (true, "none yet at '\(path)' (the first join makes one)") }
        guard info.st_mode & S_IFMT == S_IFREG else { return (false, "'\(path)' is not a plain file") }
        guard info.st_uid == getuid() else { return (false, "'\(path)' belongs to another user (uid \(info.st_uid))") }
        do {
            // What join only warns about (a file others can read), the self test counts as a failure.
            var readableByOthers: String?
            let identity = try Identity.load(path: path) { readableByOthers = $0 }
            if let readableByOthers { return (false, readableByOthers) }
            return (true, "'\(path)', \(Self.mode(info)), fingerprint \(Identity.fingerprint(of: identity.publicKey))")
        } catch {
            return (false, error.description)
        }
    }

    private func knownPeers(_ path: String) -> (Bool, String) {
        guard let info = status(path) else { return (true, "none yet at '\(path)'") }
        guard info.st_mode & S_IFMT == S_IFREG else { return (false, "'\(path)' is not a plain file") }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else {
            return (false, "'\(path)' cannot be read: \(String(cString: strerror(errno)))")
        }
        close(descriptor)
        return (true, "'\(path)', \(info.st_size) bytes, readable")
    }

    private func inbox(_ path: String) -> (Bool, String) {
        guard let info = status(path) else { return (false, "'\(path)' does not exist") }
        guard info.st_mode & S_IFMT == S_IFDIR else { return (false, "'\(path)' is not a folder") }
        // The rule join applies to an inbox (owner, nobody else may write), from the same code.
        let folder = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard folder >= 0 else { return (false, "cannot open '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(folder) }
        if let problem = Inbox.permissionProblem(descriptor: folder, path: path) { return (false, problem) }
        let probe = path + "/.aeschat-selftest-\(getpid())"
        let descriptor = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            return (false, "cannot write in '\(path)': \(String(cString: strerror(errno)))")
        }
        close(descriptor)
        unlink(probe)
        return (true, "'\(path)', \(Self.mode(info)), writable")
    }
}
