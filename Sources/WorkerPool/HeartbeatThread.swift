import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Queue

/// A thread and a Redis connection of the worker's heartbeats alone.
///
/// The worker's jobs share an event loop with its fetches and acknowledgements. A handler that
/// blocks that thread, against the rules, would otherwise stop the heartbeats too: after
/// `deadWorkerAfter` the reclaimer would take the jobs it holds, and run them a second time
/// while the first run goes on.
struct HeartbeatThread: Sendable {
    let eventLoop: any EventLoop
    /// The worker's queue over this thread's own connection.
    let jobQueue: JobQueue
    private let group: MultiThreadedEventLoopGroup

    init(sharing jobQueue: JobQueue, logger: Logger) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        eventLoop = group.next()
        var configuration = jobQueue.redis.configuration
        configuration.poolSize = 1
        let redis = RedisClient(configuration: configuration, eventLoopGroup: group, logger: logger)
        self.jobQueue = JobQueue(redis: redis, options: jobQueue.options)
    }

    /// Sleeps on this thread's loop: a sleep on Swift's global executor (which may be NIO's
    /// event loops) could be woken by the very loop a handler blocks.
    func sleep(for duration: Duration) async throws {
        let scheduled = NIOLockedValueBox<Scheduled<Void>?>(nil)
        try await withTaskCancellationHandler {
            let (seconds, attoseconds) = duration.components
            let delay = TimeAmount.nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
            let timer = eventLoop.scheduleTask(in: delay) {}
            scheduled.withLockedValue { $0 = timer }
            if Task.isCancelled { timer.cancel() }
            do { try await timer.futureResult.get() } catch { throw CancellationError() }
        } onCancel: {
            scheduled.withLockedValue { $0 }?.cancel()
        }
    }

    /// Closes the connection and stops the thread, once nothing runs on it any more.
    func shutdown() async {
        await jobQueue.redis.close()
        try? await group.shutdownGracefully()
    }
}
