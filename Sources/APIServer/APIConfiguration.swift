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
    /// First part of every Redis key.
    public var keyPrefix: String
    /// How often a live-events connection checks its session and subscriptions again.
    public var liveRecheckInterval: Duration

    public init(
        host: String = "127.0.0.1", port: Int = 8080, publicURL: String = "http://localhost:8080", bodyLimit: Int = 1 << 20,
        bcryptCost: UInt8 = 12, sessionLifetime: TimeInterval = 15 * 86_400, verifyLinkLifetime: TimeInterval = 3 * 86_400,
        resetLinkLifetime: TimeInterval = 3_600, loginLimits: LoginRateLimiter.Options = .init(), keyPrefix: String = "harrow",
        liveRecheckInterval: Duration = .seconds(15)
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
        self.keyPrefix = keyPrefix
        self.liveRecheckInterval = liveRecheckInterval
    }
}
