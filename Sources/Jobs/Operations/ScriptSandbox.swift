import Foundation
import Logging
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// How a script is confined on this host, and as whom it runs.
///
/// `bwrap` (bubblewrap) gives the script a read-only view of the host, its workspace
/// read-write, private `/tmp`, `/proc` and `/dev`, a PID namespace of its own (nothing it
/// starts outlives it), and no view of the paths Harrow hides (other workspaces, the worker's
/// data, the repository mirrors). The network is shared: deploys need it. `none` runs the
/// script as a plain process in its own process group. Either way a worker running as root
/// drops to an unprivileged user first.
public struct ScriptSandbox: Sendable, Hashable {
    /// The confinement asked for.
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        /// `bwrap` where it works on this host (probed at start-up), else `none` with a warning.
        case auto
        case bwrap
        case none
    }

    /// An account to run scripts as.
    public struct Account: Sendable, Hashable {
        public var name: String
        public var uid: uid_t
        public var gid: gid_t

        /// The account named `name` in the host's user database.
        public init(named name: String) throws {
            guard let entry = getpwnam(name) else { throw SetupError("no user named \(name) on this host (--run-as)") }
            self.name = name
            uid = entry.pointee.pw_uid
            gid = entry.pointee.pw_gid
        }

        /// The account this process runs as.
        public static var current: Account {
            let uid = getuid()
            let name = getpwuid(uid).map { String(cString: $0.pointee.pw_name) } ?? "\(uid)"
            return (try? Account(named: name)) ?? Account(name: name, uid: uid, gid: getgid())
        }

        init(name: String, uid: uid_t, gid: gid_t) {
            self.name = name
            self.uid = uid
            self.gid = gid
        }
    }

    /// The confinement in force after the probe: `bwrap` or `none`.
    public let mode: Mode
    /// Who scripts run as.
    public let account: Account
    /// Paths scripts must not see (bwrap only): hidden under an empty tmpfs.
    public let hiddenPaths: [String]
    let bubblewrap: String?
    let setpriv: String?

    /// Decides the sandbox for this host: drops to `runAs` when this process is root (unless
    /// it is `root`, which must be asked for by name), and probes bubblewrap for `auto` and
    /// `bwrap`: `bwrap` that does not work is an error, `auto` falls back to `none` with a
    /// warning.
    /// The probe runs in a directory under `workspaceRoot`, so a root the account cannot reach
    /// is found at start-up too.
    public static func prepare(
        mode: Mode, runAs: String, hiddenPaths: [String], workspaceRoot: URL, logger: Logger
    ) async throws -> ScriptSandbox {
        let current = Account.current
        var account = current
        var setpriv: String?
        if current.uid == 0 {
            account = try Account(named: runAs)
            if account.uid != 0 {
                guard let found = Self.executable("setpriv") else {
                    throw SetupError("setpriv (util-linux) is needed to run scripts as \(runAs) but is not installed")
                }
                setpriv = found
            }
        } else if runAs != current.name && runAs != "nobody" {
            logger.warning("--run-as \(runAs) needs a worker running as root: scripts run as \(current.name)")
        }
        var sandbox = ScriptSandbox(mode: .none, account: account, hiddenPaths: hiddenPaths, bubblewrap: nil, setpriv: setpriv)
        if let failure = await sandbox.probe(in: workspaceRoot) {
            throw SetupError("scripts cannot run as \(account.name) in \(workspaceRoot.path): \(failure)")
        }
        guard mode != .none else { return sandbox }
        let bubblewrap = Self.executable("bwrap")
        if let bubblewrap {
            let candidate = ScriptSandbox(
                mode: .bwrap, account: account, hiddenPaths: hiddenPaths, bubblewrap: bubblewrap, setpriv: setpriv)
            if let failure = await candidate.probe(in: workspaceRoot) {
                if mode == .bwrap { throw SetupError("bubblewrap does not work on this host: \(failure)") }
                logger.warning("bubblewrap does not work on this host, scripts run without a sandbox", metadata: ["error": "\(failure)"])
            } else {
                sandbox = candidate
            }
        } else if mode == .bwrap {
            throw SetupError("--sandbox bwrap needs bubblewrap (bwrap), which is not installed")
        } else {
            logger.warning("bubblewrap (bwrap) is not installed: scripts run without a sandbox")
        }
        return sandbox
    }

    init(mode: Mode, account: Account, hiddenPaths: [String], bubblewrap: String?, setpriv: String?) {
        self.mode = mode
        self.account = account
        self.hiddenPaths = hiddenPaths
        self.bubblewrap = bubblewrap
        self.setpriv = setpriv
    }

    /// The command line that runs `command` in `workspace` under this sandbox.
    func wrap(_ command: [String], workspace: String) -> [String] {
        var wrapped: [String] = []
        if let setpriv {
            wrapped += [
                setpriv, "--reuid=\(account.uid)", "--regid=\(account.gid)", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                // No setuid program regains what was dropped (bwrap sets this too; `none` needs it).
                "--no-new-privs",
                "--",
            ]
        }
        if mode == .bwrap, let bubblewrap {
            wrapped += [
                bubblewrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--unshare-pid", "--unshare-ipc",
                "--die-with-parent",
            ]
            for path in hiddenPaths where FileManager.default.fileExists(atPath: path) { wrapped += ["--tmpfs", path] }
            wrapped += ["--bind", workspace, workspace, "--chdir", workspace, "--"]
        }
        return wrapped + command
    }

    /// Runs `true` the way scripts will run, in a fresh directory under `root`; the failure's
    /// text when it does not work.
    func probe(in root: URL) async -> String? {
        let directory = root.appendingPathComponent("probe-\(UUID().uuidString.lowercased())")
        do {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            _ = chmod(root.path, 0o711)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            _ = chown(directory.path, account.uid, account.gid)
            let process = try await LocalProcess.launch(
                wrap(["/bin/sh", "-c", "cd \"$0\"", directory.path], workspace: directory.path), environment: ["PATH": "/usr/bin:/bin"],
                directory: directory.path)
            let errors = ErrorText()
            let termination = await process.readOutput { _, buffer in await errors.append(buffer) }
            if termination == .exited(0) { return nil }
            return "exit status \(termination.exitStatus): \(await errors.text)"
        } catch {
            return "\(error)"
        }
    }

    /// The first executable named `name` in the usual system directories.
    static func executable(_ name: String) -> String? {
        for directory in ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"] {
            let path = "\(directory)/\(name)"
            if access(path, X_OK) == 0 { return path }
        }
        return nil
    }

    /// Why the sandbox or the account cannot be set up.
    public struct SetupError: Error, CustomStringConvertible {
        public var description: String

        init(_ description: String) {
            self.description = description
        }
    }

    /// Collects a probe's output for its error message.
    private actor ErrorText {
        var bytes: [UInt8] = []

        func append(_ buffer: ByteBuffer) {
            if bytes.count < 4096 { bytes.append(contentsOf: buffer.readableBytesView.prefix(4096 - bytes.count)) }
        }

        var text: String { String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
    }
}
