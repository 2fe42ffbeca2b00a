import Foundation
import HarrowTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the built `worker` and `queue-inspect` executables against Redis only.
enum ProcessSupport {
    static func executable(_ name: String) -> URL {
        BuiltExecutables.url(name)
    }

    typealias Output = BuiltExecutables.Output

    /// Runs `queue-inspect` with `arguments` against Redis only, and waits for it (bounded).
    static func queueInspect(_ arguments: [String], redisURL: String, keyPrefix: String) async throws -> Output {
        var environment = ProcessInfo.processInfo.environment
        environment["REDIS_URL"] = redisURL
        environment["HARROW_KEY_PREFIX"] = keyPrefix
        environment["DATABASE_URL"] = nil
        return try await BuiltExecutables.run("queue-inspect", arguments, environment: environment, timeout: .seconds(30))
    }
}

/// A queue-only `worker` process, its log in a temp file.
final class WorkerProcess {
    let running: RunningExecutable

    init(
        queues: String, concurrency: Int = 10, redisURL: String, keyPrefix: String, shutdownTimeout: Double = 25,
        deadWorkerAfter: Double = 30, heartbeatInterval: Double = 5, logLevel: String = "info"
    ) throws {
        // These are queue-only workers: without a database, whatever `scripts/test` exports.
        running = try RunningExecutable(
            "worker",
            [
                "--queues", queues, "--concurrency", "\(concurrency)", "--redis-url", redisURL, "--key-prefix", keyPrefix,
                "--shutdown-timeout", "\(shutdownTimeout)", "--dead-worker-after", "\(deadWorkerAfter)", "--heartbeat-interval",
                "\(heartbeatInterval)", "--log-level", logLevel,
            ], environment: ProcessInfo.processInfo.environment.filter { $0.key != "DATABASE_URL" })
    }

    var isRunning: Bool { running.isRunning }

    func signal(_ signal: Int32) {
        running.signal(signal)
    }

    /// Waits for the process to exit and returns its status; throws when it has not within `timeout`.
    func waitForExit(timeout: Duration) async throws -> Int32 {
        try await running.waitForExit(timeout: timeout)
    }

    func log() -> String {
        running.log()
    }
}
