import Foundation
import HarrowTestSupport
import Store
import Testing

@testable import Jobs

/// Which commit each repository of a run is checked out at, for git triggers' runs in projects
/// with several repositories.
@Suite(.timeLimit(.minutes(2))) struct TriggeredCheckoutTests {
    static func source(_ id: UUID, _ name: String, _ url: String) -> RunPlan.Source {
        RunPlan.Source(id: id, name: name, url: url, knownHosts: "", deployKey: nil)
    }

    /// A trigger saw `feature` of `app` at one commit; it moved on before the run. `app` is
    /// checked out at the commit seen, `lib` (which has no `feature`) at its default branch.
    /// Before, both were asked for `feature`: `lib`'s checkout failed and the run with it.
    @Test func aTriggersRunChecksOutItsShaThereAndTheDefaultBranchElsewhere() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let app = try OriginRepository(in: scratch.appending("served"), name: "app")
        let lib = try OriginRepository(in: scratch.appending("served"), name: "lib", defaultBranch: "trunk")
        let seen = try app.commit(["f": "1"], message: "seen by the poll", on: "feature")
        let moved = try app.commit(["f": "2"], message: "pushed after the poll", on: "feature")
        let libHead = try lib.commit(["l": "1"], message: "lib", on: "trunk")
        let server = try HTTPGitServer(root: scratch.appending("served"))
        defer { server.stop() }
        let cache = MirrorCache(root: scratch.appending("mirrors"))
        let appID = UUID()
        let sources = [Self.source(appID, "app", server.url("app.git")), Self.source(UUID(), "lib", server.url("lib.git"))]
        // As the poller writes them (lowercase id); the comparison ignores case.
        let parameters = ["repository_id": appID.uuidString, "ref": "refs/heads/feature", "sha": seen, "previous_sha": ""]

        var commits: [String: String] = [:]
        for source in sources {
            let checkout = try await cache.checkout(
                url: source.url, ref: RepositoryCheckouts.ref(for: source, parameters: parameters),
                into: scratch.appending("ws/\(source.name)"), credentials: .anonymous, hostKey: noSSHHostKeyExpected)
            commits[source.name] = checkout.commit
        }
        #expect(commits == ["app": seen, "lib": libHead])
        #expect(seen != moved)
    }

    @Test func refsByParameters() {
        let id = UUID()
        let source = Self.source(id, "app", "https://example.com/app.git")
        let lowercase = id.uuidString.lowercased()
        #expect(RepositoryCheckouts.ref(for: source, parameters: [:]) == nil)
        #expect(RepositoryCheckouts.ref(for: source, parameters: ["ref": ""]) == nil)
        #expect(RepositoryCheckouts.ref(for: source, parameters: ["ref": "v1.0"]) == "v1.0")
        #expect(
            RepositoryCheckouts.ref(for: source, parameters: ["repository_id": lowercase, "ref": "refs/heads/x", "sha": "abc"]) == "abc")
        // A removed ref has no sha: the default branch.
        #expect(RepositoryCheckouts.ref(for: source, parameters: ["repository_id": lowercase, "ref": "refs/heads/x", "sha": ""]) == nil)
        #expect(RepositoryCheckouts.ref(for: source, parameters: ["repository_id": UUID().uuidString, "ref": "x", "sha": "abc"]) == nil)
    }
}
