import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Store
import WorkerPool

/// Fires due schedules. Every worker with a database runs one, without a lease: each schedule
/// is claimed in Postgres (``ScheduleFirer``), so however many run, each fire time fires once,
/// and when one worker is down the others go on.
///
/// It sleeps until the nearest next fire time, woken early when a schedule changes (a
/// notification on ``ScheduleStore/channel``), and at most ``Options/longestSleep`` in case a
/// notification was lost.
public struct Scheduler: Service {
    /// How the scheduler waits.
    public struct Options: Sendable {
        /// The longest sleep without a notification.
        public var longestSleep: Duration
        /// The pause after finding due schedules that other schedulers hold, so as not to spin
        /// while they commit.
        public var contendedPause: Duration
        /// The time now; `nil` (the default): the database's, which every worker shares.
        /// Tests move it.
        public var clock: (@Sendable () -> Date)?
        /// How long a turn may take before it is abandoned as hung (``withTurnDeadline(_:_:)``).
        public var turnDeadline: Duration

        public init(
            longestSleep: Duration = .seconds(30), contendedPause: Duration = .milliseconds(250),
            clock: (@Sendable () -> Date)? = nil, turnDeadline: Duration = .seconds(120)
        ) {
            self.longestSleep = longestSleep
            self.contendedPause = contendedPause
            self.clock = clock
            self.turnDeadline = turnDeadline
        }
    }

    let firer: ScheduleFirer
    let listener: NotificationListener
    let options: Options
    let logger: Logger

    public init(client: PostgresClient, options: Options = Options(), logger: Logger) {
        var logger = logger
        logger[metadataKey: "loop"] = "scheduler"
        firer = ScheduleFirer(client: client, logger: logger)
        listener = NotificationListener(client: client, channel: ScheduleStore.channel, logger: logger)
        self.options = options
        self.logger = logger
    }

    public func run() async throws {
        let wakeup = SingletonLoop.Wakeup()
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                // Also when it listens again after a lost connection: changes made meanwhile
                // notified nobody.
                group.addTask { await listener.run(onListening: { wakeup.wake() }) { _, _ in wakeup.wake() } }
                await SingletonLoop.repeating(
                    wakeup: wakeup, logger: logger, failure: "scheduler failed; retrying", deadline: options.turnDeadline
                ) { try await turn() }
                group.cancelAll()
            }
        }
    }

    /// Fires what is due and returns how long to sleep.
    func turn() async throws -> Duration {
        // Every turn, not once: an older API server during a rolling upgrade writes schedules
        // without a next fire time.
        let set = try await firer.backfillNextFireTimes(now: options.clock?() ?? Date())
        if set > 0 { logger.info("gave schedules their first fire time", metadata: ["count": "\(set)"]) }
        let limit = 500
        let (outcomes, failures) = try await firer.fireDue(now: options.clock?(), limit: limit)
        for outcome in outcomes {
            var metadata: Logger.Metadata = ["schedule_id": "\(outcome.scheduleID.uuidString.lowercased())"]
            if let operation = outcome.operationID { metadata["operation_id"] = "\(operation.uuidString.lowercased())" }
            if outcome.missed > 0 {
                metadata["missed"] = "\(outcome.missed)"
                logger.warning("a schedule missed fire times while no scheduler ran", metadata: metadata)
            }
            if outcome.skipped { logger.info("schedule skipped: its job's previous run has not finished", metadata: metadata) }
        }
        for failure in failures {
            logger.error(
                "a due schedule could not be fired; the others went on, it is tried again next turn",
                metadata: ["schedule_id": "\(failure.scheduleID.uuidString.lowercased())", "error": "\(failure.error)"])
        }
        // More may be due than one turn takes.
        if outcomes.count + failures.count >= limit { return .zero }
        if !failures.isEmpty { return min(options.longestSleep, .seconds(5)) }
        guard let next = try await firer.nextDue() else { return options.longestSleep }
        let seconds = next.timeIntervalSince(options.clock?() ?? Date())
        // Still due: another scheduler holds it and is about to commit (or this clock is behind
        // the database's).
        if seconds <= 0 { return options.contendedPause }
        return min(options.longestSleep, .milliseconds(Int64((seconds * 1000).rounded(.up))))
    }
}
