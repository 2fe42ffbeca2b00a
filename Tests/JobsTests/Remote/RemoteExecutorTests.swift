import Foundation
import HarrowTestSupport
import Store
import Synchronization
import Testing

@testable import Jobs

/// Collects a run's output per stream, in arrival order.
final class OutputCollector: Sendable {
    private let streams = Mutex<(stdout: [UInt8], stderr: [UInt8])>(([], []))

    func append(_ output: RemoteOutput) {
        streams.withLock {
            switch output {
            case .stdout(let bytes): $0.stdout += bytes
            case .stderr(let bytes): $0.stderr += bytes
            }
        }
    }

    var stdout: String { String(decoding: streams.withLock { $0.stdout }, as: UTF8.self) }
    var stderr: String { String(decoding: streams.withLock { $0.stderr }, as: UTF8.self) }
}

/// A client key pair and an sshd that accepts it.
struct SSHFixture {
    let daemon: SSHDaemon
    let privateKey: String
    let target: SSHTarget
    let knownHosts: KnownHosts

    static func start(authorize: Bool = true) async throws -> SSHFixture {
        let (privateKey, publicKey) = try generateKey()
        let authorized = authorize ? publicKey : try generateKey().publicKey
        let daemon = try await SSHDaemon.start(authorizedKeys: [authorized])
        return SSHFixture(
            daemon: daemon, privateKey: privateKey,
            target: try SSHTarget("ssh://\(daemon.user)@127.0.0.1:\(daemon.port)"),
            knownHosts: try KnownHosts(daemon.knownHostsLine))
    }

    func executor(knownHosts: KnownHosts? = nil, options: RemoteExecutor.Options = .init()) -> RemoteExecutor {
        RemoteExecutor(target: target, privateKey: privateKey, knownHosts: knownHosts ?? self.knownHosts, options: options)
    }

