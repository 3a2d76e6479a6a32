import AESChatCLI
import Testing

@Suite struct HelpTextTests {
    static let flags: [Mode: [String]] = [
        .serve: ["--host <addr>", "--port <n>", "--relay-key <file>", "--show-key", "-h, --help"],
        // --max-pending-output <bytes> is wider than the flag column, so its help starts on the next line.
        .join: [
            "--name <name>", "--inbox <dir>", "--room <room>", "--host <addr>", "--port <n>", "--relay-key <key>",
            "--accept-new-relay-key", "--key <file>", "--json", "--bell <when>", "--hold <all|changed>",
            "--color <when>", "--log <file>",
            "--config <file>", "--no-config", "-h, --help",
        ],
        .keygen: ["--out <file>", "-h, --help"],
        .selftest: ["--json", "--inbox <dir>", "-h, --help"],
    ]

    @Test(arguments: Mode.allCases)
    func help_listsEveryFlag_forMode(mode: Mode) {
        let help = HelpText.help(for: mode)
        for flag in Self.flags[mode, default: []] {
            #expect(help.contains("\n  \(flag) "), "\(mode) help lacks \(flag)")
        }
        #expect(help.hasPrefix("OVERVIEW: "))
        #expect(help.contains("\n\nUSAGE: aeschat \(mode.rawValue)"))
        #expect(help.contains("\n\nOPTIONS:\n"))
    }

    @Test(arguments: Mode.allCases.map(Optional.some) + [nil])
    func help_fitsEightyColumns_withoutTrailingNewline(mode: Mode?) {
        let help = mode.map(HelpText.help(for:)) ?? HelpText.general()
        for line in help.split(separator: "\n") {
            #expect(line.count <= 80, "too long: \(line)")
            #expect(!line.hasSuffix(" "), "trailing space: \(line)")
        }
        #expect(!help.hasSuffix("\n"))
    }

