import Foundation
import HarrowTestSupport
import Store
import Testing

@testable import Jobs

@Suite(.timeLimit(.minutes(2))) struct CancellationTests {
    /// The server sends the pack 1 KiB every 20 ms (a 2 MiB pack would take ~40 s), so the checkout
    /// is inside the transfer when the task is cancelled.
    @Test func cancellingACheckoutStopsTheTransfer() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let origin = try OriginRepository(in: scratch.appending("served"), name: "slow")
        try origin.commitRandomFile(bytes: 2 << 20, on: "main")
        let server = try HTTPGitServer(root: scratch.appending("served"), trickle: (bytes: 1024, delay: 0.02))
        defer { server.stop() }
        let cache = MirrorCache(root: scratch.appending("mirrors"))
        let url = server.url("slow.git")

        let task = Task {
            try await cache.checkout(
                url: url, ref: nil, into: scratch.appending("ws"), credentials: .anonymous, hostKey: noSSHHostKeyExpected)
        }
        try await Task.sleep(for: .seconds(1.5))
        task.cancel()
        // Not a speed assertion: the full transfer would take ~40 s, so ending well within that
        // shows the cancellation stopped it. The margin absorbs a loaded CI machine.
        let result = try await withDeadline(.seconds(25), "the cancelled checkout returns") { await task.result }

        #expect(throws: CancellationError.self) { try result.get() }
        #expect(!FileManager.default.fileExists(atPath: cache.mirrorDirectory(for: url).path))
        #expect(!FileManager.default.fileExists(atPath: scratch.appending("ws").path))
    }
}
