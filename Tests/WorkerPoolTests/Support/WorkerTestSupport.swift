import Foundation
import HarrowTestSupport
import Logging
import NIOCore
import Queue
import ServiceLifecycleTestKit
import WorkerPool

// Helpers shared by the in-process tests of the worker runtime. Every test works under a key
// prefix of its own (`TestRedis.withJobQueue`), so fixed queue names such as `greetings` are
// private to the test and the workers set, queues set and leases are too.

// MARK: - Small concurrency helpers

/// A value behind a lock, for state that handlers running on many tasks update.
///
/// `@unchecked Sendable`: `stored` is only read or written inside `withLock`, and `Value` is
/// itself `Sendable`, so nothing escapes the lock that could race.
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value

    init(_ value: Value) {
        stored = value
    }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&stored)
    }

    var value: Value { withLock { $0 } }
}

/// An error a test handler throws.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Recording runs

/// One run of a handler as the test saw it.
struct Run: Sendable, Equatable {
    var id: String
    var type: String
    var queue: String
    var attempt: Int
    var maxAttempts: Int
    var workerID: String
}

/// Records runs and how many ran at once (overall and per queue).
final class RunRecorder: Sendable {
    private struct State {
        var runs: [Run] = []
        var running = 0
        var maxRunning = 0
        var runningPerQueue: [String: Int] = [:]
        var maxRunningPerQueue: [String: Int] = [:]
    }

    private let state = Locked(State())

    /// Records a run that starts now and ends when `body` returns or throws.
    func track<T>(_ context: JobContext, _ body: () async throws -> T) async rethrows -> T {
        started(context)
        defer { ended(context) }
        return try await body()
    }

    /// Records a run that does nothing.
    func record(_ context: JobContext) {
        started(context)
        ended(context)
    }

    private func started(_ context: JobContext) {
        let run = Run(
            id: context.id, type: context.type, queue: context.queue, attempt: context.attempt,
            maxAttempts: context.maxAttempts, workerID: context.workerID)
        state.withLock { state in
            state.runs.append(run)
            state.running += 1
            state.maxRunning = max(state.maxRunning, state.running)
            let inQueue = state.runningPerQueue[context.queue, default: 0] + 1
            state.runningPerQueue[context.queue] = inQueue
            state.maxRunningPerQueue[context.queue] = max(state.maxRunningPerQueue[context.queue] ?? 0, inQueue)
        }
    }

    private func ended(_ context: JobContext) {
        state.withLock { state in
            state.running -= 1
            state.runningPerQueue[context.queue, default: 0] -= 1
        }
    }

    var runs: [Run] { state.withLock { $0.runs } }
    var count: Int { state.withLock { $0.runs.count } }
    var running: Int { state.withLock { $0.running } }
    var maxRunning: Int { state.withLock { $0.maxRunning } }
    func maxRunning(queue: String) -> Int { state.withLock { $0.maxRunningPerQueue[queue] ?? 0 } }
    func runs(id: String) -> [Run] { state.withLock { $0.runs.filter { $0.id == id } } }
    func runs(queue: String) -> [Run] { state.withLock { $0.runs.filter { $0.queue == queue } } }
}

/// Middleware that records every run (whatever the job type, built-ins included) and every
/// outcome the worker reports.
struct RecordingMiddleware: JobMiddleware {
    let recorder: RunRecorder
    let outcomes = Locked<[(id: String, outcome: JobOutcome)]>([])

    init(recorder: RunRecorder = RunRecorder()) {
        self.recorder = recorder
    }

    func run(_ context: JobContext, next: @Sendable (JobContext) async throws -> Void) async throws {
        try await recorder.track(context) { try await next(context) }
    }

    func finished(_ context: JobContext, outcome: JobOutcome, duration: Duration) {
        outcomes.withLock { $0.append((context.id, outcome)) }
    }

    /// Outcomes by kind: `succeeded`, `retried`, `dead`, `handedBack`, `snoozed`.
    var outcomeKinds: [String] {
        outcomes.value.map { $0.outcome.kind }
    }
}

