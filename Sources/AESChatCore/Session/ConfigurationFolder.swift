public import Foundation

/// Where aeschat keeps its long-term files: `$XDG_CONFIG_HOME/aeschat`, else `~/.config/aeschat`.
public enum ConfigurationFolder {
    /// The folder path for an environment.
    public static func path(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") { return xdg + "/aeschat" }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return home + "/.config/aeschat"
    }

    /// Creates the folder (mode 0700) if it is missing.
    static func create(_ path: String) throws(KeyFileError) {
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .unwritable(.identity, path: path, reason: error.localizedDescription)
        }
    }
}
