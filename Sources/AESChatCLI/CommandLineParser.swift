/// The hand-rolled, table-driven parser of `aeschat`'s command line.
///
/// Grammar (see `docs/CLI.md`):
/// - `aeschat <mode> [options]` with modes `serve`, `join` and `keygen`; each mode's options come from its table in
///   `OptionTables.swift`.
/// - `aeschat help [<mode>]`, `aeschat -h [<mode>]`, `aeschat --help [<mode>]`, and `-h` or `--help` anywhere among a
///   mode's arguments before `--` (help wins over every other argument, even invalid ones).
/// - `aeschat --version`, alone.
/// - `--opt value` and `--opt=value`; a separate value that starts with `--` counts as missing (write
///   `--opt=--value` to pass one); a single `-` or a negative number is a value. A flag rejects `--flag=value`.
/// - `--` ends the options; since no mode takes positional arguments, anything after it is an error.
/// - Each option may be given once. Arguments are read left to right and the first problem is reported; missing
///   required options are reported last.
///
/// Stateless and pure, safe from any thread.
public enum CommandLineParser {
    /// Parses a command line.
    ///
    /// - Parameter arguments: The arguments without the executable's name (`CommandLine.arguments.dropFirst()`).
    /// - Returns: The command to run, with validated options.
    /// - Throws: ``UsageError`` naming the first problem, with the mode whose usage to show.
    public static func parse(_ arguments: [String]) throws(UsageError) -> Command {
        guard let first = arguments.first else {
            throw UsageError("no command given: expected \(modeList(Mode.allCases, conjunction: "or"))", mode: nil)
        }
        let rest = Array(arguments.dropFirst())
        switch first {
        case "help", "-h", "--help":
            return try parseHelp(rest, spelledAs: first)
        case "--version":
            if let extra = rest.first {
                throw UsageError("unexpected argument \(Quote.quoted(extra)) after '--version'", mode: nil)
            }
            return .version
        default:
            break
        }
        switch Mode(rawValue: first) {
        case .serve: return try parse(rest, with: OptionTables.serve)
        case .join: return try parse(rest, with: OptionTables.join)
        case .keygen: return try parse(rest, with: OptionTables.keygen)
        case .selftest: return try parse(rest, with: OptionTables.selftest)
        case nil: break
        }
        if first.hasPrefix("-"), first != "-" {
            throw topLevelOptionError(first)
        }
        throw unknownCommandError(first)
    }

    /// `help [<mode>]` and its `-h` and `--help` spellings.
    private static func parseHelp(_ arguments: [String], spelledAs help: String) throws(UsageError) -> Command {
        guard let topic = arguments.first else { return .help(nil) }
        let mode: Mode?
        switch topic {
        case "help", "-h", "--help": mode = nil
        default:
            guard let named = Mode(rawValue: topic) else { throw unknownCommandError(topic) }
            mode = named
        }
        if arguments.count > 1 {
            throw UsageError("unexpected argument \(Quote.quoted(arguments[1])) after '\(help) \(topic)'", mode: nil)
        }
        return .help(mode)
    }

    /// Parses one mode's arguments with its option table.
    private static func parse<Options>(_ arguments: [String], with spec: ModeSpec<Options>) throws(UsageError)
        -> Command
    {
        let mode = spec.mode
        for argument in arguments {
            if argument == "--" { break }
            if argument == "-h" || argument == "--help" { return .help(mode) }
        }

        var options = spec.initial
        var seen: Set<String> = []
        var optionsEnded = false
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--", !optionsEnded {
                optionsEnded = true
                continue
            }
            guard !optionsEnded, argument.hasPrefix("-"), argument != "-" else {
                let place = optionsEnded ? " after '--'" : ""
                let problem = "unexpected argument \(Quote.quoted(argument))\(place)"
                throw UsageError("\(problem): \(mode.rawValue) takes no positional arguments", mode: mode)
            }

            let (name, inlineValue) = splitInlineValue(argument)
            guard let option = spec.options.first(where: { $0.name == name }) else {
                throw unknownOptionError(name, argument: argument, in: spec)
            }
            guard seen.insert(name).inserted else {
                throw UsageError("option '\(name)' given more than once", mode: mode)
            }

