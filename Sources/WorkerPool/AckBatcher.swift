import Logging
import NIOConcurrencyHelpers
import Queue

/// Collects acknowledgements of finished jobs and sends them in batches: while one batch is
/// on its way to Redis, the next accumulates, so under load one round trip acknowledges many
/// jobs and when idle each job is acknowledged at once.
final class AckBatcher: Sendable {
    private struct State {
        var buffer: [Acknowledgement] = []
        var waiter: CheckedContinuation<Void, Never>?
        var finishing = false
    }

    private let state = NIOLockedValueBox(State())
    private let queue: JobQueue
    private let logger: Logger
    private let acknowledged: @Sendable ([Acknowledgement]) -> Void

    /// `acknowledged` is called with each batch Redis has taken.
    init(queue: JobQueue, logger: Logger, acknowledged: @escaping @Sendable ([Acknowledgement]) -> Void) {
        self.queue = queue
        self.logger = logger
        self.acknowledged = acknowledged
    }

    /// Buffers an acknowledgement for the next batch. Returns `false` once ``finish()`` was
    /// called: the caller acknowledges on its own (a job that outlived the drain).
    func add(_ acknowledgement: Acknowledgement) -> Bool {
        let (accepted, waiter) = state.withLockedValue { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !state.finishing else { return (false, nil) }
            state.buffer.append(acknowledgement)
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return accepted
    }

    /// Asks ``run()`` to send what is buffered and return.
    func finish() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            state.finishing = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Sends batches until ``finish()`` was called and everything buffered is sent. A batch that
    /// fails is retried with backoff (an acknowledgement that never arrives means the job runs
    /// again later); once finishing, it gives up after a few tries rather than hold shutdown.
    func run() async {
        var failures = 0
        while true {
            await waitForWork()
            guard let batch = takeBuffered() else { return }
            if batch.isEmpty { continue }
            do {
                try await queue.acknowledge(batch)
                acknowledged(batch)
                failures = 0
            } catch {
                failures += 1
                let finishing = state.withLockedValue { $0.finishing }
                if finishing && failures > 5 {
                    logger.error(
                        "could not acknowledge jobs before stopping; they will run again",
                        metadata: ["error": "\(error)", "jobs": "\(batch.count)"])
                    return
                }
                logger.warning("acknowledging jobs failed; will retry", metadata: ["error": "\(error)", "jobs": "\(batch.count)"])
                state.withLockedValue { $0.buffer.insert(contentsOf: batch, at: 0) }
                try? await Task.sleep(for: RetryPolicy.Backoff.reconnect.delay(afterAttempt: failures))
            }
        }
    }

    private func waitForWork() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLockedValue { state -> Bool in
                if !state.buffer.isEmpty || state.finishing { return true }
                state.waiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// The buffered acknowledgements, `[]` when there are none, `nil` when finished and empty.
    private func takeBuffered() -> [Acknowledgement]? {
        state.withLockedValue { state in
            if !state.buffer.isEmpty {
                defer { state.buffer.removeAll(keepingCapacity: true) }
                return state.buffer
            }
            return state.finishing ? nil : []
        }
    }
}