    @Test func serveHelp_matchesGolden() {
        #expect(
            HelpText.help(for: .serve) == """
                OVERVIEW: Run the relay that members connect to. It forwards the members'
                end-to-end encrypted messages within each room. It listens on 127.0.0.1 unless
                --host says otherwise; use --host 0.0.0.0 or --host :: to serve a network.

                USAGE: aeschat serve [--host <addr>] [--port <n>] [--relay-key <file>]
                       [--previous-relay-key <file>] [--show-key] [--max-pending-output <bytes>]
                       [--max-frame-size <bytes>] [--handshake-timeout <secs>]
                       [--handshake-rate <n>] [--handshake-burst <n>] [--max-connections <n>]
                       [--max-connections-per-address <n>] [--message-rate <n>]
                       [--message-burst <n>] [--idle-timeout <secs>] [--byte-rate <bytes>]
                       [--byte-burst <bytes>] [--frame-grace <secs>] [--min-frame-rate <bytes>]
                       [--frame-budget <bytes>] [--frame-budget-per-address <bytes>]
                       [--cluster <url>] [--cluster-prefix <name>] [--cluster-dead-after <secs>]

                OPTIONS:
                  --host <addr>           Address to listen on: an IPv4 or IPv6 address or a
                                          hostname. (default: 127.0.0.1)
                  --port <n>              TCP port to listen on, 1 to 65535. (default: 7777)
                  --relay-key <file>      The relay's key file, made on first start (mode 0600)
                                          and never overwritten (default:
                                          $XDG_CONFIG_HOME/aeschat/relay-key, else
                                          ~/.config/aeschat/relay-key).
                  --previous-relay-key <file>
                                          The relay's previous key file during a key rotation:
                                          members pinned to it still connect and are told the
                                          new key.
                  --show-key              Print the relay key's fingerprint and join line, then
                                          exit.
                  --max-pending-output <bytes>
                                          Output queued for one member beyond which it is
                                          disconnected as too slow; a byte count above 16M, with
                                          an optional K, M or G suffix (1024-based). (default:
                                          64M)
                  --max-frame-size <bytes>
                                          Largest frame a client may send, 1K to 16M; a longer
                                          length prefix closes the connection. (default: 16M)
                  --handshake-timeout <secs>
                                          Close a connection that has not said hello within this
                                          many seconds. (default: 10)
                  --handshake-rate <n>    Encrypted-link handshakes per second one address may
                                          start on average; beyond rate and burst the relay
                                          answers busy. 0 for no limit. (default: 20)
                  --handshake-burst <n>   Handshakes one address may start at once. (default:
                                          100)
                  --max-connections <n>   Connections open at once; 0 for no limit. (default:
                                          10000)
                  --max-connections-per-address <n>
                                          Connections open at once from one address; 0 for no
                                          limit. (default: 1000)
                  --message-rate <n>      Frames (file chunks, pings and pongs included) per
                                          second each member may send on average; 0 for no
                                          limit. (default: 5000)
                  --message-burst <n>     Frames a member may send at once; beyond rate and
                                          burst it is disconnected. (default: 10000)
                  --idle-timeout <secs>   Ping a member silent this long; close it when silent
                                          twice as long. (default: 60)
                  --byte-rate <bytes>     Payload bytes per second each member may send on
                                          average, a direct or multicast payload counted once
                                          per recipient; 0 for no limit. (default: 2G)
                  --byte-burst <bytes>    Payload bytes a member may send at once, and the most
                                          one frame may cost; beyond rate and burst it is
                                          disconnected. (default: 1G)
                  --frame-grace <secs>    Seconds a frame in progress has to complete, on top of
                                          its length at --min-frame-rate. (default: 30)
                  --min-frame-rate <bytes>
                                          Slowest a frame may arrive, in bytes per second; a
                                          slower one closes the connection. 0 for no deadline.
                                          (default: 16K)
                  --frame-budget <bytes>  Memory for partly received large frames of all
                                          connections; a frame beyond it is refused. 0 for no
                                          limit. (default: 256M)
                  --frame-budget-per-address <bytes>
                                          The same for the connections of one address; 0 for no
                                          limit. (default: 64M)
                  --cluster <url>         Share rooms with the other relays using this Redis:
                                          redis://[user@]host[:port][/db] or unix:///path. The
                                          password comes from the environment variable
                                          AESCHAT_CLUSTER_PASSWORD, never the command line.
                  --cluster-prefix <name>
                                          Prefix of the cluster's keys and channels in Redis, so
                                          that several clusters can share one Redis: letters,
                                          digits, '-', '_' and '.'. (default: aeschat)
                  --cluster-dead-after <secs>
                                          Take a relay of the cluster for dead once it has been
                                          silent this long (2 to 3600 seconds); its members are
                                          then gone for the others. (default: 5)
                  -h, --help              Show help information.

                See 'aeschat --help' for all commands and exit codes.
                """
        )
    }

    @Test func joinHelp_showsDefaultsAndWrapsUsage() {
        let help = HelpText.help(for: .join)
        #expect(
            help.contains(
                """
                USAGE: aeschat join [--name <name>] [--inbox <dir>] [--room <room>]
                       [--host <addr>] [--port <n>] [--relay-key <key>] [--accept-new-relay-key]
                       [--key <file>] [--json] [--identity <file>]
                       [--accept-files <all|ask|none>] [--max-file-size <bytes>] [--bell <when>]
                       [--hold <all|changed>] [--color <when>] [--log <file>] [--config <file>]
                       [--no-config]
                """
            )
        )
        #expect(help.contains("(default: lobby)"))
        #expect(help.contains("(default: 127.0.0.1)"))
        #expect(help.contains("(default: 7777)"))
        let words = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(words.contains("Asked for on a terminal when not given; without it, a pipe declines every file."))
    }

    @Test func keygenHelp_matchesGolden() {
        #expect(
            HelpText.help(for: .keygen) == """
                OVERVIEW: Generate a random 256-bit room key and print it, or write it to a new
                file with --out. Share it only with the members of the room, who pass it to join
                with --key. With --identity, make a new Ed25519 identity key file instead (join
                makes one on first use anyway).

                USAGE: aeschat keygen [--out <file>] [--identity <file>]

                OPTIONS:
                  --out <file>            Write the key to this new file (mode 0600) instead of
                                          printing it.
                  --identity <file>       Make a new identity key file (mode 0600) instead of a
                                          room key.
                  -h, --help              Show help information.

                See 'aeschat --help' for all commands and exit codes.
                """
        )
    }

    @Test func generalHelp_listsModesOptionsAndExitCodes() {
        let help = HelpText.general()
        #expect(help.hasPrefix("OVERVIEW: "))
        #expect(help.contains("\n\nUSAGE: aeschat <command> [<options>]\n\n"))
        for line in ["  --version ", "  -h, --help ", "  serve ", "  join ", "  keygen ", "  selftest "] {
            #expect(help.contains("\n" + line), "general help lacks \(line)")
        }
        #expect(help.contains("See 'aeschat help <command>' for detailed help."))
        #expect(
            help.hasSuffix(
                """
                EXIT CODES:
                  0                       Success.
                  1                       Unexpected failure.
                  64                      Usage error: the command line was wrong.
                  65                      Bad data or key file.
                  69                      Relay unreachable or registration refused.
                  74                      I/O error.
                  77                      The relay's key did not match the pinned one, or was
                                          not confirmed.
                  130                     Interrupted.
                """
            )
        )
    }

    @Test func usage_isOneLine_forEveryMode() {
        #expect(HelpText.usage(for: nil) == "aeschat <command> [<options>]")
        #expect(
            HelpText.usage(for: .serve)
                == "aeschat serve [--host <addr>] [--port <n>] [--relay-key <file>] [--previous-relay-key <file>] "
                + "[--show-key] [--max-pending-output <bytes>] [--max-frame-size <bytes>] "
                + "[--handshake-timeout <secs>] [--handshake-rate <n>] [--handshake-burst <n>] [--max-connections <n>] "
                + "[--max-connections-per-address <n>] "
                + "[--message-rate <n>] [--message-burst <n>] [--idle-timeout <secs>] [--byte-rate <bytes>] "
                + "[--byte-burst <bytes>] [--frame-grace <secs>] [--min-frame-rate <bytes>] "
                + "[--frame-budget <bytes>] [--frame-budget-per-address <bytes>] [--cluster <url>] "
                + "[--cluster-prefix <name>] [--cluster-dead-after <secs>]")
        #expect(
            HelpText.usage(for: .join)
                == "aeschat join [--name <name>] [--inbox <dir>] [--room <room>] [--host <addr>] [--port <n>] "
                + "[--relay-key <key>] [--accept-new-relay-key] [--key <file>] [--json] [--identity <file>] "
                + "[--accept-files <all|ask|none>] [--max-file-size <bytes>] [--bell <when>] [--hold <all|changed>] "
                + "[--color <when>] [--log <file>] [--config <file>] [--no-config]"
        )
        #expect(HelpText.usage(for: .keygen) == "aeschat keygen [--out <file>] [--identity <file>]")
    }
}