extension JobOutcome {
    var kind: String {
        switch self {
        case .succeeded: return "succeeded"
        case .retried: return "retried"
        case .deadLettered: return "dead"
        case .handedBack: return "handedBack"
        case .snoozed: return "snoozed"
        }
    }
}

// MARK: - Job types used by the tests

/// A job that succeeds; its own queue.
struct Greeting: Job {
    static let name = "greeting"
    static let queue = "greetings"
    static var retryPolicy: RetryPolicy { RetryPolicy(maxAttempts: 4, backoff: .constant(.milliseconds(50))) }
    static var timeout: Duration { .seconds(30) }
    var name: String
}

/// Sleeps, then adds its id to the `record` set when given; cheap to retry.
struct Nap: Job {
    static let name = "nap"
    static let queue = "naps"
    static var retryPolicy: RetryPolicy { RetryPolicy(maxAttempts: 25, backoff: .constant(.milliseconds(100))) }
    var ms: Int
    var record: String?
}

extension JobRegistry {
    /// Registers ``Nap`` with `recorder` tracking its runs.
    mutating func registerNap(_ recorder: RunRecorder) throws {
        try register(Nap.self) { job, context in
            try await recorder.track(context) {
                try await Task.sleep(for: .milliseconds(job.ms))
                if let key = job.record {
                    try await context.jobQueue.redis.send("SADD", [.string(key), .string(context.id)])
                }
            }
        }
    }
}

// MARK: - Running workers

extension QueueSelection {
    /// Queues in strict order, no limits.
    static func strict(_ names: String...) -> QueueSelection {
        QueueSelection(entries: names.map { QueueSelection.Entry(name: $0) }, weighted: false)
    }
}

extension Worker.Options {
    /// Options with short intervals for tests. `deadWorkerAfter` defaults to a few seconds, far
    /// above the heartbeat interval, so a loaded machine never makes a live worker look dead
    /// (which would redeliver its running jobs and break "runs exactly once" assertions); the
    /// reclaim tests pass a short one.
    static func fast(
        _ queues: QueueSelection,
        concurrency: Int = 10,
        prefetch: Int = 0,
        shutdownTimeout: Duration = .seconds(5),
        cancellationGrace: Duration = .seconds(5),
        deadWorkerAfter: Duration = .seconds(3),
        blockTimeout: Duration = .milliseconds(200),
        runsMaintenance: Bool = true,
        reclaimInterval: Duration = .milliseconds(200)
    ) -> Worker.Options {
        Worker.Options(
            queues: queues, concurrency: concurrency, prefetch: prefetch, shutdownTimeout: shutdownTimeout,
            cancellationGrace: cancellationGrace, heartbeatInterval: .milliseconds(100), deadWorkerAfter: deadWorkerAfter,
            blockTimeout: blockTimeout,
            runsMaintenance: runsMaintenance, promoteInterval: .milliseconds(50), reclaimInterval: reclaimInterval,
            workerID: "test-worker-\(TestRedis.randomHex())")
    }
}

/// A worker running in a task of its own, under a graceful-shutdown trigger of its own.
final class RunningWorker: Sendable {
    let worker: Worker
    let trigger: GracefulShutdownTestTrigger
    let task: Task<Void, any Error>

    init(worker: Worker, trigger: GracefulShutdownTestTrigger, task: Task<Void, any Error>) {
        self.worker = worker
        self.trigger = trigger
        self.task = task
    }

    var id: String { worker.options.workerID }

    /// Triggers the graceful shutdown and waits until `run()` returned; cancels the worker and
    /// throws when it has not within `limit`.
    func stop(within limit: Duration = .seconds(20)) async throws {
        trigger.triggerGracefulShutdown()
        let task = self.task
        do {
            try await withDeadline(limit, "worker \(id) stops") { try await task.value }
        } catch {
            task.cancel()
            throw error
        }
    }
}

