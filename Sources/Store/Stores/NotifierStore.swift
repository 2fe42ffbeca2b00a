import Foundation
import Logging
import PostgresNIO

/// Where a project's notifications go: lists of email addresses, another job of the project to
/// run, or a URL to POST them to (see ``WebhookNotifierSecrets`` for its signing secret).
public struct NotifierStore: Sendable {
    /// What a notifier does with a notification.
    public enum Target: Sendable, Hashable {
        /// Mails these addresses.
        case email([String])
        /// Runs this live job of the project.
        case job(UUID)
        /// POSTs to this `http` or `https` URL; `nil` in an update keeps the one it has.
        case webhook(String?)
    }

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = "id, project_id, name, kind, recipients, job_id, url, created_at, updated_at, archived_at, \(Cursor.column)"
    typealias Row = (UUID, UUID, String, String, [String], UUID?, String?, Date, Date, Date?, Int64)

    static func record(_ row: PostgresRow) throws -> (item: Notifier, position: Cursor) {
        let row = try row.decode(Row.self)
        return (
            Notifier(
                id: row.0, projectID: row.1, name: row.2, kind: try Notifier.Kind(stored: row.3, column: "notifier kind"),
                recipients: row.4, jobID: row.5, url: row.6.map(Notifier.shownURL), createdAt: row.7, updatedAt: row.8, archivedAt: row.9),
            Cursor(createdMicroseconds: row.10, id: row.0)
        )
    }

    static let maximumRecipients = 50

    /// 1 to 50 email addresses, trimmed, each `local@domain` with a dotted domain and no
    /// spaces; repeats (in any case) are dropped. Errors name the recipient's position, not
    /// the address.
    static func validRecipients(_ recipients: [String]) throws -> [String] {
        guard (1...maximumRecipients).contains(recipients.count) else {
            throw StoreError.invalid("recipients", "a notifier needs 1 to \(maximumRecipients) recipients")
        }
        var seen: Set<String> = []
        var valid: [String] = []
        for (index, recipient) in recipients.enumerated() {
            let address = recipient.trimmingWhitespace()
            guard isEmailAddress(address) else {
                throw StoreError.invalid("recipients", "recipient \(index + 1) is not a valid email address")
            }
            if seen.insert(address.lowercased()).inserted { valid.append(address) }
        }
        return valid
    }

    static func isEmailAddress(_ address: String) -> Bool {
        guard address.utf8.count <= 320 else { return false }
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 64 else { return false }
        let domain = parts[1]
        guard domain.contains("."), !domain.hasPrefix("."), !domain.hasSuffix("."), !domain.contains("..") else { return false }
        return !address.unicodeScalars.contains { $0.properties.isWhitespace || $0.properties.generalCategory == .control }
    }

    /// Creates an email notifier in a live project.
    public func create(project: UUID, name: String, recipients: [String], actor: UUID?) async throws -> Notifier {
        try await create(project: project, name: name, target: .email(recipients), actor: actor)
    }

    /// Creates a notifier in a live project; a job it runs must be a live job of the project.
    /// A webhook notifier needs a signing secret: ``WebhookNotifierSecrets/create(project:name:url:actor:)``
    /// makes those.
    public func create(project: UUID, name: String, target: Target, actor: UUID?) async throws -> Notifier {
        if case .webhook = target {
            throw StoreError.invalid("kind", "a webhook notifier is made with its signing secret")
        }
        return try await Self.insert(
            id: UUID(), project: project, name: name, target: target, sealedSecret: nil, actor: actor, client: client, logger: logger)
    }

