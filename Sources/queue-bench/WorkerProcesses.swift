import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Benchmark worker processes (`queue-bench-worker`, next to this executable), started and
/// stopped by a scenario.
final class WorkerProcesses {
    private var processes: [(process: Process, output: Pipe, report: URL)] = []

    init(count: Int, queue: String, concurrency: Int, prefetch: Int = 0, options: BenchOptions) throws {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("queue-bench-worker")
        for index in 0..<count {
            let report = FileManager.default.temporaryDirectory.appendingPathComponent("harrow-bench-\(getpid())-\(index).json")
            let process = Process()
            process.executableURL = executable
            process.arguments = [
                "--redis-url", options.redisURL, "--key-prefix", options.keyPrefix, "--queue", queue, "--concurrency", "\(concurrency)",
                "--prefetch", "\(prefetch)", "--report", report.path,
            ]
            let output = Pipe()
            process.standardOutput = output
            try Self.runUnblocked(process)
            processes.append((process, output, report))
        }
        for entry in processes {
            let line = entry.output.fileHandleForReading.readLine()
            guard line == "ready" else { throw BenchError("a benchmark worker did not start (said \(line ?? "nothing"))") }
        }
    }

    var pids: [Int32] { processes.map(\.process.processIdentifier) }

    /// Stops every worker with SIGTERM and reads their reports.
    func stop() throws -> [WorkerReport] {
        for entry in processes { kill(entry.process.processIdentifier, SIGTERM) }
        return try processes.map { entry in
            entry.process.waitUntilExit()
            guard entry.process.terminationStatus == 0 else {
                throw BenchError("a benchmark worker exited with status \(entry.process.terminationStatus)")
            }
            let data = try Data(contentsOf: entry.report)
            try? FileManager.default.removeItem(at: entry.report)
            return try JSONDecoder().decode(WorkerReport.self, from: data)
        }
    }

    deinit { for entry in processes where entry.process.isRunning { kill(entry.process.processIdentifier, SIGKILL) } }

    /// Swift concurrency's threads block SIGTERM, and a child inherits the mask: unblock it for
    /// the spawn so the worker can be stopped gracefully.
    static func runUnblocked(_ process: Process) throws {
        var none = sigset_t()
        sigemptyset(&none)
        var previous = sigset_t()
        pthread_sigmask(SIG_SETMASK, &none, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension FileHandle {
    /// Reads one line (without its newline), byte by byte: only for short handshakes.
    func readLine() -> String? {
        var bytes: [UInt8] = []
        while true {
            let data = readData(ofLength: 1)
            guard let byte = data.first else { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
    }
}
