import AESChatCLI
import AESChatCore
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Parses the command line, runs the mode, and exits with its code.
let code: ExitCode
do {
    let arguments = Array(CommandLine.arguments.dropFirst())
    let environment = ProcessInfo.processInfo.environment
    switch try CommandLineParser.parse(arguments, environment: environment, readFile: ConfigurationFile.read) {
    case .serve(let options): code = ServeMode.run(options)
    case .join(let options): code = JoinMode.run(options)
    case .keygen(let options): code = KeygenMode.run(options)
    case .selftest(let options): code = SelfTestMode.run(options)
    case .help(let mode):
        print(mode.map(HelpText.help(for:)) ?? HelpText.general())
        code = .success
    case .version:
        print("aeschat \(aeschatVersion)")
        code = .success
    }
} catch {
    StandardError.write(error.description)
    code = .usage
}
exit(code.rawValue)
