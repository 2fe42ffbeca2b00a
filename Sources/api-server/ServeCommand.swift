import APIServer
import ArgumentParser
import CommandSupport
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import Queue
import ServiceLifecycle
import Store
import UnixSignals

/// `api-server serve`: runs the API until SIGTERM or SIGINT.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve the API (the default command).",
        discussion: """
            Needs Postgres (DATABASE_URL), Redis (REDIS_URL) and HARROW_SECRET_KEY. Refuses to start unless the \
            database's migrations match this binary's; --migrate applies them first.
            """)

    @Option(help: "Address to listen on. Env: HARROW_API_HOST.") var host =
        ProcessInfo.processInfo.environment["HARROW_API_HOST"] ?? "127.0.0.1"
    @Option(help: "Port to listen on. Env: HARROW_API_PORT.") var port =
        Int(ProcessInfo.processInfo.environment["HARROW_API_PORT"] ?? "") ?? 8080
    @Option(help: "The web app's address, for links in mails. Env: HARROW_PUBLIC_URL.")
    var publicURL = ProcessInfo.processInfo.environment["HARROW_PUBLIC_URL"] ?? "http://localhost:8080"
    @Option(help: "Largest request body in bytes.") var bodyLimit = 1 << 20
    @Option(name: .customLong("redis-url"), help: "Env: REDIS_URL.")
    var redisURL = ProcessInfo.processInfo.environment["REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
    @Option(help: "Key prefix of every Redis key. Env: HARROW_KEY_PREFIX.")
    var keyPrefix = ProcessInfo.processInfo.environment["HARROW_KEY_PREFIX"] ?? "harrow"
    @Flag(help: "Apply pending database migrations before starting.") var migrate = false
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535") }
        guard bodyLimit >= 1024 else { throw ValidationError("--body-limit must be at least 1024") }
        guard URL(string: publicURL)?.scheme != nil else { throw ValidationError("--public-url must be an absolute URL") }
        do {
            _ = try RedisConfiguration(url: redisURL)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "harrow.api")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let keyring = try SecretKeyring(environment: ProcessInfo.processInfo.environment)
        let databaseConfiguration = try database.requiredConfiguration()
        let client = Database.makeClient(databaseConfiguration, logger: logger)
        let redis = RedisClient(configuration: try RedisConfiguration(url: redisURL), logger: logger)
        let configuration = APIConfiguration(
            host: host, port: port, publicURL: publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL, bodyLimit: bodyLimit,
            keyPrefix: keyPrefix)
        let app = buildApplication(
            configuration, dependencies: APIDependencies(database: client, redis: redis, keyring: keyring, metrics: registry),
            logger: logger,
            onServerRunning: { port in logger.info("api-server listening", metadata: ["host": "\(configuration.host)", "port": "\(port)"]) }
        )
        let migrator = Migrator(client: client, logger: logger)
        let migrate = self.migrate
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(service: redis), .init(service: client),
                    .init(service: CheckedService(app) { try await migrator.prepare(migrate: migrate) }),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
