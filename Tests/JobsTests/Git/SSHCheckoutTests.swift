import Foundation
import HarrowTestSupport
import Store
import Synchronization
import Testing

@testable import Jobs

/// Checkouts over SSH from a real OpenSSH server on loopback, with host key pinning.
@Suite(.timeLimit(.minutes(2))) struct SSHCheckoutTests {
    /// A key pair made by `ssh-keygen`; the private key is read into memory and its files deleted.
    struct KeyPair {
        let privateKey: String
        let publicKey: String

        init(in scratch: TemporaryDirectory, name: String) throws {
            let path = scratch.appending(name).path
            try run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path])
            privateKey = try String(contentsOfFile: path, encoding: .utf8)
            publicKey = try String(contentsOfFile: path + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            try FileManager.default.removeItem(atPath: path)
            try FileManager.default.removeItem(atPath: path + ".pub")
        }

        var credentials: GitCredentials { .sshKey(privateKey: privateKey, publicKey: publicKey) }
    }

    struct Fixture {
        let scratch: TemporaryDirectory
        let daemon: SSHDaemon
        let origin: OriginRepository
        let key: KeyPair
        let head: String
        let url: String
        let cache: MirrorCache

        init() async throws {
            scratch = try TemporaryDirectory("git-checkout-ssh")
            key = try KeyPair(in: scratch, name: "client")
            daemon = try await SSHDaemon.start(authorizedKeys: [key.publicKey])
            origin = try OriginRepository(in: scratch.appending("served"), name: "ops")
            head = try origin.commit(["deploy.sh": "echo deploy\n"], message: "deploy", on: "main")
            url = "ssh://\(daemon.user)@127.0.0.1:\(daemon.port)\(origin.bare.path)"
            cache = MirrorCache(root: scratch.appending("mirrors"))
        }

        func tearDown() {
            daemon.stop()
            scratch.remove()
        }
    }

    @Test func checkoutWithThePinnedHostKey() async throws {
        let fixture = try await Fixture()
        defer { fixture.tearDown() }
        let seen = Mutex<[String]>([])
        let pinned = pinnedHostKey(fixture.daemon.hostKeyLine)
        let verifier: HostKeyVerifier = { host, port, keyType, key in
            seen.withLock { $0.append("\(host):\(port) \(keyType)") }
            return pinned(host, port, keyType, key)
        }
        let workspace = fixture.scratch.appending("ws")

        let checkout = try await fixture.cache.checkout(
            url: fixture.url, ref: nil, into: workspace, credentials: fixture.key.credentials, hostKey: verifier)

        #expect(checkout.commit == fixture.head)
        #expect(checkout.ref == "refs/heads/main")
        #expect(try String(contentsOf: workspace.appendingPathComponent("deploy.sh"), encoding: .utf8) == "echo deploy\n")
        #expect(try git("remote", "get-url", "origin", in: workspace) == fixture.url)
        #expect(seen.withLock { $0 } == ["127.0.0.1:\(fixture.daemon.port) ssh-ed25519"])
        let keyBody = fixture.key.privateKey.split(separator: "\n")[1]
        #expect(filesContaining(String(keyBody), under: workspace).isEmpty)
        #expect(filesContaining(String(keyBody), under: fixture.cache.root).isEmpty)

        let refs = try await GitRemote.listRefs(url: fixture.url, credentials: fixture.key.credentials, hostKey: pinned)
        #expect(refs["refs/heads/main"] == fixture.head)
    }

    @Test func anUnpinnedHostKeyIsRejectedBeforeAuthentication() async throws {
        let fixture = try await Fixture()
        defer { fixture.tearDown() }
        let other = try KeyPair(in: fixture.scratch, name: "not-the-host")
        let presented = [UInt8](Data(base64Encoded: String(fixture.daemon.hostKeyLine.split(separator: " ")[1]))!)
        let calls = Mutex(0)
        let wrongPin = pinnedHostKey(other.publicKey)
        let verifier: HostKeyVerifier = { host, port, keyType, key in
            calls.withLock { $0 += 1 }
            return wrongPin(host, port, keyType, key)
        }
        // A client key the server would also refuse: if authentication were attempted, the error
        // would be authenticationFailed instead.
        let unknownClient = try KeyPair(in: fixture.scratch, name: "unknown-client")

        await #expect {
            try await fixture.cache.checkout(
                url: fixture.url, ref: nil, into: fixture.scratch.appending("ws"), credentials: unknownClient.credentials,
                hostKey: verifier)
        } throws: { error in
            guard let error = error as? GitError else { return false }
            return error.code == .hostKeyRejected && !error.isRetryable
                && error.message.contains("127.0.0.1:\(fixture.daemon.port)")
                && error.message.contains(KnownHosts.fingerprint(of: presented))
                && error.message.contains("not the pinned ssh-ed25519 key")
        }
        #expect(calls.withLock { $0 } == 1)
        #expect(!fixture.daemon.log.contains("publickey"), "no authentication was attempted")
    }

    @Test func theFingerprintMatchesSSHKeygen() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let key = try KeyPair(in: scratch, name: "k")
        let file = scratch.appending("k.pub")
        try Data((key.publicKey + "\n").utf8).write(to: file)
        let expected = try run("/usr/bin/ssh-keygen", ["-l", "-E", "sha256", "-f", file.path]).split(separator: " ")[1]
        let blob = [UInt8](Data(base64Encoded: String(key.publicKey.split(separator: " ")[1]))!)
        #expect(KnownHosts.fingerprint(of: blob) == String(expected))
        #expect(SSHWire.firstString(in: blob) == "ssh-ed25519")
    }

    @Test func anUnknownClientKeyFailsAuthentication() async throws {
        let fixture = try await Fixture()
        defer { fixture.tearDown() }
        let stranger = try KeyPair(in: fixture.scratch, name: "stranger")
        let started = ContinuousClock.now

        await #expect {
            try await fixture.cache.checkout(
                url: fixture.url, ref: nil, into: fixture.scratch.appending("ws"), credentials: stranger.credentials,
                hostKey: pinnedHostKey(fixture.daemon.hostKeyLine))
        } throws: { error in
            guard let error = error as? GitError else { return false }
            return error.code == .authenticationFailed && error.message.contains("refused the SSH key")
        }
        #expect(ContinuousClock.now - started < .seconds(20))
        await #expect {
            try await GitRemote.listRefs(url: fixture.url, credentials: .anonymous, hostKey: pinnedHostKey(fixture.daemon.hostKeyLine))
        } throws: { error in
            (error as? GitError)?.code == .authenticationFailed
        }
    }

    @Test func aClosedPortIsUnreachable() async throws {
        let fixture = try await Fixture()
        let url = fixture.url
        let credentials = fixture.key.credentials
        fixture.tearDown()

        await #expect {
            try await GitRemote.listRefs(url: url, credentials: credentials, hostKey: { _, _, _, _ in .trusted })
        } throws: { error in
            guard let error = error as? GitError else { return false }
            return error.code == .unreachable && error.isRetryable
        }
    }
}
