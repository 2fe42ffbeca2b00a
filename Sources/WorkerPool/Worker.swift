import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Queue
import ServiceLifecycle

/// Runs jobs from Redis queues: fetches as many as it has free slots with one read across its
/// queues (blocking while idle, never polling), runs each handler under its type's timeout,
/// acknowledges in batches, retries with backoff, dead-letters what cannot succeed, keeps its
/// running jobs alive with heartbeats, and on graceful shutdown stops fetching, hands back what it
/// has not started, lets running jobs finish within ``Options/shutdownTimeout``, then cancels
/// them and waits ``Options/cancellationGrace`` for them to end.
///
/// A job that is still running after that is never handed back (another worker would run it at
/// the same time): it stays this worker's, heartbeated, until it ends or the process is killed;
/// then the reclaimer redelivers it once this worker counts as dead.
///
/// A `Service`: run it in a `ServiceGroup`, which triggers the graceful shutdown on SIGTERM.
public final class Worker: Service, Sendable {
    public let jobQueue: JobQueue
    public let options: Options
    let registry: JobRegistry
    let middleware: [any JobMiddleware]
    let logger: Logger
    let gate: SlotGate
    let inFlight: InFlightTable
    let acks: AckBatcher
    let watchdog: TimeoutWatchdog
    let prefetch: PrefetchWindow
    /// The connections the fetch loop blocks on while the queues are empty.
    let reader: BlockingReader
    /// Where the worker's tasks and its jobs run (``Options/jobExecutor``).
    let jobExecutor: any TaskExecutor
    private let lifecycle = NIOLockedValueBox(Lifecycle())

    private struct Lifecycle {
        var stopping = false
        /// Prefetched jobs the closed gate returned, until they are handed back.
        var unstarted: [FetchedJob] = []
    }

    public init(
        queue: JobQueue, registry: JobRegistry, options: Options,
        middleware: [any JobMiddleware] = [LoggingMiddleware(), MetricsMiddleware()], logger: Logger
    ) {
        self.jobQueue = queue
        self.registry = registry
        self.options = options
        self.middleware = middleware
        var logger = logger
        logger[metadataKey: "worker"] = "\(options.workerID)"
        self.logger = logger
        self.gate = SlotGate(capacity: options.concurrency)
        let held = InFlightTable()
        self.inFlight = held
        self.acks = AckBatcher(queue: queue, logger: logger) { batch in held.settle(batch.map(\.entryID)) }
        // Timeouts fire at most a quarter of the shortest one late (between 10 ms and 1 s).
        let shortest = registry.entries.values.map(\.timeout).min() ?? .seconds(4)
        self.watchdog = TimeoutWatchdog(resolution: min(.seconds(1), max(.milliseconds(10), shortest / 4)))
        self.jobExecutor = options.jobExecutor ?? EventLoopTaskExecutor(eventLoop: queue.redis.eventLoopGroup.next())
        self.reader = BlockingReader(redis: queue.redis)
        self.prefetch = PrefetchWindow(
            fixed: options.prefetch, concurrency: options.concurrency, horizon: options.prefetchHorizon,
            maximum: Self.automaticPrefetchMaximum(concurrency: options.concurrency))
    }

    var workerID: String { options.workerID }

    /// Automatic prefetch's ceiling: ten times the concurrency, at least 100 (a round trip's
    /// worth of tiny jobs) and at most 1,000.
    static func automaticPrefetchMaximum(concurrency: Int) -> Int {
        min(1000, max(100, concurrency * 10))
    }

    var isStopping: Bool { lifecycle.withLockedValue { $0.stopping } }

