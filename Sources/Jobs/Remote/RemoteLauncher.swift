/// The fixed programs a run sends to the remote host. No user value is ever part of a command
/// line: the script, environment and workspace travel as files in a private directory made by
/// `mktemp -d`, whose path (checked by ``isSafeDirectory(_:)``) is the only thing quoted into commands.
enum RemoteLauncher {
    static let makeDirectoryCommand = "umask 077; mktemp -d"

    /// The launcher, uploaded as `<dir>/run` and run with bash: `run start` execs the script,
    /// `run signal NAME` signals its process group.
    static let program = #"""
        # Harrow remote run launcher. Fixed text: user values are read from files next to it.
        set -u
        dir=${0%/*}
        case "$1" in
        start)
            IFS= read -r -d '' workspace < "$dir/cwd"
            mkdir -p -- "$workspace" && cd -- "$workspace" || exit 125
            # The names (possibly empty) that get the login's home and the working directory:
            # places only this host knows. The home comes first so the given environment can
            # override it; the working directory last, as it is the true one.
            { IFS= read -r -d '' home_name; IFS= read -r -d '' workspace_name; } < "$dir/places"
            entries=()
            if [ -n "$home_name" ]; then entries+=("$home_name=${HOME:-/}"); fi
            # NUL-separated NAME=VALUE entries, passed to env as arguments: never evaluated.
            while IFS= read -r -d '' entry; do entries+=("$entry"); done < "$dir/env"
            if [ -n "$workspace_name" ]; then entries+=("$workspace_name=$PWD"); fi
            if [ "$(head -c 2 -- "$dir/script")" = '#!' ]; then
                command=("$dir/script")
            else
                command=(/bin/bash --noprofile --norc -eo pipefail "$dir/script")
            fi
            # The script must lead its own process group so one signal reaches all it starts, and
            # keep this pid so that its exit status (or signal) is the channel's. sshd makes every
            # session a new session already; setsid(1) would fork in that case, so call it only
            # when this process does not lead its group (then it calls setsid() in place).
            printf '%s' "$$" > "$dir/pid"
            if [ "$(ps -o pgid= -p "$$" | tr -d ' ')" = "$$" ]; then
                exec env -i "${entries[@]}" "${command[@]}" < /dev/null
            else
                exec setsid env -i "${entries[@]}" "${command[@]}" < /dev/null
            fi
            ;;
        signal)
            # The script may be a moment from writing its pid.
            for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
                [ -s "$dir/pid" ] && break
                sleep 0.1
            done
            pid=$(cat "$dir/pid" 2>/dev/null) || exit 0
            kill -s "$2" -- "-$pid" 2>/dev/null || kill -s "$2" -- "$pid" 2>/dev/null
            exit 0
            ;;
        esac
        exit 2

        """#

    static func startCommand(directory: String) -> String {
        "/bin/bash '\(directory)/run' start"
    }

    static func signalCommand(directory: String, signal: RemoteSignal) -> String {
        "/bin/bash '\(directory)/run' signal \(signal.rawValue)"
    }

    static func removeCommand(directory: String) -> String {
        "rm -rf -- '\(directory)'"
    }

    /// `mktemp -d` output we are willing to quote into a command: an absolute path of safe characters.
    static func isSafeDirectory(_ path: String) -> Bool {
        path.hasPrefix("/") && path.count > 1 && !path.contains("..")
            && path.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
                    UInt8(ascii: "-"), UInt8(ascii: "/"):
                    true
                default:
                    false
                }
            }
    }
}
