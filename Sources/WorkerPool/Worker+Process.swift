import Logging
import NIOCore
import Queue

extension Worker {
    /// How long a job may run: its envelope's timeout, else its type's.
    func timeout(for envelope: JobEnvelope) -> Duration {
        envelope.timeout.map { Duration.milliseconds($0) } ?? registry[envelope.type]?.timeout ?? .seconds(300)
    }

    /// How long a delivered job may go without a heartbeat before it is reclaimed.
    func visibilityTimeout(for envelope: JobEnvelope) -> Duration {
        envelope.visibilityTimeout.map { Duration.milliseconds($0) } ?? registry[envelope.type]?.visibilityTimeout
            ?? jobQueue.options.defaultVisibilityTimeout
    }

    /// Runs one job and settles it: acknowledge, retry, dead-letter or hand back. Runs in the
    /// job's own task, which the watchdog (id `watchID`) cancels when it overruns `timeout` or
    /// the worker stops at once.
    func process(_ job: FetchedJob, watchID: Int, timeout: Duration) async {
        let envelope = job.envelope
        let context = JobContext(
            id: envelope.id, type: envelope.type, queue: envelope.queue, attempt: envelope.attempt,
            maxAttempts: envelope.attemptsAllowed,
            enqueuedAt: envelope.enqueuedAt, traceparent: envelope.traceparent, workerID: workerID, workerLogger: logger, jobQueue: jobQueue
        )
        let start = ContinuousClock.now
        guard let entry = registry[envelope.type] else {
            let error = "unknown job type \(envelope.type): no handler is registered for it in this worker"
            _ = watchdog.forget(watchID)
            inFlight.remove(entryID: job.entryID)
            let outcome = await settleFailure(job, message: error, failure: nil, policy: .default, logger: context.logger)
            inFlight.settle([job.entryID])
            finish(context, outcome, since: start)
            return
        }
        let visibility = visibilityTimeout(for: envelope)
        inFlight.insert(
            entryID: job.entryID,
            // Refreshed for as long as it runs, past its timeout too: a job that ignores
            // cancellation is never handed to another worker while this one is alive.
            InFlightTable.Entry(queue: job.queue, uniqueKey: envelope.uniqueKey, jobID: envelope.id, visibility: visibility))
        defer { inFlight.remove(entryID: job.entryID) }

        var result: Result<Void, any Error>
        do {
            try await runChain(entry, payload: envelope.payload, context: context)
            result = .success(())
        } catch { result = .failure(error) }
        if watchdog.forget(watchID), case .failure = result { result = .failure(JobTimeoutError(timeout: timeout)) }

        let outcome: JobOutcome
        switch result {
        case .success:
            let ack = Acknowledgement(queue: job.queue, entryID: job.entryID, jobID: envelope.id, uniqueKey: envelope.uniqueKey)
            if !acks.add(ack) { await acknowledgeLate(ack, logger: context.logger) }
            outcome = .succeeded
        case .failure(let error) where Task.isCancelled && !(error is JobTimeoutError):
            // Cancelled, and not for its timeout: the worker is stopping. The job did not fail,
            // it was interrupted.
            outcome = await handBack(job, logger: context.logger)
            inFlight.settle([job.entryID])
        case .failure(let error):
            let message = Self.describe(error)
            outcome = await settleFailure(
                job, message: message, failure: error as? JobFailure, policy: entry.retryPolicy, logger: context.logger)
            inFlight.settle([job.entryID])
        }
        finish(context, outcome, since: start)
    }

    private func finish(_ context: JobContext, _ outcome: JobOutcome, since start: ContinuousClock.Instant) {
        let duration = ContinuousClock.now - start
        for middleware in middleware { middleware.finished(context, outcome: outcome, duration: duration) }
    }

    private func runChain(_ entry: JobRegistry.Entry, payload: ByteBuffer, context: JobContext) async throws {
        var next: @Sendable (JobContext) async throws -> Void = { context in try await entry.run(payload, context) }
        for middleware in middleware.reversed() {
            let inner = next
            next = { context in try await middleware.run(context, next: inner) }
        }
        try await next(context)
    }

    /// Decides between snooze, retry and dead letter and records it. A Redis failure here leaves
    /// the entry pending: the reclaimer delivers it again later (at-least-once).
    private func settleFailure(
        _ job: FetchedJob, message: String, failure: JobFailure?, policy: RetryPolicy, logger: Logger
    ) async -> JobOutcome {
        let envelope = job.envelope
        if case .snooze(let delay) = failure?.kind {
            // The same envelope, attempt unchanged: before the attempts check, since a snooze on
            // the last attempt is no reason to dead-letter.
            do {
                try await jobQueue.retry(entryID: job.entryID, envelope: envelope, delay: delay)
                return .snoozed(reason: message, delay: delay)
            } catch {
                logger.error("could not snooze the job; it will be delivered again", metadata: ["error": "\(error)"])
                return .snoozed(reason: message, delay: .zero)
            }
        }
        var delay: Duration?
        // Attempts first: a backoff is computed only for a job that has one left.
        if envelope.attempt < envelope.attemptsAllowed {
            switch failure?.kind {
            case .permanent: delay = nil
            case .retryAfter(let requested), .snooze(let requested): delay = requested
            case nil: delay = policy.backoff.delay(afterAttempt: envelope.attempt)
            }
        }
        do {
            if let delay {
                var next = envelope
                next.attempt += 1
                try await jobQueue.retry(entryID: job.entryID, envelope: next, delay: delay)
                return .retried(error: message, delay: delay)
            }
            let reason =
                failure.map { if case .permanent = $0.kind { return true } else { return false } } == true
                ? message : "\(message) (attempt \(envelope.attempt) of \(envelope.attemptsAllowed))"
            try await jobQueue.deadLetter(queue: job.queue, entryID: job.entryID, fields: envelope.fields, error: reason, worker: workerID)
            return .deadLettered(error: reason)
        } catch {
            logger.error("could not record the job's failure; it will be delivered again", metadata: ["error": "\(error)"])
            return .retried(error: message, delay: .zero)
        }
    }

    /// Acknowledges a job that finished after the worker stopped batching (it outlived the
    /// drain): at once, or it would run again once this worker is gone.
    private func acknowledgeLate(_ ack: Acknowledgement, logger: Logger) async {
        do {
            try await jobQueue.acknowledge([ack])
        } catch {
            logger.error("could not acknowledge a job that finished late; it will run again", metadata: ["error": "\(error)"])
        }
        inFlight.settle([ack.entryID])
    }

    private func handBack(_ job: FetchedJob, logger: Logger) async -> JobOutcome {
        do { try await jobQueue.handBack(queue: job.queue, entryIDs: [job.entryID], consumer: workerID) } catch {
            logger.warning("could not hand the job back; it will be reclaimed", metadata: ["error": "\(error)"])
        }
        return .handedBack
    }

    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        return text.count > 4000 ? String(text.prefix(4000)) + "…" : text
    }
}