    /// Runs until a graceful shutdown or cancellation.
    ///
    /// - Throws: ``WorkerError`` `invalidOptions` before anything starts when a visibility
    ///   timeout (the queue's default, or a registered type's) is shorter than three heartbeat
    ///   intervals: such jobs would be reclaimed while they run.
    public func run() async throws {
        try validateTimings()
        let info = WorkerInfo(
            id: workerID, host: ProcessInfo.processInfo.hostName, pid: Int(ProcessInfo.processInfo.processIdentifier),
            queues: options.queues.names, concurrency: options.concurrency, startedAt: jobQueue.options.clock.milliseconds(),
            deadAfter: options.deadWorkerAfter)
        // On one event loop of the Redis client, unless told otherwise: replies then resume
        // their tasks on the thread that read them.
        let heartbeats = HeartbeatThread(sharing: jobQueue, logger: logger)
        await withTaskExecutorPreference(jobExecutor) { await self.runPreferring(info, heartbeats: heartbeats) }
        await heartbeats.shutdown()
    }

    private func runPreferring(_ info: WorkerInfo, heartbeats: HeartbeatThread) async {
        await withGracefulShutdownHandler {
            guard let registeredAt = await self.register(info) else { return }
            self.logger.info(
                "worker started",
                metadata: [
                    "queues": "\(self.options.queues.names.joined(separator: ","))", "concurrency": "\(self.options.concurrency)",
                    "types": "\(self.registry.typeNames.joined(separator: ","))",
                ])
            let abandoned = await withDiscardingTaskGroup { background -> Int in
                background.addTask(executorPreference: EventLoopTaskExecutor(eventLoop: heartbeats.eventLoop)) {
                    await self.heartbeatLoop(info, lastBeat: registeredAt, on: heartbeats)
                }
                background.addTask { await self.watchdog.run() }
                if self.options.runsMaintenance {
                    let maintenance = QueueMaintenance(jobQueue: self.jobQueue, options: self.options, logger: self.logger)
                    background.addTask { await maintenance.run() }
                }
                let abandoned = await withDiscardingTaskGroup { processing -> Int in
                    processing.addTask { await self.acks.run() }
                    let abandoned = await self.processJobs()
                    self.acks.finish()
                    return abandoned
                }
                self.reader.closeNow()
                await self.handBackLeftovers()
                background.cancelAll()
                return abandoned
            }
            if abandoned == 0 {
                do { try await self.jobQueue.deregister(workerID: self.workerID) } catch {
                    self.logger.warning("could not deregister worker", metadata: ["error": "\(error)"])
                }
            }
            self.logger.info("worker stopped")
        } onGracefulShutdown: {
            self.beginShutdown()
        }
    }

    /// Refuses visibility timeouts that heartbeats cannot keep up with.
    func validateTimings() throws(WorkerError) {
        let minimum = options.heartbeatInterval * 3
        func refuse(_ what: String, _ visibility: Duration) -> WorkerError {
            WorkerError(
                code: .invalidOptions,
                message: """
                    \(what) has a visibility timeout of \(visibility), less than three heartbeat intervals \
                    (3 × \(options.heartbeatInterval)): its jobs would be redelivered while they run. Raise it to at \
                    least \(options.heartbeatInterval * 3) or lower --heartbeat-interval
                    """)
        }
        if jobQueue.options.defaultVisibilityTimeout < minimum {
            throw refuse("the queue's default", jobQueue.options.defaultVisibilityTimeout)
        }
        for entry in registry.entries.values.sorted(by: { $0.name < $1.name }) {
            if let visibility = entry.visibilityTimeout, visibility < minimum { throw refuse("job type \(entry.name)", visibility) }
        }
    }

    /// Stops fetching and interrupts a blocking read. Running jobs go on; prefetched ones wait,
    /// still heartbeated, to be handed back.
    func beginShutdown() {
        lifecycle.withLockedValue { $0.stopping = true }
        logger.info("worker stopping: no new jobs", metadata: ["running": "\(gate.running)"])
        lifecycle.withLockedValue { $0.unstarted += gate.close() }
        // Last: the fetch loop this wakes hands back `unstarted` at once, so it must hold them.
        reader.closeNow()
    }