    static func generateKey(type: String = "ed25519") throws -> (privateKey: String, publicKey: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("key-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("id")
        try shell("/usr/bin/ssh-keygen", ["-q", "-t", type, "-N", "", "-f", file.path])
        return (
            try String(contentsOf: file, encoding: .utf8),
            try String(contentsOf: file.appendingPathExtension("pub"), encoding: .utf8)
        )
    }

    @discardableResult
    static func shell(_ path: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

func run(
    _ executor: RemoteExecutor, _ script: String, environment: [String: String] = [:], workingDirectory: String? = nil
) async throws -> (exit: RemoteExit, stdout: String, stderr: String) {
    let collector = OutputCollector()
    let exit = try await executor.run(script: script, environment: environment, workingDirectory: workingDirectory) {
        collector.append($0)
    }
    return (exit, collector.stdout, collector.stderr)
}

func processCount(matching marker: String) throws -> Int {
    try SSHFixture.shell("/usr/bin/pgrep", ["-f", marker]).split(separator: "\n").count
}

@Suite(.serialized) struct RemoteExecutorTests {
    @Test func separatesStreamsAndReturnsExitStatus() async throws {
        let fixture = try await SSHFixture.start()
        let result = try await run(fixture.executor(), "echo hello; echo oops >&2; exit 3")
        #expect(result.stdout == "hello\n")
        #expect(result.stderr == "oops\n")
        #expect(result.exit == .exited(3))
    }

    @Test func environmentValuesAreNeverEvaluated() async throws {
        let fixture = try await SSHFixture.start()
        let marker = "/tmp/x-\(UUID().uuidString)"
        let value = "$(touch \(marker))`touch \(marker)` 'q' \"d\" \\ ; newline:\nend"
        let result = try await run(fixture.executor(), #"printf '%s' "$V""#, environment: ["V": value])
        #expect(result.stdout == value)
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(result.exit == .exited(0))
    }

    @Test func environmentIsExactlyTheGivenNames() async throws {
        let fixture = try await SSHFixture.start()
        let given = ["V": "1", "OTHER_NAME": "two words", "EMPTY": ""]
        let result = try await run(fixture.executor(), "env -0", environment: given)
        let names = Set(result.stdout.split(separator: "\0").map { String($0.prefix(while: { $0 != "=" })) })
        // bash, which runs the script, sets these three itself.
        let addedByBash: Set = ["PWD", "SHLVL", "_"]
        #expect(names.subtracting(addedByBash) == Set(given.keys), "\(names)")
        for leaked in ["SSH_CONNECTION", "SSH_CLIENT", "HOME", "USER", "PATH", "LOGNAME", "SHELL", "MAIL"] {
            #expect(!names.contains(leaked))
        }
    }

    @Test func theLoginHomeAndTheWorkingDirectoryAreNamedOnlyWhenAskedFor() async throws {
        let fixture = try await SSHFixture.start()
        let collector = OutputCollector()
        let exit = try await fixture.executor().run(
            script: #"printf '%s|%s|%s' "$HOME" "$WHERE" "$PWD""#, environment: ["V": "1"], homeVariable: "HOME",
            workingDirectoryVariable: "WHERE"
        ) { collector.append($0) }
        #expect(exit == .exited(0))
        let fields = collector.stdout.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        #expect(fields.count == 3)
        #expect(fields.first == NSHomeDirectory() || fields.first == FileManager.default.homeDirectoryForCurrentUser.path)
        #expect(fields.count == 3 && fields[1] == fields[2] && fields[1].hasPrefix("/"))

        let given = OutputCollector()
        _ = try await fixture.executor().run(script: #"printf '%s' "$HOME""#, environment: ["HOME": "/elsewhere"], homeVariable: "HOME") {
            given.append($0)
        }
        #expect(given.stdout == "/elsewhere")
        await #expect(throws: RemoteExecutionError.self) {
            try await fixture.executor().run(script: "true", homeVariable: "NOT-A-NAME") { _ in }
        }
    }

    @Test func workingDirectoryIsCreatedAndUsed() async throws {
        let fixture = try await SSHFixture.start()
        let workspace = "/tmp/harrow-ws-\(UUID().uuidString)/checkout"
        defer { try? FileManager.default.removeItem(atPath: (workspace as NSString).deletingLastPathComponent) }
        let result = try await run(fixture.executor(), "pwd", workingDirectory: workspace)
        #expect(result.stdout == "\(workspace)\n")
        let fallback = try await run(fixture.executor(), "pwd; ls -a")
        #expect(fallback.stdout.hasSuffix("/workspace\n.\n..\n"))
    }

    @Test func interpreterFollowsTheShebangLine() async throws {
        let fixture = try await SSHFixture.start()
        let sh = try await run(fixture.executor(), "#!/bin/sh\necho \"bash=${BASH_VERSION:-none}\"\n")
        #expect(sh.stdout == "bash=none\n")
        // Without one: bash with -e and pipefail, so a failing pipeline stops the script.
        let bash = try await run(fixture.executor(), "echo \"bash=${BASH_VERSION:+yes}\"\nfalse | true\necho after\n")
        #expect(bash.stdout == "bash=yes\n")
        #expect(bash.exit == .exited(1))
    }

    @Test func pinnedKeyMismatchIsRefusedBeforeAuthentication() async throws {
        let fixture = try await SSHFixture.start()
        let otherKey = try SSHFixture.generateKey().publicKey.split(separator: " ")
        let pinned = try KnownHosts("[127.0.0.1]:\(fixture.daemon.port) \(otherKey[0]) \(otherKey[1])")
        let presented = KnownHosts.fingerprint(
            of: Array(Data(base64Encoded: String(fixture.daemon.hostKeyLine.split(separator: " ")[1]))!))
        await #expect {
            try await run(fixture.executor(knownHosts: pinned), "touch /tmp/should-not-run")
        } throws: { error in
            guard let error = error as? RemoteExecutionError else { return false }
            return error.code == .hostKeyRejected && error.message.contains("does not match")
                && error.message.contains(presented)
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(!fixture.daemon.log.contains("publickey"), "sshd saw an authentication attempt")
    }

    @Test func unknownHostIsRefused() async throws {
        let fixture = try await SSHFixture.start()
        await #expect {
            try await run(fixture.executor(knownHosts: .wellKnown), "true")
        } throws: { error in
            guard let error = error as? RemoteExecutionError else { return false }
            return error.code == .hostKeyRejected && error.message.contains("not in known_hosts")
                && error.message.contains(fixture.daemon.hostKeyLine)
        }
    }

    @Test func closedPortIsUnreachableQuickly() async throws {
        let fixture = try await SSHFixture.start()
        let port = fixture.daemon.port
        fixture.daemon.stop()
        let executor = RemoteExecutor(
            target: try SSHTarget("ssh://root@127.0.0.1:\(port)"), privateKey: fixture.privateKey,
            knownHosts: fixture.knownHosts)
        let started = ContinuousClock.now
        await #expect {
            try await run(executor, "true")
        } throws: { error in
            (error as? RemoteExecutionError)?.code == .unreachable
        }
        #expect(ContinuousClock.now - started < .seconds(2))
    }

    @Test func connectTimeoutIsUnreachable() async throws {
        let fixture = try await SSHFixture.start()
        // TEST-NET-1 (RFC 5737): nothing answers there.
        let executor = RemoteExecutor(
            target: try SSHTarget("ssh://root@192.0.2.1"), privateKey: fixture.privateKey, knownHosts: fixture.knownHosts,
            options: .init(connectTimeout: .seconds(1)))
        let started = ContinuousClock.now
        await #expect {
            try await run(executor, "true")
        } throws: { error in
            (error as? RemoteExecutionError)?.code == .unreachable
        }
        #expect(ContinuousClock.now - started < .seconds(3))
    }

