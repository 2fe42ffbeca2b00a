import HarrowTestSupport
import Queue
import Synchronization
import Testing
import WorkerPool

/// `SingletonLoop.Wakeup`, which the outbox relay uses to run on a notification rather than
/// wait for its sweep.
@Suite struct SingletonLoopWakeupTests {
    /// A wake ends the wait at once, and a wake that comes while a turn runs is kept for the
    /// next wait rather than lost. Turns here ask for an hour's wait (and the lease lasts an
    /// hour), so every turn after the first is one a wake started, however slowly the test runs.
    @Test func aWakeRunsTheNextTurnAtOnceAndNoneIsLost() async throws {
        try await TestRedis.withJobQueue("wakeup") { queue in
            let turns = Atomic<Int>(0)
            let wakeup = SingletonLoop.Wakeup()
            let loop = SingletonLoop(
                name: "wakeup-test", jobQueue: queue, holder: "test", leaseTTL: .seconds(3600), logger: TestRedis.logger())
            let running = Task {
                await loop.run(wakeup: wakeup) {
                    let turn = turns.add(1, ordering: .sequentiallyConsistent).newValue
                    // During the second turn: a wake that finds no wait in progress.
                    if turn == 2 { wakeup.wake() }
                    return .seconds(3600)
                }
            }
            try await eventually("the first turn", timeout: .seconds(60)) { turns.load(ordering: .sequentiallyConsistent) == 1 }
            try await Task.sleep(for: .milliseconds(200))
            #expect(turns.load(ordering: .sequentiallyConsistent) == 1, "the loop did not wait")
            wakeup.wake()
            try await eventually("the turn a wake during a turn asked for", timeout: .seconds(60)) {
                turns.load(ordering: .sequentiallyConsistent) == 3
            }
            try await Task.sleep(for: .milliseconds(200))
            #expect(turns.load(ordering: .sequentiallyConsistent) == 3, "the third turn did not wait")
            running.cancel()
            await running.value
        }
    }
}
