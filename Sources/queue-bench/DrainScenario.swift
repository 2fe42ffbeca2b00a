import ArgumentParser
import Foundation
import NIOCore
import Queue

/// N queued `noop` jobs drained by one (or more) worker processes, and the cost per job.
///
/// By default the workers are the `worker` binary users run, with its default options (only
/// `--concurrency`, and `--prefetch` when given): jobs/s from resuming the queue to finding it
/// empty, CPU and memory read from `/proc`. `--runner bench` uses `queue-bench-worker` (the
/// library's `Worker` alone) and measures from the first handler start to the last end inside it.
///
/// `--queues N` spreads the jobs evenly over N queues, all read by every worker (`--queues a,b,c`);
/// on a Redis Cluster the queues sit on different masters, and Redis's CPU is read on each.
struct DrainScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "drain", abstract: "Drain rate and cost per job.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Jobs to drain.") var jobs = 100_000
    @Option(help: "Concurrency of each worker.") var concurrency = 10
    @Option(help: "Jobs each worker fetches ahead of its free slots (default: the worker's own default, auto; 0 for queue-bench-worker).")
    var prefetch: Int?
    @Option(help: "worker (the binary users run) or bench (queue-bench-worker).") var runner = "worker"
    @Option(help: "Worker processes.") var workers = 1
    @Option(help: "Queues the jobs are spread over evenly (on a cluster, over the masters).") var queues = 1

    func run() async throws {
        let queue = try BenchSupport.makeQueue(options)
        try await BenchSupport.reset(queue)
        let names = try await BenchSupport.queueNames(queues, base: "bench-drain", redis: queue.redis)
        let nodes = try await BenchSupport.redisNodes(serving: names, redis: queue.redis)
        try await queue.prepare(queues: names)
        for (index, name) in names.enumerated() {
            try await BenchSupport.enqueueNoops(jobs / queues + (index < jobs % queues ? 1 : 0), queue: name, on: queue)
            // Held paused while the workers start, so the window holds only draining.
            try await queue.pause(queue: name)
        }
        if runner == "worker" {
            try await drainWithWorkers(queue, names, nodes: nodes)
            return
        }
        guard runner == "bench" else { throw BenchError("--runner is worker or bench") }
        let prefetch = self.prefetch ?? 0
        let processes = try WorkerProcesses(
            count: workers, queue: names.joined(separator: ","), concurrency: concurrency, prefetch: prefetch, options: options)
        try await BenchSupport.sendToEach(RedisCommand("CONFIG", ["RESETSTAT"]), nodes: nodes, redis: queue.redis)
        let before = try await BenchSupport.RedisCounters.read(queue.redis, nodes: nodes)
        for name in names { try await queue.resume(queue: name) }
        try await BenchSupport.waitUntilEmpty(queue, names)
        let after = try await BenchSupport.RedisCounters.read(queue.redis, nodes: nodes)
        let reports = try processes.stop()
        let ran = reports.reduce(0) { $0 + $1.jobs }
        guard ran >= jobs else { throw BenchError("the workers ran \(ran) of \(jobs) jobs") }
        let first = reports.filter { $0.jobs > 0 }.map(\.firstStartNanoseconds).min() ?? 0
        let last = reports.map(\.lastEndNanoseconds).max() ?? 0
        let seconds = Double(last - first) / 1e9
        let workerCPU = reports.reduce(0) { $0 + $1.cpuMicroseconds }
        // The two INFO calls and the stats polls are the harness's, not the queue's.
        emit(
            prefetch: "\(prefetch)", runner: "bench", jobsPerSecond: Double(jobs) / seconds, workerCPU: workerCPU, redis: (before, after),
            idleRSSKiB: reports.map(\.idleRSSKiB).max() ?? 0, peakRSSKiB: reports.map(\.peakRSSKiB).max() ?? 0)
        try await BenchSupport.reset(queue)
        await queue.redis.close()
    }

    /// The drain with `worker` processes, measured from outside.
    private func drainWithWorkers(_ queue: JobQueue, _ names: [String], nodes: [RedisConfiguration.Address]) async throws {
        let arguments = ["--concurrency", "\(concurrency)"] + (prefetch.map { ["--prefetch", "\($0)"] } ?? [])
        let processes = try RealWorkers(count: workers, queue: names.joined(separator: ","), arguments: arguments, options: options)
        let started = ContinuousClock.now
        while try await queue.liveWorkers().count < workers {
            guard ContinuousClock.now - started < .seconds(30) else { throw BenchError("the workers did not start within 30 s") }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Settled: their first fetch has found the queue paused.
        try await Task.sleep(for: .milliseconds(300))
        let idleRSS = processes.rssKiB(peak: false)
        try await BenchSupport.sendToEach(RedisCommand("CONFIG", ["RESETSTAT"]), nodes: nodes, redis: queue.redis)
        let before = try await BenchSupport.RedisCounters.read(queue.redis, nodes: nodes)
        let cpuBefore = processes.cpuMicroseconds()
        let resumed = ContinuousClock.now
        for name in names { try await queue.resume(queue: name) }
        // A worker finds a paused queue on a fetch and looks again after its block timeout: the
        // window starts when the first jobs are done (the streams shrink), and counts the rest.
        var (begin, left) = (ContinuousClock.now, jobs)
        while true {
            let length = try await BenchSupport.streamLength(queue, names)
            if length < jobs {
                (begin, left) = (ContinuousClock.now, length)
                break
            }
            try await Task.sleep(for: .milliseconds(1))
        }
        // Acknowledged jobs are deleted from the stream: it is empty when every job is done. XLEN
        // costs Redis next to nothing, unlike the stats script.
        while try await BenchSupport.streamLength(queue, names) > 0 { try await Task.sleep(for: .milliseconds(2)) }
        // (A tiny run may be done before the first look: then it counts from the resume.)
        if left == 0 { (begin, left) = (resumed, jobs) }
        let elapsed = ContinuousClock.now - begin
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let cpu = processes.cpuMicroseconds() - cpuBefore
        let after = try await BenchSupport.RedisCounters.read(queue.redis, nodes: nodes)
        let peakRSS = processes.rssKiB(peak: true)
        try processes.stop()
        emit(
            prefetch: prefetch.map { "\($0)" } ?? "auto", runner: "worker", jobsPerSecond: Double(left) / seconds, workerCPU: cpu,
            redis: (before, after), idleRSSKiB: idleRSS, peakRSSKiB: peakRSS)
        try await BenchSupport.reset(queue)
        await queue.redis.close()
    }

    /// Prints the drain's line; per-job figures are over all `jobs`.
    private func emit(
        prefetch: String, runner: String, jobsPerSecond: Double, workerCPU: Double,
        redis: (before: BenchSupport.RedisCounters, after: BenchSupport.RedisCounters), idleRSSKiB: Int, peakRSSKiB: Int
    ) {
        BenchSupport.emit(
            "drain",
            [
                ("n", "\(jobs)"), ("workers", "\(workers)"), ("conc", "\(concurrency)"), ("prefetch", prefetch), ("runner", runner),
                ("queues", "\(queues)"), ("jobs_per_s", BenchSupport.format(jobsPerSecond, decimals: 0)),
                ("worker_cpu_us_per_job", BenchSupport.format(workerCPU / Double(jobs), decimals: 2)),
            ] + BenchSupport.RedisCounters.fields(redis.before, redis.after, jobs: jobs) + [
                ("worker_idle_rss_mb", BenchSupport.format(Double(idleRSSKiB) / 1024)),
                ("worker_rss_mb", BenchSupport.format(Double(peakRSSKiB) / 1024)), ("redis", options.mode),
            ])
    }
}
