/// Everything the parser and help need to know about one mode.
struct ModeSpec<Options: Sendable>: Sendable {
    /// The mode.
    let mode: Mode
    /// The one-sentence summary for the general help's command list.
    let abstract: String
    /// The OVERVIEW paragraph of the mode's help.
    let overview: String
    /// The options before any argument is applied: every default in place, required values empty.
    let initial: Options
    /// The options, in the order help lists them.
    let options: [OptionSpec<Options>]
    /// Wraps the finished options in a ``Command``.
    let command: @Sendable (Options) -> Command
    /// How the mode reads a configuration file, or `nil` when it reads none.
    var configuration: ConfigurationSupport<Options>? = nil
}