    @Test func theRunDirectoryIsRemovedAfterwards() async throws {
        let fixture = try await SSHFixture.start()
        let result = try await run(fixture.executor(), #"printf '%s' "${0%/*}""#)
        #expect(result.stdout.hasPrefix("/tmp/"))
        #expect(!FileManager.default.fileExists(atPath: result.stdout))
    }

    @Test func wrongKeyFailsAuthentication() async throws {
        let fixture = try await SSHFixture.start(authorize: false)
        await #expect {
            try await run(fixture.executor(), "true")
        } throws: { error in
            guard let error = error as? RemoteExecutionError else { return false }
            return error.code == .authenticationFailed && !error.message.contains("PRIVATE KEY")
        }
    }

    // libssh2 1.10 (Debian 12) signs RSA user authentication with ssh-rsa (SHA-1), which OpenSSH 8.8
    // and later refuse by default; libssh2 1.11 uses rsa-sha2-256/512. Either it works, or it says why.
    @Test func rsaKeysAuthenticateOrExplainWhyNot() async throws {
        let (privateKey, publicKey) = try SSHFixture.generateKey(type: "rsa")
        let daemon = try await SSHDaemon.start(authorizedKeys: [publicKey])
        let executor = RemoteExecutor(
            target: try SSHTarget("ssh://\(daemon.user)@127.0.0.1:\(daemon.port)"), privateKey: privateKey,
            knownHosts: try KnownHosts(daemon.knownHostsLine))
        do {
            #expect(try await run(executor, "echo rsa").stdout == "rsa\n")
        } catch let error as RemoteExecutionError {
            #expect(error.code == .authenticationFailed)
            #expect(error.message.contains("ssh-rsa (SHA-1)"), "\(error)")
            #expect(daemon.log.contains("signature algorithm ssh-rsa not in PubkeyAcceptedAlgorithms"))
        }
    }

    @Test func terminateKillsTheWholeProcessGroup() async throws {
        let fixture = try await SSHFixture.start()
        let executor = fixture.executor()
        let marker = "300.\(Int.random(in: 100_000...999_999))"
        let running = Task { try await run(executor, "sleep \(marker) & sleep \(marker); echo unreachable") }
        try await waitUntil(timeout: .seconds(10)) { try processCount(matching: "sleep \(marker)") == 2 }

        let started = ContinuousClock.now
        executor.terminate(signal: .term)
        let result = try await running.value
        #expect(result.exit == .signaled("TERM"))
        #expect(ContinuousClock.now - started < .seconds(5))
        try await waitUntil(timeout: .seconds(5)) { try processCount(matching: "sleep \(marker)") == 0 }
    }

    @Test func taskCancellationTerminatesAndThrows() async throws {
        let fixture = try await SSHFixture.start()
        let marker = "300.\(Int.random(in: 100_000...999_999))"
        let executor = fixture.executor(options: .init(cancellationGracePeriod: .seconds(2)))
        let running = Task { try await run(executor, "trap '' TERM; sleep \(marker) & sleep \(marker)") }
        try await waitUntil(timeout: .seconds(10)) { try processCount(matching: "sleep \(marker)") == 2 }
        let started = ContinuousClock.now
        running.cancel()
        await #expect(throws: CancellationError.self) { try await running.value }
        // The script ignores TERM (and so do its children), so only KILL after the grace period ends it.
        #expect(ContinuousClock.now - started >= .seconds(2))
        #expect(ContinuousClock.now - started < .seconds(5))
        try await waitUntil(timeout: .seconds(5)) { try processCount(matching: "sleep \(marker)") == 0 }
    }

    @Test func largeOutputArrivesCompleteAndInOrder() async throws {
        let fixture = try await SSHFixture.start()
        let lines = 2_700_000
        let result = try await run(
            fixture.executor(),
            "( for i in $(seq 1 2000); do echo \"err $i\" >&2; done ) & seq 1 \(lines); wait")
        #expect(result.exit == .exited(0))
        #expect(result.stdout.utf8.count > 20_000_000)
        var expected = ""
        expected.reserveCapacity(result.stdout.utf8.count)
        for i in 1...lines { expected += "\(i)\n" }
        #expect(result.stdout == expected)
        #expect(result.stderr == (1...2000).map { "err \($0)\n" }.joined())
    }

    @Test func invalidEnvironmentNamesAreRejected() async throws {
        let fixture = try await SSHFixture.start()
        await #expect {
            try await run(fixture.executor(), "true", environment: ["BAD-NAME": "x"])
        } throws: { error in
            (error as? RemoteExecutionError)?.code == .invalidRequest
        }
    }
}

func waitUntil(timeout: Duration, _ condition: () throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !(try condition()) {
        guard ContinuousClock.now < deadline else {
            Issue.record("condition not met within \(timeout)")
            return
        }
        try await Task.sleep(for: .milliseconds(100))
    }
}