    /// Creates the queues' groups, publishes the types' policies and sends the first heartbeat,
    /// retrying while Redis is unreachable. Returns the heartbeat's time (Redis clock), `nil`
    /// when stopped first.
    private func register(_ info: WorkerInfo) async -> Int64? {
        var failures = 0
        while !isStopping && !Task.isCancelled {
            do {
                try await jobQueue.prepare(queues: options.queues.names)
                try await jobQueue.publishPolicies(registry.policies, queues: options.queues.names)
                return try await jobQueue.heartbeat(info, ttl: options.deadWorkerAfter * 2)
            } catch {
                failures += 1
                logger.warning("cannot reach Redis to start; retrying", metadata: ["error": "\(error)"])
                await sleepUnlessStopping(RetryPolicy.Backoff.reconnect.delay(afterAttempt: failures))
            }
        }
        return nil
    }

    // MARK: Fetching

    /// Fetches until stopped; hands back what never started; waits for running jobs up to the
    /// shutdown timeout (skipped when cancelled), then cancels them and waits the cancellation
    /// grace. Jobs that ignore cancellation keep this worker (and their heartbeats) until they
    /// end; when the worker itself is cancelled they are left pending for the reclaimer instead.
    /// Returns how many jobs were still running when it gave up on them.
    private func processJobs() async -> Int {
        await withTaskCancellationHandler {
            await fetchLoop()
        } onCancel: {
            self.watchdog.cancelAll()
        }
        await handBackUnstarted()
        if !Task.isCancelled, await !gate.waitUntilIdle(timeout: options.shutdownTimeout) {
            logger.warning(
                "shutdown timeout reached; cancelling running jobs", metadata: ["running": "\(gate.running)"])
        }
        guard gate.running > 0 else { return 0 }
        watchdog.cancelAll()
        if await gate.waitUntilIdle(timeout: options.cancellationGrace) { return 0 }
        if Task.isCancelled {
            logger.error(
                "jobs ignore cancellation; leaving them to be reclaimed once this worker is gone",
                metadata: ["running": "\(gate.running)"])
            return gate.running
        }
        logger.error(
            "jobs ignore cancellation; this worker keeps them and their heartbeats until they end or the process is killed",
            metadata: ["running": "\(gate.running)"])
        _ = await gate.waitUntilIdle(timeout: nil)
        return gate.running
    }

    /// Fetches as many jobs as there are free slots with one script call; when nothing is
    /// ready, blocks on the empty queues until an entry arrives (no polling), then fetches again.
    private func fetchLoop() async {
        var failures = 0
        // Queues the last fetch could not read (their master down), to log each change once.
        var unreadable: Set<String> = []
        var random = SystemRandomNumberGenerator()
        while !isStopping && !Task.isCancelled {
            let slots = gate.snapshot()
            if slots.closed { break }
            let window = prefetch.size
            let wanted = slots.free + window - slots.prefetched
            // With slots idle, fetch at once; while every slot is busy, top up the prefetched jobs
            // only once half the window is gone, so each round trip brings a batch.
            if wanted <= 0 || (slots.free == 0 && wanted < (options.concurrency + window + 1) / 2) {
                await waitForSlot(slots)
                continue
            }
            var capped = false
            let open = options.queues.order(using: &random).compactMap { entry -> (name: String, limit: Int)? in
                let limit = entry.concurrencyLimit.map { min(wanted, $0 - (slots.perQueue[entry.name] ?? 0)) } ?? wanted
                if limit <= 0 { capped = true }
                return limit > 0 ? (entry.name, limit) : nil
            }
            if open.isEmpty {
                await waitForSlot(slots)
                continue
            }
            do {
                if failures > 0 {
                    // Best effort: what stays behind is redelivered once its visibility timeout passes.
                    do { try await recoverOrphans() } catch {
                        logger.debug("could not look for lost deliveries", metadata: ["error": "\(error)"])
                    }
                }
                let ready = try await jobQueue.fetchReady(FetchRequest(queues: open, total: wanted), consumer: workerID)
                failures = 0
                let unavailable = Set(ready.unavailable.keys)
                if unavailable != unreadable {
                    if !unavailable.isEmpty {
                        logger.warning(
                            "some queues cannot be read; reading the others",
                            metadata: [
                                "queues": "\(unavailable.sorted().joined(separator: ","))", "error": "\(ready.unavailable.values.first!)",
                            ])
                    }
                    unreadable = unavailable
                }
                // Stopped while the fetch was on its way: what it took stays pending for this
                // worker, which hands it back, unstarted.
                if isStopping || Task.isCancelled { break }
                if !ready.deliveries.isEmpty {
                    await dispatch(ready.deliveries)
                    continue
                }
                // Nothing more to fetch while jobs already wait here for busy slots: wait for a
                // slot (or the stall) rather than on Redis, which a finished job does not wake.
                if prefetch.fixed == nil && slots.free == 0 && slots.prefetched > 0 {
                    await waitForSlot(slots)
                    continue
                }
                let empty = open.compactMap { queue in ready.emptyQueues[queue.name].map { (queue: queue.name, id: $0) } }
                if empty.isEmpty {
                    await sleepUnlessStopping(options.blockTimeout)
                    continue
                }
                // A queue at its own limit gets no wake-up from Redis when one of its jobs ends,
                // so while one is capped, wake up often enough to serve it.
                let block = capped ? min(options.blockTimeout, .milliseconds(50)) : options.blockTimeout
                try await jobQueue.waitForEntries(after: empty, block: block, reader: reader)
            } catch {
                if isStopping || Task.isCancelled { break }
                failures += 1
                reader.reset()
                let level: Logger.Level = failures == 1 ? .warning : .debug
                logger.log(level: level, "fetching failed; retrying", metadata: ["error": "\(error)", "failures": "\(failures)"])
                await sleepUnlessStopping(RetryPolicy.Backoff.reconnect.delay(afterAttempt: failures))
            }
        }
    }

