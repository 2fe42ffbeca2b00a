import Foundation
import HarrowTestSupport
import Logging
import NIOCore
import Testing

@testable import Jobs

#if canImport(Glibc)
    import Glibc
#endif

/// What a script can and cannot reach under each sandbox mode, tried from inside a script run
/// the way the runner runs one: wrapped by the sandbox, as the account it picks, in a
/// workspace under a workspace root next to other workspaces, the mirrors and hidden data.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ScriptSandboxTests {
    /// A worker host in miniature under a temporary directory.
    struct Host {
        let root: URL
        var workspaces: URL { root.appendingPathComponent("workspaces") }
        var mine: URL { workspaces.appendingPathComponent("mine") }
        var other: URL { workspaces.appendingPathComponent("other") }
        var mirrors: URL { root.appendingPathComponent("mirrors") }
        var data: URL { root.appendingPathComponent("data") }
        /// A file in the host's /tmp, which a private /tmp does not show.
        let hostTemporaryFile: URL

        init() throws {
            root = URL(fileURLWithPath: "/tmp/harrow-sandbox-\(UUID().uuidString.lowercased())")
            hostTemporaryFile = URL(fileURLWithPath: "/tmp/harrow-sandbox-marker-\(UUID().uuidString.lowercased())")
            let files = FileManager.default
            for directory in [root, workspaces, mine, other, mirrors.appendingPathComponent("repo.git"), data] {
                try files.createDirectory(at: directory, withIntermediateDirectories: true)
            }
            _ = chmod(root.path, 0o755)
            _ = chmod(workspaces.path, 0o711)
            _ = chmod(mirrors.path, 0o700)
            _ = chmod(data.path, 0o700)
            try Data("other's secret\n".utf8).write(to: other.appendingPathComponent("secret.txt"))
            try Data("ref: refs/heads/main\n".utf8).write(to: mirrors.appendingPathComponent("repo.git/HEAD"))
            try Data("data secret\n".utf8).write(to: data.appendingPathComponent("secret.txt"))
            try Data("marker\n".utf8).write(to: hostTemporaryFile)
        }

        /// Gives both workspaces to the account scripts run as, as the runner does.
        func handOver(to account: ScriptSandbox.Account) {
            for path in [mine.path, other.path, other.appendingPathComponent("secret.txt").path] {
                _ = chown(path, account.uid, account.gid)
            }
            _ = chmod(mine.path, 0o700)
            _ = chmod(other.path, 0o700)
        }

        func remove() {
            try? FileManager.default.removeItem(at: root)
            try? FileManager.default.removeItem(at: hostTemporaryFile)
        }

        func sandbox(_ mode: ScriptSandbox.Mode) async throws -> ScriptSandbox {
            try await ScriptSandbox.prepare(
                mode: mode, runAs: "nobody", hiddenPaths: [workspaces.path, mirrors.path, data.path], workspaceRoot: workspaces,
                logger: Logger(label: "test.sandbox"))
        }
    }

    /// Runs the probes inside `sandbox` in the host's own workspace; `name=yes|no` per probe.
    static func probe(_ host: Host, _ sandbox: ScriptSandbox, marker: String) async throws -> [String: String] {
        let script = """
            probe() { if eval "$2" >/dev/null 2>&1; then echo "$1=yes"; else echo "$1=no"; fi; }
            probe other_workspace 'cat "$OTHER/secret.txt"'
            probe mirrors 'test -e "$MIRRORS/repo.git/HEAD"'
            probe data 'cat "$DATA/secret.txt"'
            probe worker_environ 'cat "/proc/$WORKER_PID/environ"'
            probe worker_visible 'test -d "/proc/$WORKER_PID"'
            probe host_tmp 'test -e "$HOST_TMP"'
            probe write_etc 'touch /etc/harrow-sandbox-probe'
            probe write_workspace 'touch "$PWD/written" && test -f "$PWD/written"'
            probe as_root 'test "$(id -u)" = 0'
            echo "processes=$(ls /proc | grep -c '^[0-9]')"
            setsid sleep \(marker) > /dev/null 2>&1 < /dev/null &
            """
        let environment = [
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OTHER": host.other.path, "MIRRORS": host.mirrors.path, "DATA": host.data.path,
            "WORKER_PID": "\(getpid())", "HOST_TMP": host.hostTemporaryFile.path,
        ]
        let process = try await LocalProcess.launch(
            sandbox.wrap(["/bin/bash", "--noprofile", "--norc", "-c", script], workspace: host.mine.path), environment: environment,
            directory: host.mine.path)
        let output = OutputText()
        let termination = await process.readOutput { stream, buffer in
            if stream == .stdout { await output.append(String(buffer: buffer)) }
        }
        #expect(termination == .exited(0))
        var answers: [String: String] = [:]
        for line in await output.text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { answers[parts[0]] = parts[1] }
        }
        return answers
    }

    /// Whether a process whose command line contains `marker` still runs; kills it if so.
    static func survivor(_ marker: String) throws -> Bool {
        let found = (try? TestCommand.run("/usr/bin/pgrep", ["-f", "sleep \(marker)"])) ?? ""
        if !found.isEmpty { _ = try? TestCommand.run("/usr/bin/pkill", ["-f", "sleep \(marker)"]) }
        return !found.isEmpty
    }

    static func marker() -> String { "\(Int.random(in: 5000...9000)).\(Int.random(in: 100...999))" }

    /// bubblewrap: no other workspace, no mirrors, no hidden data, no worker process (its own PID
    /// namespace), a private /tmp, a read-only host; the workspace writable; nothing it starts,
    /// even in a new session, outlives it.
    @Test func bubblewrapShowsTheScriptOnlyItsWorkspace() async throws {
        let host = try Host()
        defer { host.remove() }
        let sandbox = try await host.sandbox(.bwrap)
        #expect(sandbox.mode == .bwrap)
        host.handOver(to: sandbox.account)
        // Readable by anyone on the host: only the sandbox keeps them from the script.
        for directory in [host.mirrors, host.data] { _ = chmod(directory.path, 0o755) }
        let marker = Self.marker()
        let answers = try await Self.probe(host, sandbox, marker: marker)
        #expect(answers["other_workspace"] == "no", "\(answers)")
        #expect(answers["mirrors"] == "no")
        #expect(answers["data"] == "no")
        #expect(answers["worker_environ"] == "no")
        #expect(answers["worker_visible"] == "no")
        #expect(answers["host_tmp"] == "no")
        #expect(answers["write_etc"] == "no")
        #expect(answers["write_workspace"] == "yes")
        #expect((Int(answers["processes"] ?? "") ?? 99) < 10, "its own PID namespace")
        if getuid() == 0 { #expect(answers["as_root"] == "no", "a root worker drops to nobody") }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try !Self.survivor(marker), "the PID namespace ends with the script")
    }

    /// No sandbox: the script still runs as another account when the worker is root, so it can
    /// read neither the worker's environment nor the mirrors and data the worker keeps to itself,
    /// nor write to the host; the workspace is writable. (What `none` cannot stop, such as a
    /// process that leaves the group, is said in the README.)
    @Test func withoutASandboxARootWorkerStillDropsItsPrivileges() async throws {
        let host = try Host()
        defer { host.remove() }
        let sandbox = try await host.sandbox(.none)
        #expect(sandbox.mode == .none)
        host.handOver(to: sandbox.account)
        let marker = Self.marker()
        let answers = try await Self.probe(host, sandbox, marker: marker)
        defer { _ = try? Self.survivor(marker) }
        #expect(answers["write_workspace"] == "yes", "\(answers)")
        #expect(answers["host_tmp"] == "yes", "no private /tmp without a sandbox")
        guard getuid() == 0 else { return }
        #expect(answers["as_root"] == "no")
        #expect(answers["worker_environ"] == "no")
        #expect(answers["mirrors"] == "no")
        #expect(answers["data"] == "no")
        #expect(answers["write_etc"] == "no")
    }

    private actor OutputText {
        var text = ""
        func append(_ more: String) { text += more }
    }
}
