import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import OperationLogs
import PostgresNIO
import Prometheus
import Queue
import ServiceLifecycle
import Store

/// What the API server talks to. The caller runs `database` and closes `redis`.
public struct APIDependencies: Sendable {
    public var database: PostgresClient
    public var redis: RedisClient
    public var keyring: SecretKeyring
    /// What `/metrics` serves, on the listener ``buildMetricsApplication(_:dependencies:logger:onServerRunning:)``
    /// builds; `nil` serves no `/metrics`.
    public var metrics: PrometheusCollectorRegistry?

    public init(database: PostgresClient, redis: RedisClient, keyring: SecretKeyring, metrics: PrometheusCollectorRegistry? = nil) {
        self.database = database
        self.redis = redis
        self.keyring = keyring
        self.metrics = metrics
    }
}

/// The API server's router: every route, behind request ids, metrics, problem+json errors and
/// bearer-token authentication.
public func buildRouter(_ configuration: APIConfiguration, dependencies: APIDependencies, logger: Logger) -> Router<APIContext> {
    let database = dependencies.database
    let router = Router(context: APIContext.self)
    router.add(middleware: RequestIDMiddleware())
    router.add(middleware: SecurityHeadersMiddleware(secure: configuration.sessionCookie.secure))
    router.add(middleware: MetricsMiddleware())
    router.add(middleware: ProblemMiddleware(bodyLimit: configuration.bodyLimit))
    router.add(middleware: ClientAddressMiddleware(proxies: configuration.trustedProxies))
    router.add(
        middleware: SessionAuthenticator(
            sessions: SessionStore(client: database, logger: logger), cookie: configuration.sessionCookie))

    let jobQueue = JobQueue(redis: dependencies.redis, options: JobQueue.Options(keyPrefix: configuration.keyPrefix))
    HealthRoutes(database: database, redis: dependencies.redis).addRoutes(to: router)
    DescriptionRoutes().addRoutes(to: router)
    let v1 = router.group("v1")
    let users = UserStore(client: database, logger: logger)
    let access = Access(memberships: MembershipStore(client: database, logger: logger))
    let mailThrottle = MailThrottle(redis: dependencies.redis, keyPrefix: configuration.keyPrefix, options: configuration.mailLimits)
    AccountRoutes(
        users: users, sessions: SessionStore(client: database, logger: logger), database: database,
        hasher: PasswordHasher(cost: configuration.bcryptCost), signer: LinkSigner(keyring: dependencies.keyring),
        limiter: LoginRateLimiter(redis: dependencies.redis, keyPrefix: configuration.keyPrefix, options: configuration.loginLimits),
        mailThrottle: mailThrottle,
        configuration: configuration, logger: logger
    ).addRoutes(to: v1)
    OrganizationRoutes(
        organizations: OrganizationStore(client: database, logger: logger, quotas: configuration.quotas),
        projects: ProjectStore(client: database, logger: logger),
        access: access, configuration: configuration
    ).addRoutes(to: v1)
    ProjectResourceRoutes(
        environments: EnvironmentStore(client: database, logger: logger),
        secrets: SecretStore(client: database, keyring: dependencies.keyring, logger: logger, quotas: configuration.quotas),
        tasks: TaskStore(client: database, logger: logger),
        jobs: JobStore(client: database, logger: logger),
        operations: OperationStore(client: database, logger: logger, quotas: configuration.quotas),
        log: OperationLog(redis: dependencies.redis, keyPrefix: configuration.keyPrefix),
        archive: OperationLogArchive(client: database, logger: logger), access: access,
        configuration: configuration
    ).addRoutes(to: v1)
    let keyring = dependencies.keyring
    AutomationRoutes(
        repositories: RepositoryStore(client: database, logger: logger, quotas: configuration.quotas),
        keys: SSHKeyStore(client: database, keyring: keyring, logger: logger, quotas: configuration.quotas),
        schedules: ScheduleStore(client: database, logger: logger), triggers: GitTriggerStore(client: database, logger: logger),
        webhooks: WebhookStore(client: database, keyring: keyring, logger: logger),
        notifiers: NotifierStore(client: database, logger: logger),
        webhookNotifiers: WebhookNotifierSecrets(client: database, keyring: keyring, logger: logger),
        rules: NotificationRuleStore(client: database, logger: logger), activities: ActivityStore(client: database, logger: logger),
        database: database, access: access, configuration: configuration
    ).addRoutes(to: v1)
    IntegrationRoutes(
        tokens: GitHubTokenStore(client: database, keyring: keyring, logger: logger),
        repositoryTokens: RepositoryTokenStore(client: database, keyring: keyring, logger: logger), access: access,
        configuration: configuration
    ).addRoutes(to: v1)
    HookRoutes(
        webhooks: WebhookStore(client: database, keyring: keyring, logger: logger),
        operations: OperationStore(client: database, logger: logger),
        deliveries: WebhookDeliveries(
            redis: dependencies.redis, prefix: configuration.keyPrefix, perMinute: configuration.webhookRequestsPerMinute),
        configuration: configuration
    ).addRoutes(to: router)
    MembershipRoutes(
        memberships: MembershipStore(client: database, logger: logger), invitations: InvitationStore(client: database, logger: logger),
        access: access, mailThrottle: mailThrottle, configuration: configuration
    ).addRoutes(to: v1)
    AdminQueueRoutes(jobQueue: jobQueue, database: database, configuration: configuration).addRoutes(to: router)
    WebAppRoutes().addRoutes(to: router)
    return router
}

/// The API server: the router on an HTTP/1 server at the configured address, with the
/// live-events WebSocket (`/ws`) and the activity feed and the operation logs' reader behind it.
/// Connections are held to the
/// configured idle and header timeouts, and their number is capped.
public func buildApplication(
    _ configuration: APIConfiguration, dependencies: APIDependencies, services: [any Service] = [], logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let database = dependencies.database
    let feed = ActivityFeed(database: database, logger: logger)
    let log = OperationLog(redis: dependencies.redis, keyPrefix: configuration.keyPrefix)
    let logs = OperationLogHub(log: log, logger: logger)
    let live = Router(context: LiveContext.self)
    LiveRoutes(
        feed: feed, sessions: SessionStore(client: database, logger: logger), operations: OperationStore(client: database, logger: logger),
        log: log, logs: logs, access: Access(memberships: MembershipStore(client: database, logger: logger)),
        connections: LiveConnections(limit: configuration.liveConnectionsPerSession),
        subscriptionLimit: configuration.liveSubscriptionLimit, recheckInterval: configuration.liveRecheckInterval,
        cookie: configuration.sessionCookie
    ).addRoutes(to: live)
    let webSocketResponder = live.buildResponder()
    let http1 = HTTP1Channel.Configuration(idleTimeout: TimeAmount(configuration.idleTimeout))
    return Application(
        router: buildRouter(configuration, dependencies: dependencies, logger: logger),
        server: .timed(
            idleTimeout: configuration.idleTimeout, headerTimeout: configuration.headerTimeout,
            perAddress: ConnectionsPerAddress(limit: configuration.maxConnectionsPerAddress, proxies: configuration.trustedProxies)
        ) { responder in
            HTTP1WebSocketUpgradeChannel(
                responder: responder, webSocketResponder: webSocketResponder, configuration: .init(http1: http1, ws: .init()))
        },
        configuration: ApplicationConfiguration(
            address: .hostname(configuration.host, port: configuration.port), serverName: "harrow",
            availableConnectionsDelegate: .maximum(configuration.maxConnections, logger: logger)),
        services: services + [feed, logs], onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
        logger: logger)
}