/// Runs `body` while a worker runs on `queue`, then shuts the worker down gracefully (also when
/// `body` throws). Middleware defaults to none, so tests see only what they add.
func withWorker<T>(
    queue: JobQueue,
    registry: JobRegistry,
    options: Worker.Options,
    middleware: [any JobMiddleware] = [],
    _ body: (RunningWorker) async throws -> T
) async throws -> T {
    let worker = Worker(
        queue: queue, registry: registry, options: options, middleware: middleware,
        logger: TestRedis.logger("harrow.test.worker"))
    return try await testGracefulShutdown { trigger in
        let task = Task { try await worker.run() }
        let running = RunningWorker(worker: worker, trigger: trigger, task: task)
        let result: T
        do {
            result = try await body(running)
        } catch {
            try? await running.stop()
            throw error
        }
        try await running.stop()
        return result
    }
}

// MARK: - Looking at queues

extension JobQueue {
    /// One queue's stats.
    func stats(_ queue: String) async throws -> QueueStats {
        try await stats(queues: [queue])[0]
    }

    /// Waits until `queue` has nothing ready, running or delayed.
    func waitUntilDrained(_ queue: String, timeout: Duration = .seconds(15), fileID: String = #fileID, line: Int = #line) async throws {
        try await eventually("queue \(queue) drained", timeout: timeout, fileID: fileID, line: line) {
            let stats = try await self.stats(queue)
            return stats.ready == 0 && stats.pending == 0 && stats.delayed == 0
        }
    }

    /// How many members the set `key` has.
    func cardinality(_ key: String) async throws -> Int {
        try await redis.send("SCARD", [.string(key)]).int ?? -1
    }

    /// Runs one ``Nap`` through `worker` on `queue` (Redis 7.0 creates a consumer only when it is
    /// first delivered an entry), then waits until the worker's consumer has been idle for
    /// `idle`: with a long block timeout and no jobs, the worker is then inside its blocking read.
    /// Returns the warm-up job's id. The worker's registry must know ``Nap``.
    @discardableResult
    func waitUntilBlocked(
        _ worker: RunningWorker, queue: String, recorder: RunRecorder, idle: Duration = .milliseconds(250)
    ) async throws -> String {
        let id = try await enqueue(Nap(ms: 0), queue: queue).id
        try await eventually("warm-up job ran") { recorder.runs(id: id).count == 1 }
        try await waitUntilDrained(queue)
        try await eventually("worker \(worker.id) blocked on \(queue)") {
            try await self.consumers(queue: queue).contains { $0.name == worker.id && $0.idle >= idle }
        }
        return id
    }

    /// A key for a set of job ids, under this queue's prefix (so the test's cleanup removes it).
    func recordKey(_ name: String) -> String {
        "\(options.keyPrefix):record:\(name)"
    }

    /// Adds raw entries to `queue`'s stream in one MULTI/EXEC, so a worker blocked on the stream
    /// receives them all in one reply (Redis serves blocked readers after the transaction).
    func addAtomically(_ queue: String, _ entries: [[RESPArgument]]) async throws {
        let stream = keys(queue).stream
        let commands =
            [RedisCommand("MULTI")] + entries.map { RedisCommand("XADD", [.string(stream), "*"] + $0) } + [RedisCommand("EXEC")]
        let replies = try await redis.pipeline(commands)
        for reply in replies {
            if case .error(let message) = reply { throw TestFailure("MULTI/EXEC failed: \(message)") }
        }
    }
}

extension JobEnvelope {
    /// A typed job's envelope as stream fields; `visibility` is its visibility timeout in ms.
    static func fields<J: Job>(of job: J, queue: String, id: String = JobID.make(), visibility: Int64? = nil) throws -> [RESPArgument] {
        let payload = try JSONEncoder().encode(job)
        let envelope = JobEnvelope(
            id: id, type: J.name, queue: queue, payload: ByteBuffer(bytes: payload),
            maxAttempts: J.retryPolicy.maxAttempts, visibilityTimeout: visibility)
        return envelope.fieldArguments
    }
}
