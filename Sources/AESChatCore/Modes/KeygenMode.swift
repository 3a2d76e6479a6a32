public import AESChatCLI
import AESChatCrypto

/// `aeschat keygen`: makes a random 256-bit room key and prints it, or writes it to a new file
/// with mode 0600.
public enum KeygenMode {
    /// Makes the key.
    /// - Returns: the process exit code (74 when the file exists or cannot be written).
    public static func run(_ options: KeygenOptions) -> ExitCode {
        if let path = options.identity {
            guard options.out == nil else {
                StandardError.write("Error: --out and --identity make different keys; give one of them")
                StandardError.write("Usage: \(HelpText.usage(for: .keygen))")
                return .usage
            }
            do {
                let identity = Identity(key: Ed25519PrivateKey())
                try identity.write(toNewFile: path)
                StandardError.write("wrote a new identity key to '\(path)' (mode 0600)")
                print("fingerprint: \(Identity.fingerprint(of: identity.publicKey))")
                return .success
            } catch {
                StandardError.write("Error: \(error.description)")
                return .ioError
            }
        }
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
