# bash completion for aeschat: commands, each mode's options, and files or folders for the options that name one.
# Installed by scripts/install and scripts/package; Tests/AESChatCLITests/DocumentationTests.swift checks that the
# option lists below are exactly the parser's tables (Sources/AESChatCLI/OptionTables.swift).

_aeschat_serve_options="--host --port --relay-key --previous-relay-key --show-key --max-pending-output
    --max-frame-size --handshake-timeout --handshake-rate --handshake-burst --max-connections
    --max-connections-per-address --message-rate --message-burst --idle-timeout --byte-rate --byte-burst
    --frame-grace --min-frame-rate --frame-budget --frame-budget-per-address --cluster --cluster-prefix
    --cluster-dead-after"
_aeschat_join_options="--name --inbox --room --host --port --relay-key --accept-new-relay-key --key --json
    --identity --accept-files --max-file-size --bell --hold --color --log --config --no-config"
_aeschat_keygen_options="--out --identity"
_aeschat_selftest_options="--json --inbox"

_aeschat() {
    local current previous mode word index
    current="${COMP_WORDS[COMP_CWORD]}"
    previous="${COMP_WORDS[COMP_CWORD - 1]}"
    mode=""
    for ((index = 1; index < COMP_CWORD; index++)); do
        word="${COMP_WORDS[index]}"
        case "$word" in
        serve | join | keygen | selftest | help)
            mode="$word"
            break
            ;;
        esac
    done
    case "$mode" in
    "")
        COMPREPLY=($(compgen -W "serve join keygen selftest help --help --version" -- "$current"))
        return
        ;;
    help)
        COMPREPLY=($(compgen -W "serve join keygen selftest" -- "$current"))
        return
        ;;
    esac
    case "$mode:$previous" in
    join:--inbox | selftest:--inbox)
        COMPREPLY=($(compgen -d -- "$current"))
        return
        ;;
    join:--bell)
        COMPREPLY=($(compgen -W "off mentions all" -- "$current"))
        return
        ;;
    join:--color)
        COMPREPLY=($(compgen -W "auto always never" -- "$current"))
        return
        ;;
    join:--hold)
        COMPREPLY=($(compgen -W "all changed" -- "$current"))
        return
        ;;
    join:--key | join:--identity | join:--log | join:--config | keygen:--out | keygen:--identity | serve:--relay-key | serve:--previous-relay-key)
        COMPREPLY=($(compgen -f -- "$current"))
        return
        ;;
    *:--host)
        COMPREPLY=($(compgen -A hostname -- "$current"))
        return
        ;;
    join:--accept-files)
        COMPREPLY=($(compgen -W "all ask none" -- "$current"))
        return
        ;;
    esac
    # Any other option that takes a value: nothing to offer but what is typed.
    case " $_aeschat_serve_options $_aeschat_join_options $_aeschat_keygen_options $_aeschat_selftest_options " in
    *" $previous "*)
        case "$previous" in
        --show-key | --accept-new-relay-key | --json | --no-config) ;;
        *) return ;;
        esac
        ;;
    esac
    local options="_aeschat_${mode}_options"
    COMPREPLY=($(compgen -W "${!options} --help" -- "$current"))
}
complete -F _aeschat aeschat
