import Foundation
import HarrowTestSupport
import Store
import Testing

@testable import Jobs

/// Checkouts over smart HTTP from `git http-backend`, through the mirror cache.
@Suite(.timeLimit(.minutes(2))) struct HTTPCheckoutTests {
    @Test func anonymousCheckoutOfTheDefaultBranch() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let origin = try OriginRepository(in: scratch.appending("served"), name: "web", defaultBranch: "trunk")
        let head = try origin.commit(["src/app.txt": "hello\n"], message: "app", on: "trunk")
        try origin.commit(["other.txt": "x"], message: "elsewhere", on: "feature")
        let server = try HTTPGitServer(root: scratch.appending("served"))
        defer { server.stop() }
        let cache = MirrorCache(root: scratch.appending("mirrors"))
        let workspace = scratch.appending("workspace/web")

        let checkout = try await cache.checkout(
            url: server.url("web.git"), ref: nil, into: workspace, credentials: .anonymous, hostKey: noSSHHostKeyExpected)

        #expect(checkout.commit == head)
        #expect(checkout.ref == "refs/heads/trunk")
        #expect(try String(contentsOf: workspace.appendingPathComponent("src/app.txt"), encoding: .utf8) == "hello\n")
        #expect(!FileManager.default.fileExists(atPath: workspace.appendingPathComponent("other.txt").path))
        #expect(try git("rev-parse", "HEAD", in: workspace) == head)
        #expect(throws: CommandFailed.self) { try git("symbolic-ref", "-q", "HEAD", in: workspace) }
        #expect(try git("remote", "get-url", "origin", in: workspace) == server.url("web.git"))
        #expect(try git("log", "--format=%s", in: workspace) == "app\ninitial commit")
        #expect(try git("status", "--porcelain", in: workspace) == "")
        #expect(try git("rev-parse", "origin/feature", in: workspace).count == 40)
        let mirror = cache.mirrorDirectory(for: server.url("web.git"))
        #expect(try git("--git-dir", mirror.path, "symbolic-ref", "HEAD", in: scratch.url) == "refs/heads/trunk")
    }

    @Test func checkoutOfABranchATagAndShas() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let origin = try OriginRepository(in: scratch.appending("served"), name: "lib")
        let first = try git("rev-parse", "HEAD", in: scratch.appending("served/lib-work"))
        let tagged = try origin.commit(["v": "1"], message: "one", on: "main")
        let tagObject = try origin.annotatedTag("v1.0", at: "main")
        let latest = try origin.commit(["v": "2"], message: "two", on: "main")
        let feature = try origin.commit(["f": "feature"], message: "feature", on: "feature/x")
        let server = try HTTPGitServer(root: scratch.appending("served"))
        defer { server.stop() }
        let cache = MirrorCache(root: scratch.appending("mirrors"))
        let url = server.url("lib.git")

        func checkout(_ ref: String?, _ name: String) async throws -> Checkout {
            try await cache.checkout(
                url: url, ref: ref, into: scratch.appending("ws/\(name)"), credentials: .anonymous, hostKey: noSSHHostKeyExpected)
        }

        let branch = try await checkout("feature/x", "branch")
        #expect(branch.commit == feature && branch.ref == "refs/heads/feature/x")
        #expect(FileManager.default.fileExists(atPath: scratch.appending("ws/branch/f").path))

        let tag = try await checkout("v1.0", "tag")
        #expect(tag.commit == tagged && tag.ref == "refs/tags/v1.0")
        #expect(tagObject != tagged)
        #expect(try git("rev-parse", "HEAD", in: scratch.appending("ws/tag")) == tagged)

        let fullRef = try await checkout("refs/heads/main", "full-ref")
        #expect(fullRef.commit == latest && fullRef.ref == "refs/heads/main")

        let sha = try await checkout(first, "sha")
        #expect(sha.commit == first && sha.ref == first)
        #expect(!FileManager.default.fileExists(atPath: scratch.appending("ws/sha/v").path))

        let short = try await checkout(String(tagged.prefix(10)), "short")
        #expect(short.commit == tagged && short.ref == tagged)

        let tagBySha = try await checkout(tagObject, "tag-object")
        #expect(tagBySha.commit == tagged)
    }

    @Test func unknownRefsAreNotFound() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        _ = try OriginRepository(in: scratch.appending("served"), name: "app")
        let server = try HTTPGitServer(root: scratch.appending("served"))
        defer { server.stop() }
        let cache = MirrorCache(root: scratch.appending("mirrors"))
        let url = server.url("app.git")

        for ref in ["no-such-branch", "refs/tags/nope", String(repeating: "ab", count: 20), "-x", "main..other"] {
            await #expect {
                try await cache.checkout(
                    url: url, ref: ref, into: scratch.appending("ws/\(UUID())"), credentials: .anonymous, hostKey: noSSHHostKeyExpected)
            } throws: { error in
                guard let error = error as? GitError else { return false }
                return error.code == .refNotFound && !error.isRetryable && error.message.hasPrefix("ref \(ref) not found in \(url)")
            }
        }
    }

    @Test func tokenAuthentication() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let token = "tok-\(UUID().uuidString)"
        let origin = try OriginRepository(in: scratch.appending("served"), name: "private")
        let head = try origin.commit(["secret.txt": "s"], message: "s", on: "main")
        let server = try HTTPGitServer(root: scratch.appending("served"), basicAuth: (GitCredentials.defaultTokenUsername, token))
        defer { server.stop() }
        let cache = MirrorCache(root: scratch.appending("mirrors"))
        let url = server.url("private.git")

        for credentials in [GitCredentials.anonymous, .token("wrong-\(token)"), .token(token, username: "someone-else")] {
            let started = ContinuousClock.now
            await #expect {
                try await cache.checkout(
                    url: url, ref: nil, into: scratch.appending("ws/\(UUID())"), credentials: credentials, hostKey: noSSHHostKeyExpected)
            } throws: { error in
                (error as? GitError)?.code == .authenticationFailed
            }
            #expect(ContinuousClock.now - started < .seconds(10))
        }
        #expect(!FileManager.default.fileExists(atPath: cache.mirrorDirectory(for: url).path), "a refused first fetch leaves no mirror")

        let workspace = scratch.appending("ws/ok")
        let checkout = try await cache.checkout(
            url: url, ref: nil, into: workspace, credentials: .token(token), hostKey: noSSHHostKeyExpected)
        #expect(checkout.commit == head)
        #expect(filesContaining(token, under: workspace).isEmpty)
        #expect(filesContaining(token, under: cache.root).isEmpty)
        let config = try String(contentsOf: workspace.appendingPathComponent(".git/config"), encoding: .utf8)
        #expect(config.contains("url = \(url)"))
        #expect(!config.contains("x-access-token"))

        // A cached mirror is no shortcut around authentication.
        await #expect {
            try await cache.checkout(
                url: url, ref: nil, into: scratch.appending("ws/again"), credentials: .anonymous, hostKey: noSSHHostKeyExpected)
        } throws: { error in
            (error as? GitError)?.code == .authenticationFailed
        }

        let refs = try await GitRemote.listRefs(url: url, credentials: .token(token), hostKey: noSSHHostKeyExpected)
        #expect(refs["refs/heads/main"] == head)
    }

    @Test func secondCheckoutFetchesIncrementallyIntoTheSameMirror() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let origin = try OriginRepository(in: scratch.appending("served"), name: "big")
        try origin.commit(["a": "1"], message: "one", on: "main")
        try origin.commit(["gone": "x"], message: "short-lived", on: "doomed")
        let server = try HTTPGitServer(root: scratch.appending("served"))
        defer { server.stop() }
        let cache = MirrorCache(root: scratch.appending("mirrors"))
        let url = server.url("big.git")
        let mirror = cache.mirrorDirectory(for: url)

        _ = try await cache.checkout(
            url: url, ref: nil, into: scratch.appending("ws/1"), credentials: .anonymous, hostKey: noSSHHostKeyExpected)
        #expect(FileManager.default.fileExists(atPath: mirror.path))
        #expect(mirror.lastPathComponent.count == 32 + 4)
        // Survives only if the mirror is reused rather than cloned again.
        let marker = mirror.appendingPathComponent("harrow-test-marker")
        try Data().write(to: marker)

        let newer = try origin.commit(["a": "2"], message: "two", on: "main")
        try git("--git-dir", origin.bare.path, "branch", "-D", "doomed", in: scratch.url)
        let second = try await cache.checkout(
            url: url, ref: "main", into: scratch.appending("ws/2"), credentials: .anonymous, hostKey: noSSHHostKeyExpected)

        #expect(second.commit == newer)
        #expect(FileManager.default.fileExists(atPath: marker.path))
        #expect(try String(contentsOf: scratch.appending("ws/2/a"), encoding: .utf8) == "2")
        #expect(throws: CommandFailed.self, "pruned") {
            try git("--git-dir", mirror.path, "rev-parse", "--verify", "-q", "refs/heads/doomed", in: scratch.url)
        }
    }

    @Test func concurrentCheckoutsShareOneMirror() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let origin = try OriginRepository(in: scratch.appending("served"), name: "shared")
        let head = try origin.commit(["a": "1"], message: "one", on: "main")
        let server = try HTTPGitServer(root: scratch.appending("served"))
        defer { server.stop() }
        let cache = MirrorCache(root: scratch.appending("mirrors"))
        let url = server.url("shared.git")

        let commits = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<4 {
                group.addTask {
                    try await cache.checkout(
                        url: url, ref: nil, into: scratch.appending("ws/\(index)"), credentials: .anonymous,
                        hostKey: noSSHHostKeyExpected
                    ).commit
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(commits == Array(repeating: head, count: 4))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: cache.root.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty)
    }

    @Test func listRefsWithoutFetching() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let origin = try OriginRepository(in: scratch.appending("served"), name: "refs")
        let main = try origin.commit(["a": "1"], message: "one", on: "main")
        let tag = try origin.annotatedTag("v2", at: "main")
        let server = try HTTPGitServer(root: scratch.appending("served"))
        defer { server.stop() }

        let refs = try await GitRemote.listRefs(url: server.url("refs.git"), credentials: .anonymous, hostKey: noSSHHostKeyExpected)

        #expect(refs["HEAD"] == main)
        #expect(refs["refs/heads/main"] == main)
        #expect(refs["refs/tags/v2"] == tag)
        #expect(refs["refs/tags/v2^{}"] == main)
    }

    @Test func missingRepositoryAndClosedPort() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(at: scratch.appending("served"), withIntermediateDirectories: true)
        let server = try HTTPGitServer(root: scratch.appending("served"))
        let cache = MirrorCache(root: scratch.appending("mirrors"))

        await #expect {
            try await cache.checkout(
                url: server.url("missing.git"), ref: nil, into: scratch.appending("ws/a"), credentials: .anonymous,
                hostKey: noSSHHostKeyExpected)
        } throws: { error in
            (error as? GitError)?.code == .repositoryNotFound
        }
        let closed = server.url("missing.git")
        server.stop()
        await #expect {
            try await GitRemote.listRefs(url: closed, credentials: .anonymous, hostKey: noSSHHostKeyExpected)
        } throws: { error in
            guard let error = error as? GitError else { return false }
            return error.code == .unreachable && error.isRetryable
        }
    }

    @Test func credentialsOfTheWrongKindAreRefusedBeforeConnecting() async throws {
        let cache = MirrorCache(root: FileManager.default.temporaryDirectory.appendingPathComponent("unused-\(UUID())"))
        await #expect {
            try await cache.checkout(
                url: "http://127.0.0.1:1/x.git", ref: nil, into: URL(fileURLWithPath: "/nonexistent"),
                credentials: .sshKey(privateKey: "k", publicKey: "ssh-ed25519 AAAA"), hostKey: noSSHHostKeyExpected)
        } throws: { error in
            (error as? GitError)?.code == .authenticationFailed
        }
        await #expect {
            try await GitRemote.listRefs(url: "file:///etc", credentials: .anonymous, hostKey: noSSHHostKeyExpected)
        } throws: { error in
            (error as? GitError)?.code == .invalidURL
        }
    }
}
