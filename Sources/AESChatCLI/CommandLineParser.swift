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
        try parse(arguments, environment: [:], readFile: { _ in .missing })
    }

    /// Parses a command line, with `join`'s configuration file and the environment's defaults.
    ///
    /// - Parameters:
    ///   - arguments: The arguments without the executable's name (`CommandLine.arguments.dropFirst()`).
    ///   - environment: The process environment: where the configuration file is (`XDG_CONFIG_HOME`, `HOME`) and
    ///     the member name's default (`USER`).
    ///   - readFile: Reads a configuration file (``ConfigurationFile/read(path:)``; a stand-in in tests).
    /// - Returns: The command to run, with validated options: the command line's, else the file's, else the
    ///   defaults.
    /// - Throws: ``UsageError`` naming the first problem: on the command line (with the mode whose usage to show),
    ///   else in the configuration file (one line naming the file and line).
    public static func parse(
        _ arguments: [String], environment: [String: String],
        readFile: @escaping (String) -> ConfigurationFile.Contents
    ) throws(UsageError) -> Command {
        let context = Environment(variables: environment, readFile: readFile)
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
        case .serve: return try parse(rest, with: OptionTables.serve, context)
        case .join: return try parse(rest, with: OptionTables.join, context)
        case .keygen: return try parse(rest, with: OptionTables.keygen, context)
        case .selftest: return try parse(rest, with: OptionTables.selftest, context)
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

    /// What the parser may read besides the arguments.
    private struct Environment {
        var variables: [String: String]
        var readFile: (String) -> ConfigurationFile.Contents
    }

    /// Parses one mode's arguments with its option table, then applies its configuration file (if it reads one)
    /// under them.
    private static func parse<Options>(
        _ arguments: [String], with spec: ModeSpec<Options>, _ environment: Environment
    ) throws(UsageError) -> Command {
        let mode = spec.mode
        for argument in arguments {
            if argument == "--" { break }
            if argument == "-h" || argument == "--help" { return .help(mode) }
        }

        var options = spec.initial
        var given: [(option: OptionSpec<Options>, value: String, context: OptionContext)] = []
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
            let context = OptionContext(mode: mode, option: name)
            try option.set(&options, value, context)
            given.append((option, value, context))
        }

        let missing = spec.options.filter { $0.isRequired && !seen.contains($0.name) }
        if !missing.isEmpty {
            let list = englishList(missing.map { "'\($0.synopsis)'" }, conjunction: "and")
            throw UsageError("missing required option\(missing.count == 1 ? "" : "s") \(list)", mode: mode)
        }
        guard let configuration = spec.configuration else { return spec.command(options) }

        // The file's settings first, then the command line's over them.
        var configured = spec.initial
        let path: String?
        switch configuration.choice(options) {
        case .none: path = nil
        case .file(let named): path = named
        case .standard: path = ConfigurationFile.standardPath(environment: environment.variables)
        }
        var pathRead: String?
        if let path {
            switch environment.readFile(path) {
            case .missing:
                if case .file = configuration.choice(options) {
                    throw ConfigurationFile.problem(path, nil, "no such configuration file")
                }
            case .unreadable(let reason):
                throw ConfigurationFile.problem(path, nil, "cannot read the configuration file: \(reason)")
            case .text(let text):
                pathRead = path
                for entry in try ConfigurationFile.entries(text, path: path) {
                    try apply(entry, from: path, to: &configured, spec: spec, configuration, environment.variables)
                }
            }
        }
        for setting in given {
            try setting.option.set(&configured, setting.value, setting.context)
        }
        try configuration.complete(&configured, environment.variables, pathRead)
        return spec.command(configured)
    }

    /// Checks `join`'s standard configuration file the way `join` reads it: every setting through its option's
    /// validator, nothing else (for `aeschat selftest`).
    ///
    /// - Parameters:
    ///   - environment: The process environment (`XDG_CONFIG_HOME`, `HOME`).
    ///   - readFile: Reads a configuration file (``ConfigurationFile/read(path:)``; a stand-in in tests).
    /// - Returns: The file's path and how many settings it has, or `nil` when there is no file.
    /// - Throws: ``UsageError``: the one-line message `join` would stop with.
    public static func checkJoinConfigurationFile(
        environment: [String: String], readFile: (String) -> ConfigurationFile.Contents = ConfigurationFile.read
    ) throws(UsageError) -> (path: String, settings: Int)? {
        let spec = OptionTables.join
        guard let configuration = spec.configuration,
            let path = ConfigurationFile.standardPath(environment: environment)
        else { return nil }
        switch readFile(path) {
        case .missing:
            return nil
        case .unreadable(let reason):
            throw ConfigurationFile.problem(path, nil, "cannot read the configuration file: \(reason)")
        case .text(let text):
            var options = spec.initial
            let entries = try ConfigurationFile.entries(text, path: path)
            for entry in entries {
                try apply(entry, from: path, to: &options, spec: spec, configuration, environment)
            }
            return (path, entries.count)
        }
    }

    /// Applies one setting of a configuration file with its option's validator.
    private static func apply<Options>(
        _ entry: ConfigurationFile.Entry, from path: String, to options: inout Options, spec: ModeSpec<Options>,
        _ configuration: ConfigurationSupport<Options>, _ variables: [String: String]
    ) throws(UsageError) {
        let key = configuration.aliases[entry.key] ?? entry.key
        guard configuration.keys.contains(key), let option = spec.options.first(where: { $0.name == "--" + key })
        else {
            if let option = spec.options.first(where: { $0.name == "--" + key }) {
                throw ConfigurationFile.problem(
                    path, entry.line,
                    "\(Quote.quoted(entry.key)) cannot be set in a configuration file: give \(option.name) on the "
                        + "command line")
            }
            throw ConfigurationFile.problem(
                path, entry.line,
                "unknown setting \(Quote.quoted(entry.key))" + didYouMean(entry.key, among: configuration.keys))
        }
        var value = entry.value
        if value.hasPrefix("~/"), let home = variables["HOME"], !home.isEmpty {
            value = home + value.dropFirst()
        }
        do {
            try option.set(&options, value, OptionContext(mode: spec.mode, option: option.name))
        } catch {
            throw ConfigurationFile.problem(path, entry.line, error.message)
        }
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
