import ArgumentParser
import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Queue
import ServiceLifecycle
import UnixSignals
import WorkerPool

#if canImport(Glibc)
    import Glibc
#endif

/// A job that records when it started relative to when it was enqueued (`t`, wall ns).
struct ProbeJob: Job {
    static let name = "probe"
    var t: Int64?
}

/// What a benchmark worker measured, written as JSON when it stops.
struct WorkerReport: Encodable {
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
        let now = BenchWorker.wallNanoseconds()
        let first = state.withLockedValue { state -> Bool in
            guard state.firstStart == 0 else { return false }
            state.firstStart = now
            return true
        }
        if first {
            let cpu = BenchWorker.cpuMicroseconds()
            state.withLockedValue { $0.cpuAtFirstStart = cpu }
        }
    }

    func finished(latency: Int64?) {
        let now = BenchWorker.wallNanoseconds()
        state.withLockedValue { state in
            state.jobs += 1
            state.lastEnd = max(state.lastEnd, now)
            if let latency { state.latencies.append(latency) }
        }
    }

    func report(idleRSS: Int) -> WorkerReport {
        let cpu = BenchWorker.cpuMicroseconds()
        return state.withLockedValue { state in
            WorkerReport(
                jobs: state.jobs, firstStartNanoseconds: state.firstStart, lastEndNanoseconds: state.lastEnd,
                cpuMicroseconds: state.jobs == 0 ? 0 : cpu - state.cpuAtFirstStart, idleRSSKiB: idleRSS,
                peakRSSKiB: BenchWorker.peakRSSKiB(), latenciesNanoseconds: state.latencies.sorted())
        }
    }
}

/// One worker process of a benchmark, started by `queue-bench`: the library's `Worker` with
/// `noop` and `probe` handlers that only count. Prints `ready` once started (with its idle RSS
/// measured), and writes its report when it stops on SIGTERM.
///
/// A separate executable, linked like `worker` (Foundation Essentials only), so its memory and
/// CPU are what a real worker's are; `queue-bench` needs all of Foundation to start processes.
@main struct BenchWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue-bench-worker", abstract: "A measuring worker (started by queue-bench).")

    @Option(name: .customLong("redis-url")) var redisURL: String
    @Option var keyPrefix: String
    @Option var queue: String
    @Option var concurrency = 10
    @Option var prefetch = 0
    @Option var report: String

    func run() async throws {
        // As `worker` does.
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        var configuration = try RedisConfiguration(url: redisURL)
        configuration.commandTimeout = .seconds(60)
        let logger = Self.logger()
        let jobQueue = JobQueue(
            redis: RedisClient(configuration: configuration, logger: logger), options: JobQueue.Options(keyPrefix: keyPrefix))
        let probe = RunProbe()
        var registry = JobRegistry()
        try registry.register(NoopJob.self) { _, _ in
            probe.started()
            probe.finished(latency: nil)
        }
        try registry.register(ProbeJob.self) { job, _ in
            let start = BenchWorker.wallNanoseconds()
            probe.started()
            probe.finished(latency: job.t.map { start - $0 })
        }
        let worker = Worker(
            queue: jobQueue, registry: registry,
            options: Worker.Options(queues: try QueueSelection(parsing: queue), concurrency: concurrency, prefetch: prefetch),
            logger: logger)
        let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm], logger: logger)
        async let running: Void = group.run()
        try await Task.sleep(for: .milliseconds(500))
        let idleRSS = BenchWorker.currentRSSKiB()
        BenchWorker.writeLine("ready")
        try await running
        let data = try JSONEncoder().encode(probe.report(idleRSS: idleRSS))
        try data.write(to: URL(filePath: report))
        await jobQueue.redis.close()
    }
}

extension BenchWorker {
    static func logger() -> Logger {
        var logger = Logger(label: "harrow.bench")
        logger.logLevel = .error
        return logger
    }

    /// This process's CPU time (user + system, all threads) in microseconds.
    static func cpuMicroseconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000 + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
    }

    /// This process's current RSS in KiB, from /proc.
    static func currentRSSKiB() -> Int { statusKiB("VmRSS:") }

    /// This process's peak RSS in KiB. Not `ru_maxrss`: Linux carries that over `execve`, so a
    /// process started by a bigger one reports its parent's size.
    static func peakRSSKiB() -> Int { statusKiB("VmHWM:") }

    private static func statusKiB(_ field: String) -> Int {
        guard let data = FileManager.default.contents(atPath: "/proc/self/status") else { return 0 }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix(field) {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }

    static func wallNanoseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    static func writeLine(_ line: String) {
        var text = line + "\n"
        text.withUTF8 { bytes in _ = write(1, bytes.baseAddress, bytes.count) }
    }
}
