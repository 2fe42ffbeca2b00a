import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Queue
import ServiceLifecycle

/// Runs jobs from Redis queues: fetches as many as it has free slots with one read across its
/// queues (blocking while idle, never polling), runs each handler under its type's timeout,
/// acknowledges in batches, retries with backoff, dead-letters what cannot succeed, keeps its
/// running jobs alive with heartbeats, and on graceful shutdown stops fetching, lets running
/// jobs finish within ``Options/shutdownTimeout`` and hands the rest back at once.
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
    private let lifecycle = NIOLockedValueBox(Lifecycle())

    private struct Lifecycle {
        var stopping = false
        var blockingConnection: RedisConnection?
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
    }

    var workerID: String { options.workerID }

    var isStopping: Bool { lifecycle.withLockedValue { $0.stopping } }

    public func run() async throws {
        let info = WorkerInfo(
            id: workerID, host: ProcessInfo.processInfo.hostName, pid: Int(ProcessInfo.processInfo.processIdentifier),
            queues: options.queues.names, concurrency: options.concurrency, startedAt: JobClock.nowMilliseconds())
        await withGracefulShutdownHandler {
            guard await self.register(info) else { return }
            self.logger.info(
                "worker started",
                metadata: [
                    "queues": "\(self.options.queues.names.joined(separator: ","))", "concurrency": "\(self.options.concurrency)",
                    "types": "\(self.registry.typeNames.joined(separator: ","))",
                ])
            await withDiscardingTaskGroup { background in
                background.addTask { await self.heartbeatLoop(info) }
                background.addTask { await self.watchdog.run() }
                if self.options.runsMaintenance {
                    let maintenance = QueueMaintenance(jobQueue: self.jobQueue, options: self.options, logger: self.logger)
                    background.addTask { await maintenance.run() }
                }
                await withDiscardingTaskGroup { processing in
                    processing.addTask { await self.acks.run() }
                    await self.processJobs()
                    self.acks.finish()
                }
                await self.handBackLeftovers()
                background.cancelAll()
            }
            do { try await self.jobQueue.deregister(workerID: self.workerID) } catch {
                self.logger.warning("could not deregister worker", metadata: ["error": "\(error)"])
            }
            self.logger.info("worker stopped")
        } onGracefulShutdown: {
            self.beginShutdown()
        }
    }

    /// Stops fetching and interrupts a blocking read. Running jobs go on.
    func beginShutdown() {
        let connection = lifecycle.withLockedValue { state -> RedisConnection? in
            state.stopping = true
            defer { state.blockingConnection = nil }
            return state.blockingConnection
        }
        logger.info("worker stopping: no new jobs", metadata: ["running": "\(gate.running)"])
        // Prefetched jobs stay pending for this worker until it hands them back at the end.
        for job in gate.close() { inFlight.remove(entryID: job.entryID) }
        connection?.closeNow()
    }

    /// Creates the queues' groups and the first heartbeat, retrying while Redis is unreachable.
    private func register(_ info: WorkerInfo) async -> Bool {
        var failures = 0
        while !isStopping && !Task.isCancelled {
            do {
                try await jobQueue.prepare(queues: options.queues.names)
                try await jobQueue.heartbeat(info, ttl: options.deadWorkerAfter * 2)
                return true
            } catch {
                failures += 1
                logger.warning("cannot reach Redis to start; retrying", metadata: ["error": "\(error)"])
                await sleepUnlessStopping(backoff(failures))
            }
        }
        return false
    }

    // MARK: Fetching

    /// Fetches until stopped, then waits for running jobs: up to the shutdown timeout, then
    /// cancels them (they hand themselves back) and waits a little more for them to end.
    private func processJobs() async {
        await withTaskCancellationHandler {
            await fetchLoop()
        } onCancel: {
            self.watchdog.cancelAll()
        }
        if await !gate.waitUntilIdle(timeout: options.shutdownTimeout) {
            logger.warning(
                "shutdown timeout reached; cancelling running jobs and handing them back", metadata: ["running": "\(gate.running)"])
            watchdog.cancelAll()
            if await !gate.waitUntilIdle(timeout: .seconds(10)) {
                logger.error(
                    "jobs ignore cancellation; leaving them to be reclaimed once this worker is gone",
                    metadata: ["running": "\(gate.running)"])
            }
        }
    }

    /// Fetches as many jobs as there are free slots with one script call; when nothing is
    /// ready, blocks on the empty queues until an entry arrives (no polling), then fetches again.
    private func fetchLoop() async {
        var failures = 0
        var random = SystemRandomNumberGenerator()
        while !isStopping && !Task.isCancelled {
            let slots = gate.snapshot()
            if slots.closed { break }
            let wanted = slots.free + options.prefetch - slots.prefetched
            // With slots idle, fetch at once; while every slot is busy, top up the prefetched jobs
            // only once half the window is gone, so each round trip brings a batch.
            if wanted <= 0 || (slots.free == 0 && wanted < (options.concurrency + options.prefetch + 1) / 2) {
                await gate.waitForChange(from: slots.generation)
                continue
            }
            var capped = false
            let open = options.queues.order(using: &random).compactMap { entry -> (name: String, limit: Int)? in
                let limit = entry.concurrencyLimit.map { min(wanted, $0 - (slots.perQueue[entry.name] ?? 0)) } ?? wanted
                if limit <= 0 { capped = true }
                return limit > 0 ? (entry.name, limit) : nil
            }
            if open.isEmpty {
                await gate.waitForChange(from: slots.generation)
                continue
            }
            do {
                if failures > 0 { try await recoverOrphans() }
                let ready = try await jobQueue.fetchReady(FetchRequest(queues: open, total: wanted), consumer: workerID)
                failures = 0
                // Stopped while the fetch was on its way: what it took stays pending for this
                // worker, which hands it back at the end, unstarted.
                if isStopping || Task.isCancelled { break }
                if !ready.deliveries.isEmpty {
                    await dispatch(ready.deliveries)
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
                try await jobQueue.waitForEntries(after: empty, block: block, connection: try await blockingConnection())
            } catch {
                if isStopping || Task.isCancelled { break }
                failures += 1
                dropBlockingConnection()
                let level: Logger.Level = failures == 1 ? .warning : .debug
                logger.log(level: level, "fetching failed; retrying", metadata: ["error": "\(error)", "failures": "\(failures)"])
                await sleepUnlessStopping(backoff(failures))
            }
        }
    }

    /// Holds the fetched jobs, queues them behind any prefetched ones, and starts those that have
    /// a slot. Malformed entries go to the dead letters.
    private func dispatch(_ deliveries: [Delivery]) async {
        var jobs: [FetchedJob] = []
        jobs.reserveCapacity(deliveries.count)
        let now = ContinuousClock.now
        for delivery in deliveries {
            switch delivery {
            case .malformed(let entry): await deadLetterMalformed(entry)
            case .job(let job):
                inFlight.hold(job.entryID)
                // A prefetched job waits in this process, and heartbeats keep it from being
                // reclaimed meanwhile; `process` replaces this entry with the running job's.
                let visibility = visibilityTimeout(for: job.envelope)
                inFlight.insert(
                    entryID: job.entryID,
                    InFlightTable.Entry(
                        queue: job.queue, refreshEvery: visibility / 3, lastRefresh: now, refreshUntil: .now + .seconds(86_400)))
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
            let task = Task {
                await self.process(job, watchID: watchID, timeout: timeout)
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
        for queue in options.queues.names {
            let pending = try await jobQueue.pendingEntryIDs(queue: queue, consumer: workerID)
            let orphans = pending.filter { !inFlight.isHeld($0) }
            guard !orphans.isEmpty else { continue }
            let returned = try await jobQueue.handBack(queue: queue, entryIDs: orphans, consumer: workerID)
            logger.warning("handed back deliveries lost with a connection", metadata: ["queue": "\(queue)", "jobs": "\(returned)"])
        }
    }

    private func blockingConnection() async throws -> RedisConnection {
        if let existing = lifecycle.withLockedValue({ $0.blockingConnection }), existing.isActive { return existing }
        let connection = try await jobQueue.redis.makeDedicatedConnection()
        let keep = lifecycle.withLockedValue { state -> Bool in
            guard !state.stopping else { return false }
            state.blockingConnection = connection
            return true
        }
        if !keep {
            await connection.close()
            throw CancellationError()
        }
        return connection
    }

    private func dropBlockingConnection() {
        let connection = lifecycle.withLockedValue { state -> RedisConnection? in
            defer { state.blockingConnection = nil }
            return state.blockingConnection
        }
        connection?.closeNow()
    }

    // MARK: Heartbeats and shutdown

    private func heartbeatLoop(_ info: WorkerInfo) async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: options.heartbeatInterval) } catch { return }
            do {
                try await jobQueue.heartbeat(info, ttl: options.deadWorkerAfter * 2)
                let due = inFlight.due(within: options.heartbeatInterval)
                if !due.isEmpty { try await jobQueue.refresh(due, consumer: workerID) }
            } catch { logger.warning("heartbeat failed", metadata: ["error": "\(error)"]) }
        }
    }

    /// Hands back everything this worker still holds at the end: deliveries whose reply was lost,
    /// and jobs whose outcome could not be recorded.
    private func handBackLeftovers() async {
        for queue in options.queues.names {
            do {
                let held = try await jobQueue.pendingEntryIDs(queue: queue, consumer: workerID)
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

    func backoff(_ failures: Int) -> Duration { .milliseconds(min(5000, 100 << min(failures - 1, 6))) }
}
