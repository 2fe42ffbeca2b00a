/// What a `queue-bench-worker` measured: the JSON it writes when it stops.
struct WorkerReport: Decodable {
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
