import ArgumentParser

/// Measures the queue: enqueue rate, drain rate of one or more worker processes, latency from
/// enqueue to handler start, and what each job costs the worker and Redis. `scripts/bench` runs
/// it against a private Redis; every scenario prints one `key=value` line.
@main
struct QueueBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue-bench",
        abstract: "Benchmarks of Harrow's queue against a Redis you give it (use scripts/bench).",
        subcommands: [EnqueueScenario.self, DrainScenario.self, LatencyScenario.self, BacklogScenario.self])
}

/// Options every scenario takes.
struct BenchOptions: ParsableArguments {
    @Option(name: .customLong("redis-url"), help: "The Redis to measure against; it should be private to the benchmark.")
    var redisURL: String = "redis://127.0.0.1:6379/0"

    @Option(help: "Key prefix, so a benchmark never touches real queues.")
    var keyPrefix: String = "harrow-bench"

    @Option(help: "Label printed with every line (for example mem or aof).")
    var mode: String = "mem"
}
