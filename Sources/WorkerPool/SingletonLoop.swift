import Logging
import NIOConcurrencyHelpers
import Queue

/// Runs a loop in exactly one process at a time, under a Redis lease (SET NX PX, renewed on
/// every turn, released when the loop ends). Processes that do not hold the lease try again
/// every third of its time to live, so a crashed holder is replaced within one TTL.
public struct SingletonLoop: Sendable {
    public let name: String
    public let jobQueue: JobQueue
    public let holder: String
    public let leaseTTL: Duration
    let logger: Logger

    public init(name: String, jobQueue: JobQueue, holder: String, leaseTTL: Duration = .seconds(15), logger: Logger) {
        self.name = name
        self.jobQueue = jobQueue
        self.holder = holder
        self.leaseTTL = leaseTTL
        var logger = logger
        logger[metadataKey: "loop"] = "\(name)"
        self.logger = logger
    }

    /// Runs `turn` whenever this process holds the lease, until the task is cancelled. `turn`
    /// returns how long to wait before the next turn (capped at a third of the lease TTL so the
    /// lease is renewed in time). `wakeup` ends such a wait early, for loops that are told of
    /// new work (it does not shorten the backoff after a failure).
    public func run(wakeup: Wakeup? = nil, _ turn: @Sendable () async throws -> Duration) async {
        var held = false
        await Self.repeating(wakeup: wakeup, logger: logger, failure: "singleton loop failed; retrying") {
            let nowHeld = try await jobQueue.acquireLease(name, holder: holder, ttl: leaseTTL)
            if nowHeld != held {
                logger.info(nowHeld ? "took the lease" : "lost the lease")
                held = nowHeld
            }
            return held ? min(leaseTTL / 3, try await turn()) : leaseTTL / 3
        }
        if held {
            try? await jobQueue.releaseLease(name, holder: holder)
        }
    }

    /// Runs `turn` until the task is cancelled, waiting as long as it returns between turns
    /// (`wakeup` ends such a wait early). A turn that throws is retried with the reconnect
    /// backoff, which a wake does not cut short (notifications keep coming while Redis or the
    /// database is away); the first failure of a run and every tenth are logged as `failure`.
    /// The loop of ``run(wakeup:_:)``, for loops that need no lease.
    public static func repeating(
        wakeup: Wakeup? = nil, logger: Logger, failure: Logger.Message, _ turn: () async throws -> Duration
    ) async {
        await loop(wakeup: wakeup, logger: logger, failure: failure, turn)
    }

    /// ``repeating(wakeup:logger:failure:_:)`` for a turn that must not hang the loop for good:
    /// a turn still running after `deadline` is abandoned (``withTurnDeadline(_:_:)``) and
    /// counts as a failure.
    public static func repeating(
        wakeup: Wakeup? = nil, logger: Logger, failure: Logger.Message, deadline: Duration,
        _ turn: @escaping @Sendable () async throws -> Duration
    ) async {
        await loop(wakeup: wakeup, logger: logger, failure: failure) { try await withTurnDeadline(deadline, turn) }
    }

    private static func loop(
        wakeup: Wakeup?, logger: Logger, failure: Logger.Message, _ turn: () async throws -> Duration
    ) async {
        var failures = 0
        while !Task.isCancelled {
            var wait: Duration
            do {
                wait = try await turn()
                failures = 0
            } catch {
                failures += 1
                if error is TurnDeadlineExceeded {
                    // Said every time: each one leaves a call hanging in this process.
                    logger.error(failure, metadata: ["error": "\(error)"])
                } else if failures == 1 || failures % 10 == 0 {
                    logger.warning(failure, metadata: ["error": "\(error)"])
                }
                wait = RetryPolicy.Backoff.reconnect.delay(afterAttempt: failures + 1)
            }
            do {
                if let wakeup, failures == 0 {
                    try await wakeup.wait(upTo: wait)
                } else {
                    try await Task.sleep(for: wait)
                }
            } catch {
                return
            }
        }
    }

    /// Ends a ``SingletonLoop``'s wait between turns early, e.g. when a notification says there
    /// is new work. A wake while no wait is in progress (during a turn) is kept for the next
    /// wait, so no wake is lost; several such wakes count as one.
    public final class Wakeup: Sendable {
        private struct State {
            var pending = false
            var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
            var nextWaiter = 0
        }

        private let state = NIOLockedValueBox(State())

        public init() {}

        /// Ends the current wait, or the next one if none is in progress.
        public func wake() {
            let waiters = state.withLockedValue { state in
                if state.waiters.isEmpty { state.pending = true }
                defer { state.waiters.removeAll() }
                return Array(state.waiters.values)
            }
            for waiter in waiters { waiter.resume() }
        }

        /// Returns after `duration`, or sooner when woken. Throws `CancellationError` when the
        /// task is cancelled.
        public func wait(upTo duration: Duration) async throws {
            let pending = state.withLockedValue { state in
                defer { state.pending = false }
                return state.pending
            }
            if pending { return }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await Task.sleep(for: duration) }
                group.addTask { await self.woken() }
                // Whichever ends first ends the wait; the other is cancelled and awaited.
                try await group.next()
                group.cancelAll()
            }
        }

        /// Returns when woken, or when the task is cancelled.
        private func woken() async {
            let id = state.withLockedValue { state in
                state.nextWaiter += 1
                return state.nextWaiter
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    // Under the lock: a cancellation that came before this point is seen here,
                    // one that comes after finds the waiter registered.
                    let resumeNow = state.withLockedValue { state in
                        if state.pending {
                            state.pending = false
                            return true
                        }
                        if Task.isCancelled { return true }
                        state.waiters[id] = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                state.withLockedValue { $0.waiters.removeValue(forKey: id) }?.resume()
            }
        }
    }
}