    /// Waits until a slot frees. With automatic prefetch and jobs waiting behind busy slots, it
    /// waits at most the stall limit: jobs that would wait longer go back to the stream (another
    /// worker may be idle), and none are fetched ahead until a job here finishes.
    private func waitForSlot(_ slots: SlotGate.Snapshot) async {
        guard prefetch.fixed == nil && slots.free == 0 && slots.prefetched > 0 else {
            await gate.waitForChange(from: slots.generation)
            return
        }
        if await gate.waitForChange(from: slots.generation, timeout: options.prefetchStall) { return }
        // Only if still no slot turned over: a job that finished meanwhile proves the pace.
        guard let withdrawn = gate.withdrawPrefetched(ifUnchangedSince: slots.generation) else { return }
        prefetch.stall()
        logger.info("slots stayed busy; handing back prefetched jobs", metadata: ["jobs": "\(withdrawn.count)"])
        await handBack(withdrawn)
    }

    /// Holds the fetched jobs, queues them behind any prefetched ones, and starts those that have
    /// a slot. Malformed entries, and jobs whose own visibility timeout heartbeats cannot keep,
    /// go to the dead letters. A job that names no attempt limit gets its type's.
    private func dispatch(_ deliveries: [Delivery]) async {
        var jobs: [FetchedJob] = []
        jobs.reserveCapacity(deliveries.count)
        for delivery in deliveries {
            switch delivery {
            case .malformed(let entry): await deadLetterMalformed(entry)
            case .job(var job):
                if let visibility = job.envelope.visibilityTimeout, Duration.milliseconds(visibility) < options.heartbeatInterval * 3 {
                    // Refused rather than run: it would be redelivered while it runs. No attempt is
                    // counted; retried from the dead list unchanged, it is refused again.
                    await deadLetterMalformed(
                        MalformedEntry(
                            queue: job.queue, entryID: job.entryID, fields: job.envelope.fields,
                            reason: """
                                job refused: visibility_timeout \(visibility) ms is less than three heartbeat intervals of \
                                this worker (3 × \(options.heartbeatInterval)), so it would be redelivered while it runs; \
                                enqueue it with a visibility_timeout of at least \(JobQueue.milliseconds(options.heartbeatInterval * 3)) ms \
                                or lower the workers' --heartbeat-interval
                                """))
                    continue
                }
                job.envelope.maxAttempts =
                    job.envelope.maxAttempts ?? registry[job.envelope.type]?.retryPolicy.maxAttempts ?? JobEnvelope.defaultMaxAttempts
                inFlight.hold(job.entryID)
                // A prefetched job waits in this process, and heartbeats keep it from being
                // reclaimed meanwhile; `process` replaces this entry with the running job's.
                let visibility = visibilityTimeout(for: job.envelope)
                inFlight.insert(
                    entryID: job.entryID,
                    InFlightTable.Entry(
                        queue: job.queue, uniqueKey: job.envelope.uniqueKey, jobID: job.envelope.id, visibility: visibility))
                jobs.append(job)
            }
        }
        start(gate.admit(jobs))
    }

