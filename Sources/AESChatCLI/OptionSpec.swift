/// One option of one mode: its spelling, whether it takes a value, its help, and how it validates and stores the
/// value. Tables of these (in `OptionTables.swift`) drive both the parser and the help text.
///
/// An immutable, `Sendable` value; the setter closure captures nothing.
struct OptionSpec<Options>: Sendable {
    /// Validates an option's text and stores the value into the options being built. For a flag the text is empty.
    typealias Setter = @Sendable (inout Options, String, OptionContext) throws(UsageError) -> Void

    /// The spelling with its dashes, e.g. `--port`.
    let name: String
    /// The placeholder for the value in help and usage, e.g. `n` for `--port <n>`; `nil` for a flag.
    let valueName: String?
    /// Whether the command line must give this option.
    let isRequired: Bool
    /// The default shown in help, if any.
    let defaultText: String?
    /// One or two sentences for help.
    let help: String
    /// Validates the text and stores the value.
    let set: Setter

    /// Whether the option takes a value (`--port 7777`) rather than being a flag (`--json`).
    var takesValue: Bool { valueName != nil }

    /// The option as usage shows it: `--port <n>` or `--json`.
    var synopsis: String { info.synopsis }

    /// An option that takes a value, parsed by a validator from `Values` and stored at a key path.
    ///
    /// - Parameters:
    ///   - name: The spelling with its dashes.
    ///   - valueName: The placeholder shown in help.
    ///   - required: Whether the command line must give it.
    ///   - defaultText: The default shown in help, if any.
    ///   - help: The help sentence.
    ///   - parse: Turns the text into a value or throws a ``UsageError`` quoting it.
    ///   - keyPath: Where the value goes.
    /// - Returns: The spec.
    static func value<Value>(
        _ name: String,
        _ valueName: String,
        required: Bool = false,
        default defaultText: String? = nil,
        help: String,
        parse: @escaping @Sendable (String, OptionContext) throws(UsageError) -> Value,
        into keyPath: any WritableKeyPath<Options, Value> & Sendable
    ) -> Self {
        Self(name: name, valueName: valueName, isRequired: required, defaultText: defaultText, help: help) {
            (options: inout Options, text: String, context: OptionContext) throws(UsageError) in
            options[keyPath: keyPath] = try parse(text, context)
        }
    }

    /// An option that takes a value and is stored in an optional property, `nil` until given.
    ///
    /// - Parameters:
    ///   - name: The spelling with its dashes.
    ///   - valueName: The placeholder shown in help.
    ///   - help: The help sentence.
    ///   - parse: Turns the text into a value or throws a ``UsageError`` quoting it.
    ///   - keyPath: Where the value goes.
    /// - Returns: The spec.
    static func value<Value>(
        _ name: String,
        _ valueName: String,
        help: String,
        parse: @escaping @Sendable (String, OptionContext) throws(UsageError) -> Value,
        into keyPath: any WritableKeyPath<Options, Value?> & Sendable
    ) -> Self {
        Self(name: name, valueName: valueName, isRequired: false, defaultText: nil, help: help) {
            (options: inout Options, text: String, context: OptionContext) throws(UsageError) in
            options[keyPath: keyPath] = try parse(text, context)
        }
    }

    /// A Boolean flag: present means `true`; `--flag=value` is rejected by the parser.
    ///
    /// - Parameters:
    ///   - name: The spelling with its dashes.
    ///   - help: The help sentence.
    ///   - keyPath: The property set to `true`.
    /// - Returns: The spec.
    static func flag(_ name: String, help: String, into keyPath: any WritableKeyPath<Options, Bool> & Sendable) -> Self
    {
        Self(name: name, valueName: nil, isRequired: false, defaultText: nil, help: help) { options, _, _ in
            options[keyPath: keyPath] = true
        }
    }

    /// The parts of the spec that help text needs, without the setter's type.
    var info: OptionInfo {
        OptionInfo(name: name, valueName: valueName, isRequired: isRequired, defaultText: defaultText, help: help)
    }
}

/// Where a value being validated came from, so a validator's message can name the option and the usage line.
struct OptionContext: Sendable, Equatable {
    /// The mode being parsed.
    let mode: Mode
    /// The option's spelling with its dashes, e.g. `--inbox`.
    let option: String
}

/// The type-free description of an option, for help and usage text.
struct OptionInfo: Sendable, Equatable {
    let name: String
    let valueName: String?
    let isRequired: Bool
    let defaultText: String?
    let help: String

    /// The option as usage shows it: `--port <n>` or `--json`.
    var synopsis: String { valueName.map { "\(name) <\($0)>" } ?? name }
}
