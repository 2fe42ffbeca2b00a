import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `worker` processes, the binary users run (next to this executable), started with only the
/// options a scenario names: what users get is what is measured. Their figures are read from
/// outside, from `/proc`.
final class RealWorkers {
    private var processes: [Process] = []

    /// Starts `count` workers reading `queue` with `arguments` (such as `--concurrency 10`),
    /// without a database (the queue only).
    init(count: Int, queue: String, arguments: [String], options: BenchOptions) throws {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("worker")
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = nil
        environment["REDIS_URL"] = options.redisURL
        environment["HARROW_KEY_PREFIX"] = options.keyPrefix
        for _ in 0..<count {
            let process = Process()
            process.executableURL = executable
            process.arguments = ["--queues", queue, "--log-level", "warning"] + arguments
            process.environment = environment
            process.standardOutput = FileHandle.nullDevice
            try WorkerProcesses.runUnblocked(process)
            processes.append(process)
        }
    }

    var pids: [Int32] { processes.map(\.processIdentifier) }

    /// CPU time the workers used so far (user + system), in µs.
    func cpuMicroseconds() -> Double {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return pids.reduce(0) { total, pid in
            // Fields after the command's closing parenthesis: state is the 3rd, utime the 14th.
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return total }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return total }
            return total + (user + system) / ticks * 1_000_000
        }
    }

    /// The largest of the workers' `VmRSS` (now) or `VmHWM` (peak), in KiB.
    func rssKiB(peak: Bool) -> Int {
        let field = peak ? "VmHWM:" : "VmRSS:"
        return pids.compactMap { pid -> Int? in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
            let line = status.split(whereSeparator: \.isNewline).first { $0.hasPrefix(field) }
            return line.flatMap { Int($0.dropFirst(field.count).split(whereSeparator: \.isWhitespace).first ?? "") }
        }.max() ?? 0
    }

    /// Stops every worker with SIGTERM and waits for them.
    func stop() throws {
        for process in processes { kill(process.processIdentifier, SIGTERM) }
        for process in processes {
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw BenchError("a worker exited with status \(process.terminationStatus)") }
        }
        processes.removeAll()
    }

    deinit { for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}