    /// Starts a task per job, each already holding a slot. Job tasks are not children of the
    /// worker's: the watchdog keeps them, so it can cancel one at its timeout without a second
    /// task per job to race it. A finished job's task starts the prefetched jobs its slot frees.
    private func start(_ jobs: [FetchedJob]) {
        for job in jobs {
            let timeout = timeout(for: job.envelope)
            let watchID = watchdog.reserve()
            // Run times matter only to automatic prefetch: a fixed window skips the clock and the lock.
            let paced = prefetch.fixed == nil
            let task = Task(executorPreference: jobExecutor) {
                let started = paced ? ContinuousClock.now : nil
                await self.process(job, watchID: watchID, timeout: timeout)
                if let started { self.prefetch.record(ContinuousClock.now - started) }
                self.start(self.gate.release(queue: job.queue))
            }
            watchdog.watch(watchID, task: task, until: .now + timeout)
        }
    }

    private func deadLetterMalformed(_ entry: MalformedEntry) async {
        logger.error(
            "malformed job entry dead-lettered",
            metadata: ["queue": "\(entry.queue)", "entry_id": "\(entry.entryID)", "reason": "\(entry.reason)"])
        var fields = entry.fields
        if fields["id"] == nil { fields["id"] = entry.entryID }
        do {
            try await jobQueue.deadLetter(queue: entry.queue, entryID: entry.entryID, fields: fields, error: entry.reason, worker: workerID)
        } catch { logger.warning("could not dead-letter a malformed entry; it will be reclaimed", metadata: ["error": "\(error)"]) }
    }

