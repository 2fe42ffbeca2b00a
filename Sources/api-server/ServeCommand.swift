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
    @Option(help: "Signed deliveries each webhook takes a minute (429 above; 0: no limit). Env: HARROW_WEBHOOK_REQUESTS_PER_MINUTE.")
    var webhookRequestsPerMinute = Int(ProcessInfo.processInfo.environment["HARROW_WEBHOOK_REQUESTS_PER_MINUTE"] ?? "") ?? 60
    @Option(help: "Address of the listener that serves /metrics (only). Env: HARROW_METRICS_HOST.")
    var metricsHost = ProcessInfo.processInfo.environment["HARROW_METRICS_HOST"] ?? "127.0.0.1"
    @Option(help: "Port of the /metrics listener. Env: HARROW_METRICS_PORT.") var metricsPort =
        Int(ProcessInfo.processInfo.environment["HARROW_METRICS_PORT"] ?? "") ?? 9464
    @Option(help: "Seconds a connection may send nothing before it is closed. Env: HARROW_API_IDLE_TIMEOUT.")
    var idleTimeout = Int(ProcessInfo.processInfo.environment["HARROW_API_IDLE_TIMEOUT"] ?? "") ?? 60
    @Option(help: "Seconds a connection's first request line and headers may take from their first byte. Env: HARROW_API_HEADER_TIMEOUT.")
    var headerTimeout = Int(ProcessInfo.processInfo.environment["HARROW_API_HEADER_TIMEOUT"] ?? "") ?? 20
    @Option(help: "Most connections held at once, WebSockets included. Env: HARROW_API_MAX_CONNECTIONS.")
    var maxConnections = Int(ProcessInfo.processInfo.environment["HARROW_API_MAX_CONNECTIONS"] ?? "") ?? 1024
    @Option(
        help: "Most connections from one client address (an IPv6 /64; trusted proxies exempt). Env: HARROW_API_MAX_CONNECTIONS_PER_ADDRESS."
    )
    var maxConnectionsPerAddress = Int(ProcessInfo.processInfo.environment["HARROW_API_MAX_CONNECTIONS_PER_ADDRESS"] ?? "") ?? 64
    @Option(help: "Most subscriptions of one /ws socket. Env: HARROW_LIVE_MAX_SUBSCRIPTIONS.")
    var liveMaxSubscriptions = Int(ProcessInfo.processInfo.environment["HARROW_LIVE_MAX_SUBSCRIPTIONS"] ?? "") ?? 100
    @Option(help: "Most /ws sockets one session may have open on this server. Env: HARROW_LIVE_MAX_SOCKETS.")
    var liveMaxSockets = Int(ProcessInfo.processInfo.environment["HARROW_LIVE_MAX_SOCKETS"] ?? "") ?? 10
    @Option(
        name: .customLong("redis-url"),
        help: "redis://[user:password@]host:port/db, unix:///path or redis+cluster://host:port[,host:port…]. Env: REDIS_URL.")
    var redisURL = ProcessInfo.processInfo.environment["REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
    @Option(help: "Key prefix of every Redis key. Env: HARROW_KEY_PREFIX.")
    var keyPrefix = ProcessInfo.processInfo.environment["HARROW_KEY_PREFIX"] ?? "harrow"
    @Option(
        help: """
            Reverse proxies whose X-Forwarded-For is believed, comma-separated addresses or CIDR ranges \
            (e.g. 127.0.0.1,10.0.0.0/8). Without any, the header is ignored. Env: HARROW_TRUSTED_PROXIES.
            """)
    var trustedProxies = ProcessInfo.processInfo.environment["HARROW_TRUSTED_PROXIES"] ?? ""
    @Option(
        help:
            "Failed logins per account and client address in 15 minutes before that address waits. Env: HARROW_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS."
    )
    var loginFailuresPerAccountAddress = Self.environmentInt("HARROW_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS") ?? 5
    @Option(help: "Failed logins per account from all addresses in 15 minutes before it waits. Env: HARROW_LOGIN_FAILURES_PER_ACCOUNT.")
    var loginFailuresPerAccount = Self.environmentInt("HARROW_LOGIN_FAILURES_PER_ACCOUNT") ?? 100
    @Option(help: "Failed logins per client address in 15 minutes before it waits. Env: HARROW_LOGIN_FAILURES_PER_ADDRESS.")
    var loginFailuresPerAddress = Self.environmentInt("HARROW_LOGIN_FAILURES_PER_ADDRESS") ?? 30
    @Option(help: "Mails (sign-up, verification, reset, invitation) to one address per hour. Env: HARROW_MAILS_PER_RECIPIENT_HOUR.")
    var mailsPerRecipientHour = Self.environmentInt("HARROW_MAILS_PER_RECIPIENT_HOUR") ?? 5
    @Option(help: "Mails one client address or user may cause per hour. Env: HARROW_MAILS_PER_CALLER_HOUR.")
    var mailsPerCallerHour = Self.environmentInt("HARROW_MAILS_PER_CALLER_HOUR") ?? 20
    @Option(
        help:
            "Live organizations one user may have created (0: only platform admins create any). Env: HARROW_API_MAX_ORGANIZATIONS_PER_USER."
    )
    var maxOrganizationsPerUser = Self.environmentInt("HARROW_API_MAX_ORGANIZATIONS_PER_USER") ?? 10
    @Option(help: "SSH keys and ssh secrets one user may have waiting for their key pair. Env: HARROW_API_MAX_PENDING_KEYS_PER_USER.")
    var maxPendingKeysPerUser = Self.environmentInt("HARROW_API_MAX_PENDING_KEYS_PER_USER") ?? 10
    @Option(help: "Operations one user may have queued or running. Env: HARROW_API_MAX_QUEUED_OPERATIONS_PER_USER.")
    var maxQueuedOperationsPerUser = Self.environmentInt("HARROW_API_MAX_QUEUED_OPERATIONS_PER_USER") ?? 100
    @Flag(help: "Apply pending database migrations before starting.") var migrate = false
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535") }
        guard bodyLimit >= 1024 else { throw ValidationError("--body-limit must be at least 1024") }
        guard (0...65535).contains(metricsPort) else { throw ValidationError("--metrics-port must be 0-65535") }
        guard idleTimeout >= 1, headerTimeout >= 1 else { throw ValidationError("--idle-timeout and --header-timeout must be at least 1") }
        guard maxConnections >= 1, maxConnectionsPerAddress >= 1, liveMaxSubscriptions >= 1, liveMaxSockets >= 1 else {
            throw ValidationError(
                "--max-connections, --max-connections-per-address, --live-max-subscriptions and --live-max-sockets must be at least 1")
        }
        guard URL(string: publicURL)?.scheme != nil else { throw ValidationError("--public-url must be an absolute URL") }
        guard webhookRequestsPerMinute >= 0 else { throw ValidationError("--webhook-requests-per-minute must not be negative") }
        do {
            _ = try TrustedProxies([trustedProxies])
        } catch {
            throw ValidationError("--trusted-proxies: \(error)")
        }
        for (name, value) in [
            ("--login-failures-per-account-address", loginFailuresPerAccountAddress),
            ("--login-failures-per-account", loginFailuresPerAccount), ("--login-failures-per-address", loginFailuresPerAddress),
            ("--mails-per-recipient-hour", mailsPerRecipientHour), ("--mails-per-caller-hour", mailsPerCallerHour),
        ] where value < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
        for (name, value) in [
            ("--max-organizations-per-user", maxOrganizationsPerUser), ("--max-pending-keys-per-user", maxPendingKeysPerUser),
            ("--max-queued-operations-per-user", maxQueuedOperationsPerUser),
        ] where value < 0 {
            throw ValidationError("\(name) must not be negative")
        }
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
            loginLimits: LoginRateLimiter.Options(
                maximumFailuresPerAccountAndAddress: loginFailuresPerAccountAddress, maximumFailuresPerAccount: loginFailuresPerAccount,
                maximumFailuresPerAddress: loginFailuresPerAddress),
            mailLimits: MailThrottle.Options(perRecipientPerHour: mailsPerRecipientHour, perCallerPerHour: mailsPerCallerHour),
            trustedProxies: try TrustedProxies([trustedProxies]), keyPrefix: keyPrefix,
            webhookRequestsPerMinute: webhookRequestsPerMinute, metricsHost: metricsHost, metricsPort: metricsPort,
            idleTimeout: .seconds(idleTimeout), headerTimeout: .seconds(headerTimeout), maxConnections: maxConnections,
            maxConnectionsPerAddress: maxConnectionsPerAddress,
            liveSubscriptionLimit: liveMaxSubscriptions, liveConnectionsPerSession: liveMaxSockets,
            quotas: UserQuotas(
                organizations: maxOrganizationsPerUser, pendingKeys: maxPendingKeysPerUser, queuedOperations: maxQueuedOperationsPerUser))
        let dependencies = APIDependencies(database: client, redis: redis, keyring: keyring, metrics: registry)
        let metrics = buildMetricsApplication(
            configuration, dependencies: dependencies, logger: logger,
            onServerRunning: { port in
                logger.info("metrics listening", metadata: ["host": "\(configuration.metricsHost)", "port": "\(port)"])
            })
        // The metrics listener runs inside the API's application: it starts only once the
        // database checks passed, and stops with it.
        let app = buildApplication(
            configuration, dependencies: dependencies, services: [metrics], logger: logger,
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

    /// An integer from the environment, when set.
    static func environmentInt(_ name: String) -> Int? {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0) }
    }
}
