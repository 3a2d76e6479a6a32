public import AESChatCLI

/// `aeschat keygen`: makes a random 256-bit room key and prints it, or writes it to a new file
/// with mode 0600.
public enum KeygenMode {
    /// Makes the key.
    /// - Returns: the process exit code (74 when the file exists or cannot be written).
    public static func run(_ options: KeygenOptions) -> ExitCode {
        let key = RoomKey.generate()
        guard let path = options.out else {
            print(key.hexEncoded)
            return .success
        }
        do {
            try key.write(toNewFile: path)
            StandardError.write(
                "wrote a new room key to '\(path)' (mode 0600); share it only with the people in the room")
            return .success
        } catch {
            StandardError.write("Error: \(error.description)")
            return .ioError
        }
    }
}