    /// After a failed read or write, Redis may have delivered entries whose reply never arrived:
    /// they are pending for this worker, which does not know them. Hand them back now rather
    /// than after their visibility timeout.
    private func recoverOrphans() async throws {
        // Queue by queue to the end: on a cluster one whose master is down must not keep the
        // others' orphans from going back.
        var firstError: (any Error)?
        for queue in options.queues.names {
            do {
                let pending = try await jobQueue.pendingEntryIDs(queue: queue, consumer: workerID)
                let orphans = pending.filter { !inFlight.isHeld($0) }
                guard !orphans.isEmpty else { continue }
                let returned = try await jobQueue.handBack(queue: queue, entryIDs: orphans, consumer: workerID)
                logger.warning("handed back deliveries lost with a connection", metadata: ["queue": "\(queue)", "jobs": "\(returned)"])
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
    }

    // MARK: Heartbeats and shutdown

    /// Beats every ``Options/heartbeatInterval`` (every second while Redis is away) and refreshes
    /// the entries that need it. After a gap, when Redis was unreachable or this process stalled
    /// for longer than an interval and a half, it refreshes every entry it holds and publishes its
    /// types' policies again: pending entries' idle times then include the gap, and a Redis
    /// restarted without its data lost them. The reclaimer waits for this (see QueueMaintenance).
    private func heartbeatLoop(_ info: WorkerInfo, lastBeat registeredAt: Int64, on heartbeats: HeartbeatThread) async {
        let jobQueue = heartbeats.jobQueue
        var lastBeat = registeredAt
        var failed = false
        while !Task.isCancelled {
            do { try await heartbeats.sleep(for: failed ? min(options.heartbeatInterval, .seconds(1)) : options.heartbeatInterval) } catch {
                return
            }
            // The beat and the refreshes apart: on a Redis Cluster they go to different masters,
            // and one that is down must not keep the others' jobs from being refreshed.
            let (held, locks) = inFlight.snapshot()
            var beat: Duration?
            var errors: [any Error] = []
            do {
                let now = try await jobQueue.heartbeat(info, ttl: options.deadWorkerAfter * 2)
                beat = .milliseconds(now - lastBeat)
                lastBeat = now
            } catch { errors.append(error) }
            // Every held entry, every beat (one XCLAIM per queue): then any visibility timeout of
            // at least three beats is safe, whichever source the reclaimer reads it from.
            do { try await jobQueue.refresh(held, consumer: workerID) } catch { errors.append(error) }
            do { try await jobQueue.extend(locks) } catch { errors.append(error) }
            if let gap = beat, errors.isEmpty, failed || gap > options.heartbeatInterval * 3 / 2 {
                logger.notice(
                    "heartbeat back after a gap; refreshed every held job", metadata: ["gap": "\(gap)", "jobs": "\(held.count)"])
                // After the refresh, so a failure here cannot hold the refreshes back.
                do { try await jobQueue.publishPolicies(registry.policies, queues: options.queues.names) } catch {
                    logger.warning("could not publish the job types' policies", metadata: ["error": "\(error)"])
                }
            }
            if let error = errors.first, !failed { logger.warning("heartbeat failed", metadata: ["error": "\(error)"]) }
            failed = !errors.isEmpty
        }
    }

    /// Hands back, at the start of a shutdown, what this worker holds but never started: the
    /// prefetched jobs, and deliveries whose reply was lost.
    private func handBackUnstarted() async {
        // The gate closed under the same lock as in beginShutdown: jobs it returned there are
        // in `unstarted` by the time this reads it.
        let unstarted = lifecycle.withLockedValue { state in
            defer { state.unstarted.removeAll() }
            return state.unstarted + gate.close()
        }
        await handBack(unstarted)
        do { try await recoverOrphans() } catch {
            logger.warning("could not look for lost deliveries at shutdown", metadata: ["error": "\(error)"])
        }
    }

    /// Puts jobs this worker fetched but will not start back into their streams (no attempt
    /// counted); what cannot be handed back is reclaimed once its heartbeats stop.
    private func handBack(_ jobs: [FetchedJob]) async {
        for (queue, jobs) in Dictionary(grouping: jobs, by: \.queue) {
            let ids = jobs.map(\.entryID)
            do {
                let returned = try await jobQueue.handBack(queue: queue, entryIDs: ids, consumer: workerID)
                if returned > 0 { logger.info("handed back prefetched jobs", metadata: ["queue": "\(queue)", "jobs": "\(returned)"]) }
            } catch {
                logger.warning("could not hand back prefetched jobs; they will be reclaimed", metadata: ["error": "\(error)"])
            }
            for id in ids { inFlight.remove(entryID: id) }
            inFlight.settle(ids)
        }
    }

    /// Hands back what this worker still holds at the end and is not running: jobs whose outcome
    /// could not be recorded. A job still running stays pending under this worker.
    private func handBackLeftovers() async {
        for queue in options.queues.names {
            do {
                let held = try await jobQueue.pendingEntryIDs(queue: queue, consumer: workerID).filter { !inFlight.isHeld($0) }
                let returned = try await jobQueue.handBack(queue: queue, entryIDs: held, consumer: workerID)
                if returned > 0 { logger.info("handed back jobs at shutdown", metadata: ["queue": "\(queue)", "jobs": "\(returned)"]) }
                try await jobQueue.removeConsumer(queue: queue, consumer: workerID)
            } catch {
                logger.warning(
                    "could not hand back jobs at shutdown; they will be reclaimed", metadata: ["queue": "\(queue)", "error": "\(error)"])
            }
        }
    }

    private func sleepUnlessStopping(_ duration: Duration) async {
        let deadline = ContinuousClock.now + duration
        while !isStopping && !Task.isCancelled && ContinuousClock.now < deadline {
            try? await Task.sleep(for: min(.milliseconds(100), deadline - ContinuousClock.now))
        }
    }
}
