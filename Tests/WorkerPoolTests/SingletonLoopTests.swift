import Foundation
import HarrowTestSupport
import Queue
import Testing
import WorkerPool

/// Singleton loops under a Redis lease.
@Suite struct SingletonLoopTests {
    /// Counts turns in progress across loops.
    final class TurnTracker: Sendable {
        struct Turn: Sendable {
            var holder: String
            var startedAt: Int64
        }

        private struct State {
            var turns: [Turn] = []
            var running = 0
            var maxRunning = 0
        }

        private let state = Locked(State())

        func turn(_ holder: String, _ body: () async throws -> Void) async rethrows {
            state.withLock { state in
                state.turns.append(Turn(holder: holder, startedAt: WallClock.system.milliseconds()))
                state.running += 1
                state.maxRunning = max(state.maxRunning, state.running)
            }
            defer { state.withLock { $0.running -= 1 } }
            try await body()
        }

        var turns: [Turn] { state.withLock { $0.turns } }
        var maxRunning: Int { state.withLock { $0.maxRunning } }
    }

    // Long against a turn (10 ms) and its wait (20 ms), so a loaded machine does not let a lease lapse mid-turn.
    static let ttl = Duration.seconds(1)

    func startLoop(_ name: String, holder: String, queue: JobQueue, tracker: TurnTracker, ttl: Duration = Self.ttl) -> Task<Void, Never> {
        let loop = SingletonLoop(name: name, jobQueue: queue, holder: holder, leaseTTL: ttl, logger: TestRedis.logger())
        return Task {
            await loop.run {
                try await tracker.turn(holder) { try await Task.sleep(for: .milliseconds(10)) }
                return .milliseconds(20)
            }
        }
    }

    @Test func oneHolderAtATimeAndTheOtherTakesOverWhenItStops() async throws {
        try await TestRedis.withJobQueue("wp-singleton") { queue in
            let tracker = TurnTracker()
            let loops = [
                "holder-a": startLoop("loop", holder: "holder-a", queue: queue, tracker: tracker),
                "holder-b": startLoop("loop", holder: "holder-b", queue: queue, tracker: tracker),
            ]
            try await eventually("turns taken") { tracker.turns.count >= 15 }
            #expect(tracker.maxRunning == 1)

            let holder = try #require(tracker.turns.last?.holder)
            let other = holder == "holder-a" ? "holder-b" : "holder-a"
            let stoppedTask = try #require(loops[holder])
            let otherTask = try #require(loops[other])
            stoppedTask.cancel()
            await stoppedTask.value
            let stoppedAt = tracker.turns.count
            let stoppedTime = WallClock.system.milliseconds()

            // The other loop takes over within about one lease TTL (it releases the lease as it stops).
            try await eventually("the other loop took over", timeout: .seconds(10)) {
                tracker.turns.dropFirst(stoppedAt).count >= 3
            }
            let later = tracker.turns.dropFirst(stoppedAt)
            #expect(later.allSatisfy { $0.holder == other })
            #expect(tracker.maxRunning == 1)
            #expect(try await queue.redis.send("GET", [.string(queue.globalKeys.lease("loop"))]).string == other)
            // Sanity bound on the takeover itself (the lease was released, so well within the TTL plus slack).
            if let first = later.first {
                #expect(first.startedAt - stoppedTime < 10_000)
            }

            otherTask.cancel()
            await otherTask.value
            // Stopping gives the lease up.
            #expect(try await queue.redis.send("EXISTS", [.string(queue.globalKeys.lease("loop"))]).int == 0)
        }
    }

    @Test func aCrashedHoldersLeaseIsTakenOverOnceItExpires() async throws {
        try await TestRedis.withJobQueue("wp-singleton-crash") { queue in
            let tracker = TurnTracker()
            // A holder that took the lease and died without renewing or releasing it.
            let before = WallClock.system.milliseconds()
            #expect(try await queue.acquireLease("loop", holder: "crashed", ttl: Self.ttl))
            let task = startLoop("loop", holder: "survivor", queue: queue, tracker: tracker)
            try await eventually("the survivor took over", timeout: .seconds(10)) { !tracker.turns.isEmpty }
            let first = try #require(tracker.turns.first)
            // Not before the crashed holder's lease ran out (a few ms of clock granularity allowed).
            #expect(first.startedAt >= before + 1000 - 5)
            #expect(first.holder == "survivor")
            task.cancel()
            await task.value
        }
    }

    @Test func loopsOfDifferentNamesRunSideBySide() async throws {
        try await TestRedis.withJobQueue("wp-singleton-names") { queue in
            let tracker = TurnTracker()
            // A lease long enough that a loaded machine cannot let it lapse between a renewal
            // and the checks below (this test is about names, not expiry).
            let one = startLoop("one", holder: "h", queue: queue, tracker: tracker, ttl: .seconds(10))
            let two = startLoop("two", holder: "h", queue: queue, tracker: tracker, ttl: .seconds(10))
            try await eventually("both loops turn") {
                let turns = tracker.turns
                return turns.count >= 10 && Set(turns.map(\.holder)) == ["h"]
            }
            #expect(try await queue.redis.send("GET", [.string(queue.globalKeys.lease("one"))]).string == "h")
            #expect(try await queue.redis.send("GET", [.string(queue.globalKeys.lease("two"))]).string == "h")
            one.cancel()
            two.cancel()
            await one.value
            await two.value
        }
    }
}
