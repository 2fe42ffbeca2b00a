import ArgumentParser
import FoundationEssentials
import Logging
import Store

/// `--log-level`, and the logging system it sets up.
struct LoggingOptions: ParsableArguments {
    @Option(help: "trace, debug, info, notice, warning, error or critical. Env: LOG_LEVEL.")
    var logLevel: String = ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    /// Sends logs to stderr at the chosen level; returns the worker's logger.
    func bootstrap() -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "harrow.worker")
    }
}

/// `--database-url`.
struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .customLong("database-url"),
        help: "postgres://user:password@host:port/database?sslmode=disable|prefer|require. Env: DATABASE_URL.")
    var databaseURL: String? = ProcessInfo.processInfo.environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }

    func validate() throws {
        do {
            _ = try configuration()
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The database, or `nil` when none is configured.
    func configuration() throws -> DatabaseConfiguration? {
        try databaseURL.map { try DatabaseConfiguration(url: $0) }
    }

    /// The database; throws when none is configured.
    func requiredConfiguration() throws -> DatabaseConfiguration {
        guard let configuration = try configuration() else {
            throw ValidationError("no database: set DATABASE_URL or --database-url")
        }
        return configuration
    }
}