    /// Inserts a notifier (with the sealed signing secret a webhook notifier needs) and its
    /// activity.
    static func insert(
        id: UUID, project: UUID, name: String, target: Target, sealedSecret: SecretKeyring.Sealed?, actor: UUID?, client: PostgresClient,
        logger: Logger
    ) async throws -> Notifier {
        let name = try Validate.name(name)
        let stored = try Self.valid(target)
        return try await client.write(logger: logger) { connection in
            try await Self.requireLiveJob(stored.job, project: project, on: connection, logger: logger)
            let inserted = try await connection.first(
                """
                INSERT INTO notifiers (id, project_id, name, kind, recipients, job_id, url, signing_secret_ciphertext, key_id)
                SELECT \(id), \(project), \(name), \(stored.kind.rawValue), \(stored.recipients), \(stored.job), \(stored.url),
                    \(sealedSecret.map { ByteBuffer(bytes: $0.ciphertext) }), \(sealedSecret?.keyID)
                WHERE EXISTS (SELECT 1 FROM projects WHERE id = \(project) AND archived_at IS NULL FOR SHARE)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let notifier = inserted?.item else { throw StoreError.notFound("project") }
            try await Self.log("notifier.created", notifier, actor: actor, on: connection, logger: logger)
            return notifier
        }
    }

    /// A target as stored, checked.
    struct Stored {
        var kind: Notifier.Kind
        var recipients: [String] = []
        var job: UUID?
        var url: String?
    }

    /// The stored form of a target, checked.
    static func valid(_ target: Target) throws -> Stored {
        switch target {
        case .email(let recipients): Stored(kind: .email, recipients: try validRecipients(recipients))
        case .job(let job): Stored(kind: .job, job: job)
        case .webhook(let url): Stored(kind: .webhook, url: try url.map { try Validate.webhookURL($0) })
        }
    }

    /// Throws `notFound("job")` unless `job` (when given) is a live job of `project`, and holds
    /// it (`FOR SHARE`) so it is not archived before the caller's transaction ends.
    static func requireLiveJob(_ job: UUID?, project: UUID, on connection: PostgresConnection, logger: Logger) async throws {
        guard let job else { return }
        let live = try await connection.first(
            "SELECT 1 FROM jobs WHERE id = \(job) AND project_id = \(project) AND archived_at IS NULL FOR SHARE", logger: logger,
            { _ in true })
        guard live == true else { throw StoreError.notFound("job") }
    }

    /// The notifier of `project`; archived ones only with `includeArchived`.
    public func find(_ id: UUID, project: UUID, includeArchived: Bool = false) async throws -> Notifier {
        try await client.read { connection in
            try await connection.find(
                id, in: "notifiers", columns: Self.columns, project: project, includeArchived: includeArchived, notFound: "notifier",
                logger: logger, Self.record)
        }
    }

    /// The project's live notifiers, oldest first.
    public func list(project: UUID, page: PageRequest) async throws -> Page<Notifier> {
        try await client.read { connection in
            try await connection.page(of: "notifiers", columns: Self.columns, project: project, page: page, logger: logger, Self.record)
        }
    }

    /// Renames an email notifier and replaces its recipients.
    public func update(_ id: UUID, project: UUID, name: String, recipients: [String], actor: UUID?) async throws -> Notifier {
        try await update(id, project: project, name: name, target: .email(recipients), actor: actor)
    }

    /// Renames the notifier and replaces what it does. Its kind may change between `email` and
    /// `job`; a webhook notifier stays one (its URL may change, its secret stays) and no other
    /// becomes one, since that needs a secret shown to the caller: create one instead.
    public func update(_ id: UUID, project: UUID, name: String, target: Target, actor: UUID?) async throws -> Notifier {
        let name = try Validate.name(name)
        let stored = try Self.valid(target)
        return try await client.write(logger: logger) { connection in
            try await Self.requireLiveJob(stored.job, project: project, on: connection, logger: logger)
            let current = try await connection.first(
                "SELECT kind FROM notifiers WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL FOR UPDATE",
                logger: logger, { try Notifier.Kind(stored: $0.decode(String.self), column: "notifier kind") })
            guard let current else { throw StoreError.notFound("notifier") }
            guard (current == .webhook) == (stored.kind == .webhook) else {
                throw StoreError.invalid(
                    "kind", "a webhook notifier cannot change its kind, nor another become one: create a new notifier")
            }
            let updated = try await connection.first(
                """
                UPDATE notifiers SET name = \(name), kind = \(stored.kind.rawValue), recipients = \(stored.recipients),
                    job_id = \(stored.job), url = coalesce(\(stored.url), url), updated_at = now()
                WHERE id = \(id) RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let notifier = updated?.item else { throw StoreError.notFound("notifier") }
            try await Self.log("notifier.updated", notifier, actor: actor, on: connection, logger: logger)
            return notifier
        }
    }

    /// Archives the notifier and the rules that send to it.
    public func archive(_ id: UUID, project: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            let notifier = try await connection.archive(
                id, in: "notifiers", columns: Self.columns, project: project, notFound: "notifier", logger: logger, Self.record)
            try await connection.query(
                "UPDATE notification_rules SET archived_at = now(), updated_at = now() WHERE notifier_id = \(id) AND archived_at IS NULL",
                logger: logger)
            try await Self.log("notifier.archived", notifier, actor: actor, on: connection, logger: logger)
        }
    }

    static func log(
        _ name: String, _ notifier: Notifier, actor: UUID?, on connection: PostgresConnection, logger: Logger
    ) async throws {
        try await ActivityLog.record(
            name, project: notifier.projectID, actor: actor,
            payload: ["notifier_id": notifier.id.uuidString.lowercased(), "name": notifier.name], on: connection, logger: logger)
    }
}
