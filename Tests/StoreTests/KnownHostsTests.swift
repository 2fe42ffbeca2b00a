import Crypto
import Foundation
import Testing

@testable import Store

@Suite struct KnownHostsTests {
    static let keyA = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    static let keyB = "AAAAC3NzaC1lZDI1NTE5AAAAIAfuCHKVTjquxvt6CM6tdG4SLp1Btn/nOeHHE5UOzRdf"
    static func blob(_ base64: String) -> [UInt8] { Array(Data(base64Encoded: base64)!) }

    @Test func wellKnownKeysMatchPublishedFingerprints() throws {
        // Published by GitHub, GitLab and Atlassian (Bitbucket Cloud, 2023 keys).
        let published: Set<String> = [
            "github.com SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",
            "github.com SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM",
            "github.com SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
            "gitlab.com SHA256:eUXGGm1YGsMAS7vkcx6JOJdOGHPem5gQp4taiCfCLB8",
            "gitlab.com SHA256:HbW3g8zUjNSksFbqTiUWPWg2Bq1x8xdGUrliXFzSnUw",
            "gitlab.com SHA256:ROQFvPThGrW4RuWLoL9tq9I9zJ42fK4XywyRtbOz/EQ",
            "bitbucket.org SHA256:ybgmFkzwOSotHTHLJgHO0QN8L0xErw6vd0VhFA9m3SM",
            "bitbucket.org SHA256:FC73VB6C4OQLSCrjEayhMp9UMxS97caD/Yyi2bhW/J0",
            "bitbucket.org SHA256:46OSHA1Rmj8E8ERTC6xkNcmGOw9oFxYr0WF6zWW8l1E",
        ]
        var computed: Set<String> = []
        for line in KnownHosts.wellKnownText.split(separator: "\n") {
            let fields = line.split(separator: " ")
            let key = Self.blob(String(fields[2]))
            computed.insert("\(fields[0]) \(KnownHosts.fingerprint(of: key))")
            #expect(KnownHosts.wellKnown.verify(host: String(fields[0]), port: 22, keyType: String(fields[1]), key: key) == .trusted)
        }
        #expect(computed == published)
        #expect(KnownHosts.wellKnown.verify(host: "github.com", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyB)) == .mismatch)
    }

    @Test func trustedMismatchUnknown() throws {
        let hosts = try KnownHosts("# comment\n\nbuild.example.com ssh-ed25519 \(Self.keyA) deploy key\n")
        #expect(hosts.verify(host: "build.example.com", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyA)) == .trusted)
        #expect(hosts.verify(host: "BUILD.example.com", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyA)) == .trusted)
        #expect(hosts.verify(host: "build.example.com", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyB)) == .mismatch)
        #expect(hosts.verify(host: "other.example.com", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyA)) == .unknown)
    }

    @Test func portsUseBracketedNames() throws {
        let hosts = try KnownHosts("[10.0.0.5]:2222 ssh-ed25519 \(Self.keyA)\n10.0.0.6 ssh-ed25519 \(Self.keyA)")
        #expect(hosts.verify(host: "10.0.0.5", port: 2222, keyType: "ssh-ed25519", key: Self.blob(Self.keyA)) == .trusted)
        #expect(hosts.verify(host: "10.0.0.5", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyA)) == .unknown)
        #expect(hosts.verify(host: "10.0.0.6", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyA)) == .trusted)
        #expect(hosts.verify(host: "10.0.0.6", port: 2200, keyType: "ssh-ed25519", key: Self.blob(Self.keyA)) == .unknown)
    }

    @Test func wildcardsAndNegation() throws {
        let hosts = try KnownHosts("*.example.com,!secret.example.com,web?.example.org ssh-ed25519 \(Self.keyA)")
        let key = Self.blob(Self.keyA)
        #expect(hosts.verify(host: "a.example.com", port: 22, keyType: "ssh-ed25519", key: key) == .trusted)
        #expect(hosts.verify(host: "secret.example.com", port: 22, keyType: "ssh-ed25519", key: key) == .unknown)
        #expect(hosts.verify(host: "web1.example.org", port: 22, keyType: "ssh-ed25519", key: key) == .trusted)
        #expect(hosts.verify(host: "web12.example.org", port: 22, keyType: "ssh-ed25519", key: key) == .unknown)
        #expect(hosts.verify(host: "example.com", port: 22, keyType: "ssh-ed25519", key: key) == .unknown)
    }