            let value: String
            if !option.takesValue {
                if inlineValue != nil {
                    throw UsageError("'\(name)' does not take a value: got \(Quote.quoted(argument))", mode: mode)
                }
                value = ""
            } else if let inlineValue {
                value = inlineValue
            } else if index < arguments.count, !arguments[index].hasPrefix("--") {
                value = arguments[index]
                index += 1
            } else if index < arguments.count {
                throw UsageError(
                    "missing value for '\(option.synopsis)' before \(Quote.quoted(arguments[index]))",
                    mode: mode
                )
            } else {
                throw UsageError("missing value for '\(option.synopsis)'", mode: mode)
            }
            try option.set(&options, value, OptionContext(mode: mode, option: name))
        }

        let missing = spec.options.filter { $0.isRequired && !seen.contains($0.name) }
        if !missing.isEmpty {
            let list = englishList(missing.map { "'\($0.synopsis)'" }, conjunction: "and")
            throw UsageError("missing required option\(missing.count == 1 ? "" : "s") \(list)", mode: mode)
        }
        return spec.command(options)
    }

    /// Splits `--opt=value` at the first `=`; other arguments have no inline value.
    private static func splitInlineValue(_ argument: String) -> (name: String, value: String?) {
        guard let equals = argument.firstIndex(of: "=") else { return (argument, nil) }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }

    /// An option-like argument that is not in the mode's table.
    private static func unknownOptionError<Options>(_ name: String, argument: String, in spec: ModeSpec<Options>)
        -> UsageError
    {
        let mode = spec.mode
        if name == "-h" || name == "--help" {
            return UsageError("'\(name)' does not take a value: got \(Quote.quoted(argument))", mode: mode)
        }
        if name == "--version" {
            return UsageError("'--version' is not an option of \(mode.rawValue): use 'aeschat --version'", mode: mode)
        }
        let owners = Mode.allCases.filter { $0 != mode && OptionTables.options(of: $0).contains { $0.name == name } }
        if !owners.isEmpty {
            let ownerList = modeList(owners, conjunction: "and")
            return UsageError(
                "'\(name)' is not an option of \(mode.rawValue) (it is an option of \(ownerList))", mode: mode)
        }
        let candidates = spec.options.map(\.name) + ["--help"]
        return UsageError("unknown option \(Quote.quoted(name))" + didYouMean(name, among: candidates), mode: mode)
    }

    /// An option-like first argument, before any mode.
    private static func topLevelOptionError(_ argument: String) -> UsageError {
        let (name, _) = splitInlineValue(argument)
        if name == "--version" || name == "--help" || name == "-h" {
            return UsageError("'\(name)' does not take a value: got \(Quote.quoted(argument))", mode: nil)
        }
        if name == "--" {
            return UsageError("expected a command before '--'", mode: nil)
        }
        let owners = Mode.allCases.filter { OptionTables.options(of: $0).contains { $0.name == name } }
        if !owners.isEmpty {
            return UsageError(
                "expected a command before '\(name)' (an option of \(modeList(owners, conjunction: "and")))",
                mode: nil
            )
        }
        return UsageError(
            "unknown option \(Quote.quoted(name))" + didYouMean(name, among: ["--help", "--version"]),
            mode: nil
        )
    }

    /// A first argument that is neither a mode nor `help`.
    private static func unknownCommandError(_ command: String) -> UsageError {
        let modes = Mode.allCases.map(\.rawValue)
        return UsageError(
            "unknown command \(Quote.quoted(command)): expected \(modeList(Mode.allCases, conjunction: "or"))"
                + didYouMean(command, among: modes + ["help"]),
            mode: nil
        )
    }

    private static func didYouMean(_ input: String, among candidates: [String]) -> String {
        Suggestion.closest(to: input, among: candidates).map { ". Did you mean '\($0)'?" } ?? ""
    }

    private static func modeList(_ modes: [Mode], conjunction: String) -> String {
        englishList(modes.map(\.rawValue), conjunction: conjunction)
    }

    /// `a`, `a and b`, `a, b and c`.
    private static func englishList(_ items: [String], conjunction: String) -> String {
        guard let last = items.last else { return "" }
        guard items.count > 1 else { return last }
        return items.dropLast().joined(separator: ", ") + " \(conjunction) " + last
    }
}
