import Foundation
import Queue
import Store

/// How the API server runs. Defaults suit a local run; `api-server serve` fills it from flags
/// and the environment.
public struct APIConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Where the web app is, for links in mails (`HARROW_PUBLIC_URL`).
    public var publicURL: String
    /// Largest request body, bytes.
    public var bodyLimit: Int
    /// bcrypt cost of password hashes (tests use 4).
    public var bcryptCost: UInt8
    /// How long a session's bearer token is valid, seconds.
    public var sessionLifetime: TimeInterval
    public var verifyLinkLifetime: TimeInterval
    public var resetLinkLifetime: TimeInterval
    public var loginLimits: LoginRateLimiter.Options
    /// Mails that requests may cause, per recipient and per caller each hour.
    public var mailLimits: MailThrottle.Options
    /// Reverse proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`).
    public var trustedProxies: TrustedProxies
    /// First part of every Redis key.
    public var keyPrefix: String
    /// How often a live-events connection checks its session and subscriptions again.
    public var liveRecheckInterval: Duration
    /// Signed deliveries each webhook takes a minute; more are answered 429 (0: no limit).
    public var webhookRequestsPerMinute: Int
    /// Where `/metrics` is served: a listener of its own, loopback by default, because a scrape
    /// reads Redis and Postgres and tells queue names; the API's listener does not answer it.
    /// Port 0 takes a free port.
    public var metricsHost: String
    /// The metrics listener's port (`--metrics-port`, 9464).
    public var metricsPort: Int
    /// How long `/metrics` reuses the queue depths it read, so a burst of scrapes costs one read
    /// of Redis and Postgres.
    public var metricsCacheAge: Duration
    /// A connection that sends nothing this long is closed: before its first request, between
    /// requests, or within a request's body (a WebSocket is kept alive by its pings instead).
    public var idleTimeout: Duration
    /// Once a request's first byte arrived, its line and headers must be complete within this, or
    /// the connection is closed (one that drips its headers holds a connection otherwise).
    public var headerTimeout: Duration
    /// The most connections the API's listener holds at once, WebSockets included; further ones
    /// wait in the listen backlog until one closes.
    public var maxConnections: Int
    /// The most of those one client address holds (an IPv6 client's /64; trusted proxies are
    /// not counted); more are closed at once.
    public var maxConnectionsPerAddress: Int
    /// The most subscriptions one live-events WebSocket may hold.
    public var liveSubscriptionLimit: Int
    /// The most live-events WebSockets one session may have open on this server at once.
    public var liveConnectionsPerSession: Int
    /// What one user may pile up: organizations, keys waiting for generation, unfinished
    /// operations (403 `quota-exceeded` past a limit; platform admins are exempt).
    public var quotas: UserQuotas

    public init(
        host: String = "127.0.0.1", port: Int = 8080, publicURL: String = "http://localhost:8080", bodyLimit: Int = 1 << 20,
        bcryptCost: UInt8 = 12, sessionLifetime: TimeInterval = 15 * 86_400, verifyLinkLifetime: TimeInterval = 3 * 86_400,
        resetLinkLifetime: TimeInterval = 3_600, loginLimits: LoginRateLimiter.Options = .init(),
        mailLimits: MailThrottle.Options = .init(), trustedProxies: TrustedProxies = .none, keyPrefix: String = "harrow",
        liveRecheckInterval: Duration = .seconds(15), webhookRequestsPerMinute: Int = 60, metricsHost: String = "127.0.0.1",
        metricsPort: Int = 9464, metricsCacheAge: Duration = .seconds(5), idleTimeout: Duration = .seconds(60),
        headerTimeout: Duration = .seconds(20), maxConnections: Int = 1024, maxConnectionsPerAddress: Int = 64,
        liveSubscriptionLimit: Int = 100,
        liveConnectionsPerSession: Int = 10, quotas: UserQuotas = .defaults
    ) {
        self.host = host
        self.port = port
        self.publicURL = publicURL
        self.bodyLimit = bodyLimit
        self.bcryptCost = bcryptCost
        self.sessionLifetime = sessionLifetime
        self.verifyLinkLifetime = verifyLinkLifetime
        self.resetLinkLifetime = resetLinkLifetime
        self.loginLimits = loginLimits
        self.mailLimits = mailLimits
        self.trustedProxies = trustedProxies
        self.keyPrefix = keyPrefix
        self.liveRecheckInterval = liveRecheckInterval
        self.webhookRequestsPerMinute = webhookRequestsPerMinute
        self.metricsHost = metricsHost
        self.metricsPort = metricsPort
        self.metricsCacheAge = metricsCacheAge
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
        self.maxConnections = maxConnections
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.liveSubscriptionLimit = liveSubscriptionLimit
        self.liveConnectionsPerSession = liveConnectionsPerSession
        self.quotas = quotas
    }
}

extension APIConfiguration {
    /// The web app's session cookie, as the public URL makes it (its name, `Secure`, and the
    /// origin its changes must come from): one definition for the login, the logout, the
    /// authenticator, `/ws` and the security headers.
    var sessionCookie: SessionCookie { SessionCookie(publicURL: publicURL) }
}
