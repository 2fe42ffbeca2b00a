import ArgumentParser
import FoundationEssentials
import Logging
import Store

/// `--log-level`, and the logging system it sets up.
public struct LoggingOptions: ParsableArguments {
    @Option(help: "trace, debug, info, notice, warning, error or critical. Env: LOG_LEVEL.")
    public var logLevel: String = ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info"

    public init() {}

    public func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    /// Sends logs to stderr at the chosen level; returns a logger labelled `label`.
    public func bootstrap(label: String = "harrow.worker") -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}

/// `--database-url`.
public struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .customLong("database-url"),
        help: "postgres://user:password@host:port/database?sslmode=disable|prefer|require. Env: DATABASE_URL.")
    var databaseURLOption: String?

    /// `--database-url`, else `DATABASE_URL`.
    public var databaseURL: String? {
        databaseURLOption ?? ProcessInfo.processInfo.environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public init() {}

    public func validate() throws {
        do {
            _ = try configuration()
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The database, or `nil` when none is configured.
    public func configuration() throws -> DatabaseConfiguration? {
        try databaseURL.map { try DatabaseConfiguration(url: $0) }
    }

    /// The database; throws when none is configured.
    public func requiredConfiguration() throws -> DatabaseConfiguration {
        guard let configuration = try configuration() else {
            throw ValidationError("no database: set DATABASE_URL or --database-url")
        }
        return configuration
    }
}
