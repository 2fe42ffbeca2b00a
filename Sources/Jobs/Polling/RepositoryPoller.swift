import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Store
import WorkerPool

/// Queues `poll-repo` jobs for repositories whose next poll is due, in every worker that has a
/// database (`--no-poller` opts out). Pollers need no lease: each claims due repositories with
/// `FOR UPDATE SKIP LOCKED` and plans the next poll in the transaction that queues this one
/// through the outbox, so however many run, each due poll is queued once.
///
/// It sleeps until the nearest planned poll (at most ``Options/longestSleep``, a safety net for
/// repositories scheduled by another path), and wakes early when a git trigger is created
/// (`NOTIFY` on ``RepositoryPollStore/channel``).
public struct RepositoryPoller: Service {
    public struct Options: Sendable {
        /// Repositories claimed per transaction.
        public var batchSize: Int
        /// How far a poll may stray from its interval, as a fraction of it (0.1: ±10%), so that
        /// repositories created together do not poll together forever.
        public var jitter: Double
        /// The longest sleep between looks.
        public var longestSleep: Duration
        /// The shortest: a due repository another poller is claiming right now is not looked at
        /// again at once.
        public var shortestSleep: Duration
        /// How long a look may take before it is abandoned as hung (``withTurnDeadline(_:_:)``).
        public var turnDeadline: Duration

        public init(
            batchSize: Int = 100, jitter: Double = 0.1, longestSleep: Duration = .seconds(30), shortestSleep: Duration = .milliseconds(200),
            turnDeadline: Duration = .seconds(120)
        ) {
            self.batchSize = max(1, batchSize)
            self.jitter = jitter
            self.longestSleep = longestSleep
            self.shortestSleep = shortestSleep
            self.turnDeadline = turnDeadline
        }
    }

    let client: PostgresClient
    let polls: RepositoryPollStore
    public let options: Options
    let logger: Logger

    public init(client: PostgresClient, options: Options = Options(), logger: Logger) {
        self.client = client
        var logger = logger
        logger[metadataKey: "loop"] = "repository-poller"
        self.logger = logger
        polls = RepositoryPollStore(client: client, logger: self.logger)
        self.options = options
    }

    /// Queues due polls until graceful shutdown.
    public func run() async throws {
        let wakeup = SingletonLoop.Wakeup()
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await NotificationListener(client: client, channel: RepositoryPollStore.channel, logger: logger).run { _, _ in
                        wakeup.wake()
                    }
                }
                await SingletonLoop.repeating(
                    wakeup: wakeup, logger: logger, failure: "repository poller failed; retrying", deadline: options.turnDeadline
                ) { try await turn() }
                group.cancelAll()
            }
        }
    }

    /// One look: queues every due poll, batch by batch; returns how long to sleep.
    public func turn() async throws -> Duration {
        while true {
            let claim = try await polls.claimDue(limit: options.batchSize, jitter: options.jitter)
            if !claim.queued.isEmpty {
                logger.debug("polls queued", metadata: ["repositories": "\(claim.queued.count)"])
            }
            if claim.queued.count + claim.unscheduled.count < options.batchSize {
                return min(max(claim.nextDueIn ?? options.longestSleep, options.shortestSleep), options.longestSleep)
            }
        }
    }
}
