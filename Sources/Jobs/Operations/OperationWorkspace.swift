import Foundation
import NIOPosix
import Store

#if canImport(Glibc)
    import Glibc
#endif

/// An operation's directory on the worker host, `<root>/<operation id>`: the script's working
/// directory, owned by the account scripts run as.
///
///     <root>/<operation id>/           HARROW_WORKSPACE, the working directory
///         repositories/<name>/         the project's repositories, checked out
///         home/                        HOME; home/.ssh holds the environment's ssh secrets
///         .harrow/script               the task's script
struct OperationWorkspace: Sendable {
    let directory: URL
    let account: ScriptSandbox.Account

    var path: String { directory.path }
    var home: URL { directory.appendingPathComponent("home") }
    var repositories: URL { directory.appendingPathComponent("repositories") }
    var script: URL { directory.appendingPathComponent(".harrow/script") }
    /// `home/.ssh/config`, when the environment has ssh secrets or known hosts.
    var sshConfig: URL? {
        let config = home.appendingPathComponent(".ssh/config")
        return FileManager.default.fileExists(atPath: config.path) ? config : nil
    }

    /// Creates the workspace of `operation` under `root`, empty, with the script and the ssh
    /// secrets in place, still the worker's own: ``handOver()`` gives it to the script's account
    /// once the checkouts are in. A directory left by an earlier delivery is replaced.
    static func create(root: URL, operation: UUID, plan: RunPlan, sandbox: ScriptSandbox) async throws -> OperationWorkspace {
        let workspace = OperationWorkspace(
            directory: root.appendingPathComponent(operation.uuidString.lowercased()), account: sandbox.account)
        let files = FileManager.default
        try files.createDirectory(at: root, withIntermediateDirectories: true)
        // The root is the worker's: other accounts may pass through it, not list it.
        _ = chmod(root.path, 0o711)
        if files.fileExists(atPath: workspace.path) { try await workspace.remove(using: sandbox) }
        for directory in [workspace.directory, workspace.home, workspace.repositories, workspace.script.deletingLastPathComponent()] {
            try files.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        try write(plan.script, to: workspace.script, mode: 0o700)
        if !plan.sshKeys.isEmpty || !plan.environment.knownHosts.isEmpty {
            let ssh = workspace.home.appendingPathComponent(".ssh")
            try files.createDirectory(at: ssh, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            // Absolute paths: OpenSSH expands `~` to the account's home in the user database, not
            // to $HOME, so `~/.ssh` would name another directory (or none, for nobody).
            var config = "Host *\n    StrictHostKeyChecking yes\n    UserKnownHostsFile \(ssh.path)/known_hosts\n    IdentitiesOnly yes\n"
            for (index, key) in plan.sshKeys.enumerated() {
                let name = "id_harrow_\(index + 1)"
                try write(
                    key.privateKey.hasSuffix("\n") ? key.privateKey : key.privateKey + "\n", to: ssh.appendingPathComponent(name),
                    mode: 0o600)
                try write(key.publicKey + "\n", to: ssh.appendingPathComponent(name + ".pub"), mode: 0o644)
                config += "    IdentityFile \(ssh.path)/\(name)\n"
            }
            try write(config, to: ssh.appendingPathComponent("config"), mode: 0o600)
            try write(plan.environment.knownHosts, to: ssh.appendingPathComponent("known_hosts"), mode: 0o600)
        }
        return workspace
    }

    /// Gives everything in the workspace to the account scripts run as, deepest paths first and
    /// the workspace itself last: until then the account cannot enter it, so no process of its
    /// own (one left by an earlier script, say) can swap a directory for a link while the
    /// worker, maybe root, changes owners by path. Blocks: call it off the event loops.
    func handOver() throws {
        guard account.uid != getuid() || account.gid != getgid() else { return }
        let files = FileManager.default
        var paths = [path]
        if let walker = files.enumerator(atPath: path) {
            while let relative = walker.nextObject() as? String { paths.append(directory.appendingPathComponent(relative).path) }
        }
        for path in paths.reversed() where lchown(path, account.uid, account.gid) != 0 {
            throw ScriptSandbox.SetupError("could not hand \(path) to \(account.name): \(String(cString: strerror(errno)))")
        }
    }

    /// Removes the workspace. What scripts could write is removed by their account (`rm` under
    /// the sandbox's `setpriv`), never by a root worker following paths a script may have
    /// turned into links; the worker then removes the emptied directory from its own root.
    func remove(using sandbox: ScriptSandbox) async {
        guard let setpriv = sandbox.setpriv, account.uid != getuid() else {
            let directory = directory
            try? await NIOThreadPool.singleton.runIfActive { try FileManager.default.removeItem(at: directory) }
            return
        }
        let command = [
            setpriv, "--reuid=\(account.uid)", "--regid=\(account.gid)", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
            "--no-new-privs", "/bin/rm", "-rf", "--one-file-system", "--", path,
        ]
        if let process = try? await LocalProcess.launch(command, environment: ["PATH": "/usr/bin:/bin"], directory: "/") {
            _ = await process.readOutput { _, _ in }
        }
        // rm cannot unlink the workspace from the worker's root; nor could anything replace it.
        guard rmdir(path) != 0, errno != ENOENT else { return }
        // Still there. Never handed over (set-up stopped first): the account could not enter it,
        // so the worker removes it. Handed over and not emptied: left alone, a script's process
        // may still be at work in it.
        var status = stat()
        guard lstat(path, &status) == 0, status.st_uid != account.uid else { return }
        let directory = directory
        try? await NIOThreadPool.singleton.runIfActive { try FileManager.default.removeItem(at: directory) }
    }

    private static func write(_ text: String, to url: URL, mode: Int) throws {
        try Data(text.utf8).write(to: url, options: .withoutOverwriting)
        _ = chmod(url.path, mode_t(mode))
    }
}
