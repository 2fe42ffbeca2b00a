import NIOCore

/// A task executor that runs tasks on one SwiftNIO event loop.
///
/// When the process hands Swift's global executor to NIO
/// (`NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()`),
/// NIO runs every job as isolated to the event loop, so each call into a nonisolated async
/// function is an executor switch and goes once more through the loop's task queue. A task that
/// prefers this executor runs nonisolated code on the loop without those switches.
///
/// The loop must outlive every task that prefers this executor: NIO drops work handed to a
/// loop that has shut down, and a task waiting for it would never resume.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