    @Test func hashedEntriesFromSSHKeygen() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kh-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("known_hosts")
        try "build.example.com ssh-ed25519 \(Self.keyA)\n[127.0.0.1]:2222 ssh-ed25519 \(Self.keyB)\n"
            .write(to: file, atomically: true, encoding: .utf8)
        let keygen = Process()
        keygen.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        keygen.arguments = ["-H", "-f", file.path]
        keygen.standardOutput = FileHandle.nullDevice
        keygen.standardError = FileHandle.nullDevice
        try keygen.run()
        keygen.waitUntilExit()
        let text = try String(contentsOf: file, encoding: .utf8)
        #expect(!text.contains("example.com"))
        #expect(text.contains("|1|"))
        let hosts = try KnownHosts(text)
        #expect(hosts.verify(host: "build.example.com", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyA)) == .trusted)
        #expect(hosts.verify(host: "build.example.com", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyB)) == .mismatch)
        #expect(hosts.verify(host: "127.0.0.1", port: 2222, keyType: "ssh-ed25519", key: Self.blob(Self.keyB)) == .trusted)
        #expect(hosts.verify(host: "127.0.0.1", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyB)) == .unknown)
    }

    @Test func revokedKeysAreRefusedEvenWhenAlsoPinned() throws {
        let hosts = try KnownHosts(
            """
            @revoked * ssh-ed25519 \(Self.keyB)
            build.example.com ssh-ed25519 \(Self.keyB)
            build.example.com ssh-ed25519 \(Self.keyA)
            """)
        #expect(hosts.verify(host: "build.example.com", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyB)) == .revoked)
        #expect(hosts.verify(host: "build.example.com", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyA)) == .trusted)
        #expect(hosts.verify(host: "elsewhere.example", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyB)) == .revoked)
    }

    @Test func certificateAuthoritiesAreIgnored() throws {
        let hosts = try KnownHosts("@cert-authority *.example.com ssh-ed25519 \(Self.keyA)")
        #expect(hosts.isEmpty == false)
        #expect(hosts.verify(host: "a.example.com", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyA)) == .unknown)
    }

    @Test(arguments: [
        ("ok.example ssh-ed25519 \(keyA)\nbroken-line-without-key", 2, "expected"),
        ("host ssh-ed25519 not_base64!!", 1, "base64"),
        ("host ssh-rsa \(keyA)", 1, "does not match"),
        ("@trusted host ssh-ed25519 \(keyA)", 1, "unknown marker"),
        ("|1|abc|def ssh-ed25519 \(keyA)", 1, "20 bytes"),
        ("[host:22 ssh-ed25519 \(keyA)", 1, "[host]:port"),
        ("a,,b ssh-ed25519 \(keyA)", 1, "empty host pattern"),
        ("# c\n\nhost ssh-ed25519 AAAA", 3, "SSH public key"),
    ])
    func malformedInputNamesTheLine(text: String, line: Int, reason: String) {
        do {
            try KnownHosts.validate(text)
            Issue.record("accepted \(text)")
        } catch let error as KnownHosts.ValidationError {
            #expect(error.line == line)
            #expect(error.description.contains(reason), "\(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func mergingAddsWellKnownHosts() throws {
        let hosts = try KnownHosts("build.example.com ssh-ed25519 \(Self.keyA)").merging(.wellKnown)
        #expect(hosts.verify(host: "build.example.com", port: 22, keyType: "ssh-ed25519", key: Self.blob(Self.keyA)) == .trusted)
        #expect(hosts.keyTypes(host: "github.com", port: 22) == ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"])
    }
}
