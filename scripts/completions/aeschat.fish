# fish completion for aeschat: commands, each mode's options, and files or folders for the options that name one.
# Installed by scripts/install and scripts/package; Tests/AESChatCLITests/DocumentationTests.swift checks that the
# options below are exactly the parser's tables (Sources/AESChatCLI/OptionTables.swift), mode by mode.

complete -c aeschat -f
complete -c aeschat -n __fish_use_subcommand -a serve -d 'Run the relay that members connect to'
complete -c aeschat -n __fish_use_subcommand -a join -d 'Join a room on a relay and chat'
complete -c aeschat -n __fish_use_subcommand -a keygen -d 'Generate a random room key or an identity key'
complete -c aeschat -n __fish_use_subcommand -a selftest -d 'Check this installation and print a short report'
complete -c aeschat -n __fish_use_subcommand -a help -d 'Show help for a command'
complete -c aeschat -n __fish_use_subcommand -l version -d 'Print the version'
complete -c aeschat -l help -s h -d 'Show help'
complete -c aeschat -n '__fish_seen_subcommand_from help' -a 'serve join keygen selftest'

# serve
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l host -x -a '(__fish_print_hostnames)' -d 'Address to listen on'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l port -x -d 'TCP port'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l relay-key -r -F -d 'The relay key file'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l previous-relay-key -r -F -d 'The previous relay key file'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l show-key -d 'Print the key fingerprint and join line'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l max-pending-output -x -d 'Output queued per member (bytes)'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l max-frame-size -x -d 'Largest frame (bytes)'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l handshake-timeout -x -d 'Seconds to say hello'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l handshake-rate -x -d 'Handshakes per second per address'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l handshake-burst -x -d 'Handshakes at once per address'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l max-connections -x -d 'Connections open at once'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l max-connections-per-address -x -d 'Connections per address'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l message-rate -x -d 'Frames per second per member'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l message-burst -x -d 'Frames at once per member'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l idle-timeout -x -d 'Seconds of silence before a ping'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l byte-rate -x -d 'Payload bytes per second per member'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l byte-burst -x -d 'Payload bytes at once per member'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l frame-grace -x -d 'Seconds a frame has to complete'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l min-frame-rate -x -d 'Slowest frame (bytes per second)'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l frame-budget -x -d 'Memory for large frames (bytes)'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l frame-budget-per-address -x -d 'The same per address'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l cluster -x -d 'Share rooms through this Redis'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l cluster-prefix -x -d 'Prefix of the cluster keys in Redis'
complete -c aeschat -n '__fish_seen_subcommand_from serve' -l cluster-dead-after -x -d 'Seconds after which a silent relay is dead'

# join
complete -c aeschat -n '__fish_seen_subcommand_from join' -l name -x -d 'Your member name'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l inbox -x -a '(__fish_complete_directories)' -d 'Inbox folder for received files'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l room -x -d 'Room to join'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l host -x -a '(__fish_print_hostnames)' -d 'Relay address'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l port -x -d 'Relay TCP port'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l relay-key -x -d "The relay's key or fingerprint"
complete -c aeschat -n '__fish_seen_subcommand_from join' -l accept-new-relay-key -d "Pin a new relay's key without asking"
complete -c aeschat -n '__fish_seen_subcommand_from join' -l key -r -F -d 'Room key file'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l json -d 'JSON output'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l identity -r -F -d 'Your identity key file'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l accept-files -x -a 'all ask none' -d 'Take, ask about or decline offered files'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l max-file-size -x -d 'Decline larger files (bytes)'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l bell -x -a 'off mentions all' -d 'When the bell rings'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l hold -x -a 'all changed' -d 'What a changed key holds'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l color -x -a 'auto always never' -d 'Colour in the terminal'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l log -r -F -d 'Append the session to this file'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l config -r -F -d 'Read settings from this file'
complete -c aeschat -n '__fish_seen_subcommand_from join' -l no-config -d 'Read no configuration file'

# keygen
complete -c aeschat -n '__fish_seen_subcommand_from keygen' -l out -r -F -d 'Write the room key to this new file'
complete -c aeschat -n '__fish_seen_subcommand_from keygen' -l identity -r -F -d 'Make a new identity key file'

# selftest
complete -c aeschat -n '__fish_seen_subcommand_from selftest' -l json -d 'JSON output'
complete -c aeschat -n '__fish_seen_subcommand_from selftest' -l inbox -x -a '(__fish_complete_directories)' -d 'Also check this inbox folder'
