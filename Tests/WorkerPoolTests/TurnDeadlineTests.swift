import HarrowTestSupport
import Logging
import Testing

@testable import WorkerPool

/// A loop's turn that hangs in a call that never returns (and ignores cancellation) is given
/// up at its deadline, and the caller's cancellation ends the wait at once.
@Suite struct TurnDeadlineTests {
    /// A call that never returns and does not listen to cancellation, like a PostgresNIO query
    /// on a connection closed under it.
    static func hang() async -> Int {
        await withCheckedContinuation { (_: CheckedContinuation<Int, Never>) in }
    }

    @Test func aTurnThatEndsInTimeGivesItsValueOrError() async throws {
        #expect(try await withTurnDeadline(.seconds(10)) { 42 } == 42)
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await withTurnDeadline(.seconds(10)) { () async throws -> Int in throw Boom() } }
    }

    @Test func aHungTurnIsGivenUpAtItsDeadline() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: TurnDeadlineExceeded.self) { try await withTurnDeadline(.milliseconds(300)) { await Self.hang() } }
        #expect(clock.now - start >= .milliseconds(300))
    }

    @Test func cancellingTheCallerEndsTheWait() async throws {
        let waiting = Task { try await withTurnDeadline(.seconds(3600)) { await Self.hang() } }
        try await Task.sleep(for: .milliseconds(100))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
    }

    /// The loop goes on after a hung turn: the next turns run.
    @Test func theLoopGoesOnAfterAHungTurn() async throws {
        let turns = Counter()
        let loop = Task {
            await SingletonLoop.repeating(
                logger: .init(label: "test.deadline"), failure: "turn failed", deadline: .milliseconds(200)
            ) {
                if await turns.next() == 1 { _ = await Self.hang() }
                return .milliseconds(10)
            }
        }
        defer { loop.cancel() }
        try await eventually("turns after the hung one", timeout: .seconds(30)) { await turns.value >= 3 }
    }

    actor Counter {
        var value = 0
        func next() -> Int {
            value += 1
            return value
        }
    }
}
