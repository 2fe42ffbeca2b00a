import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import JobContracts
import Jobs
import Logging
import Metrics
import NIOCore
import PostgresNIO
import Prometheus
import Queue
import Store
import Testing

@testable import APIServer

/// A live API server on loopback over a fresh, migrated database and the test Redis.
struct APIHarness: Sendable {
    let database: PostgresClient
    let redis: RedisClient
    let keyring: SecretKeyring
    let configuration: APIConfiguration
    let logger: Logger
    /// The test database, as `DATABASE_URL` for a worker process.
    let databaseURL: String
    /// The keyring's key, as `HARROW_SECRET_KEY` for a worker process.
    let secretKey: SecretKeyring.Key

    static func with(
        _ name: String, configure: (inout APIConfiguration) -> Void = { _ in }, metrics: PrometheusCollectorRegistry? = nil,
        _ body: @Sendable (APIHarness, any TestClientProtocol) async throws -> Void
    ) async throws {
        try await TestDatabase.withDatabase(name) { database, databaseConfiguration in
            let logger = TestRedis.logger("harrow.test.api")
            try await Migrator(client: database, logger: logger).migrate()
            let redis = try TestRedis.makeClient()
            var configuration = APIConfiguration(bcryptCost: 4, keyPrefix: TestRedis.uniqueKeyPrefix("api"))
            configure(&configuration)
            let key = SecretKeyring.Key.generate()
            let harness = APIHarness(
                database: database, redis: redis, keyring: SecretKeyring(current: key), configuration: configuration, logger: logger,
                databaseURL: "postgres://\(databaseConfiguration.username)@\(databaseConfiguration.host):\(databaseConfiguration.port)/"
                    + databaseConfiguration.database,
                secretKey: key)
            let app = buildApplication(
                configuration, dependencies: APIDependencies(database: database, redis: redis, keyring: harness.keyring, metrics: metrics),
                logger: logger)
            do {
                if let metrics {
                    // The process-wide metrics system can be set once; this test's requests use its own.
                    try await withMetricsFactory(PrometheusMetricsFactory(registry: metrics)) {
                        try await app.test(.live) { client in try await body(harness, client) }
                    }
                } else {
                    try await app.test(.live) { client in try await body(harness, client) }
                }
                await redis.close()
            } catch {
                await redis.close()
                throw error
            }
        }
    }

    var users: UserStore { UserStore(client: database, logger: logger) }
    var memberships: MembershipStore { MembershipStore(client: database, logger: logger) }

    /// A verified user and a bearer token of theirs.
    func signedIn(_ name: String, admin: Bool = false, client: any TestClientProtocol) async throws -> (user: User, token: String) {
        let email = "\(name.lowercased())-\(TestRedis.randomHex())@example.com"
        let user = try await users.create(
            email: email, name: name, passwordHash: try await PasswordHasher(cost: 4).hash("correct horse battery"), verified: true,
            admin: admin)
        let response = try await client.execute(
            uri: "/v1/sessions", method: .post, headers: [.contentType: "application/json"],
            body: ByteBuffer(string: #"{"email":"\#(email)","password":"correct horse battery"}"#))
        #expect(response.status == .created, "\(String(buffer: response.body))")
        let token = try #require(try response.json()["token"] as? String)
        return (user, token)
    }

    /// The `send-mail` jobs in the outbox, oldest first.
    func outboxMails() async throws -> [SendMail] {
        var mails: [SendMail] = []
        let rows = try await database.query("SELECT payload FROM outbox WHERE type = 'send-mail' ORDER BY seq")
        for try await payload in rows.decode(String.self) {
            mails.append(try JSONDecoder().decode(SendMail.self, from: Data(payload.utf8)))
        }
        return mails
    }

    /// The token in the link the mail handler signs for `mail` when it sends it.
    func linkToken(of mail: SendMail) async throws -> String {
        let link = try #require(mail.signedLink, "the mail has a signed link")
        let url = try await MailLinks(signer: LinkSigner(keyring: keyring), users: users, publicURL: configuration.publicURL).url(
            for: link, recipient: mail.to)
        return try #require(url.components(separatedBy: "token=").last)
    }

    /// The payloads of the outbox's jobs of `type`, oldest first.
    func outboxPayloads(type: String) async throws -> [[String: Any]] {
        var payloads: [[String: Any]] = []
        let rows = try await database.query("SELECT payload FROM outbox WHERE type = \(type) ORDER BY seq")
        for try await payload in rows.decode(String.self) {
            payloads.append((try JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any]) ?? [:])
        }
        return payloads
    }
}

extension TestResponse {
    func json() throws -> [String: Any] {
        (try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]) ?? [:]
    }

    /// The problem document of an error response (and that it is one).
    func problem(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        #expect(headers[.contentType] == "application/problem+json", sourceLocation: sourceLocation)
        let document = try json()
        #expect(document["status"] as? Int == Int(status.code), sourceLocation: sourceLocation)
        return document
    }
}

extension TestClientProtocol {
    /// Sends `json` (a JSON text) with the bearer `token`.
    func send(
        _ method: HTTPRequest.Method, _ uri: String, token: String? = nil, json: String? = nil, headers extra: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        if json != nil && headers[.contentType] == nil { headers[.contentType] = "application/json" }
        return try await execute(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }
}
