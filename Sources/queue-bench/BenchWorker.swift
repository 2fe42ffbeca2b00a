import ArgumentParser
import Foundation
import Logging
import NIOConcurrencyHelpers
import Queue
import ServiceLifecycle
import UnixSignals
import WorkerPool

/// A job that records when it started relative to when it was enqueued (`t`, wall ns).
struct ProbeJob: Job {
    static let name = "probe"
    var t: Int64?
}

/// What a benchmark worker measured, written as JSON when it stops.
struct WorkerReport: Codable {
    var jobs: Int
    var firstStartNanoseconds: Int64
    var lastEndNanoseconds: Int64
    /// CPU the process used from the first job's start to its stop, µs.
    var cpuMicroseconds: Double
    var idleRSSKiB: Int
    var peakRSSKiB: Int
    /// Enqueue-to-start latencies of `probe` jobs with a `t`, ns, sorted.
    var latenciesNanoseconds: [Int64]
}

/// Counts runs from every handler task.
final class RunProbe: Sendable {
    private struct State {
        var jobs = 0
        var firstStart: Int64 = 0
        var lastEnd: Int64 = 0
        var cpuAtFirstStart = 0.0
        var latencies: [Int64] = []
    }

    private let state = NIOLockedValueBox(State())

    func started() {
        let now = BenchSupport.wallNanoseconds()
        let first = state.withLockedValue { state -> Bool in
            guard state.firstStart == 0 else { return false }
            state.firstStart = now
            return true
        }
        if first {
            let cpu = BenchSupport.processUsage().cpuMicroseconds
            state.withLockedValue { $0.cpuAtFirstStart = cpu }
        }
    }

    func finished(latency: Int64?) {
        let now = BenchSupport.wallNanoseconds()
        state.withLockedValue { state in
            state.jobs += 1
            state.lastEnd = max(state.lastEnd, now)
            if let latency { state.latencies.append(latency) }
        }
    }

    func report(idleRSS: Int) -> WorkerReport {
        let usage = BenchSupport.processUsage()
        return state.withLockedValue { state in
            WorkerReport(
                jobs: state.jobs, firstStartNanoseconds: state.firstStart, lastEndNanoseconds: state.lastEnd,
                cpuMicroseconds: state.jobs == 0 ? 0 : usage.cpuMicroseconds - state.cpuAtFirstStart, idleRSSKiB: idleRSS,
                peakRSSKiB: usage.maxRSSKiB, latenciesNanoseconds: state.latencies.sorted())
        }
    }
}

/// One worker process of a benchmark: the library's `Worker` with `noop` and `probe` handlers
/// that only count. Prints `ready` once started (with its idle RSS measured), and writes its
/// report when it stops on SIGTERM.
struct BenchWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "A measuring worker (started by the scenarios).")

    @OptionGroup var options: BenchOptions
    @Option var queue: String
    @Option var concurrency = 10
    @Option var report: String

    func run() async throws {
        let jobQueue = try BenchSupport.makeQueue(options)
        let probe = RunProbe()
        var registry = JobRegistry()
        try registry.register(NoopJob.self) { _, _ in
            probe.started()
            probe.finished(latency: nil)
        }
        try registry.register(ProbeJob.self) { job, _ in
            let start = BenchSupport.wallNanoseconds()
            probe.started()
            probe.finished(latency: job.t.map { start - $0 })
        }
        let logger = BenchSupport.logger()
        let worker = Worker(
            queue: jobQueue, registry: registry,
            options: Worker.Options(queues: try QueueSelection(parsing: queue), concurrency: concurrency),
            logger: logger)
        let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm], logger: logger)
        async let running: Void = group.run()
        try await Task.sleep(for: .milliseconds(500))
        let idleRSS = BenchSupport.currentRSSKiB()
        BenchSupport.writeLine("ready")
        try await running
        let data = try JSONEncoder().encode(probe.report(idleRSS: idleRSS))
        try data.write(to: URL(fileURLWithPath: report))
        await jobQueue.redis.close()
    }
}
