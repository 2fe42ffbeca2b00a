import Foundation
import Logging
import PostgresNIO

/// A project's git repositories. Each gets a deploy key of its own, created with it (the
/// key's generation is queued in the same transaction), which the user adds to the git host.
public struct RepositoryStore: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// Its ``UserQuotas/pendingKeys`` limit applies to a new repository's deploy key.
    let quotas: UserQuotas

    public init(client: PostgresClient, logger: Logger, quotas: UserQuotas = .unlimited) {
        self.client = client
        self.logger = logger
        self.quotas = quotas
    }

    static let columns = """
        id, project_id, name, url, credential_id, known_hosts, token_ciphertext IS NOT NULL, refs::text, accessible, checked_at, \
        created_at, updated_at, archived_at, \(Cursor.column), poll_interval_seconds, next_poll_at
        """
    typealias Row = (UUID, UUID, String, String, UUID?, String, Bool, String, Bool?, Date?, Date, Date, Date?, Int64, Int, Date?)

    static func record(_ row: PostgresRow) throws -> (item: Repository, position: Cursor) {
        let row = try row.decode(Row.self)
        return (
            Repository(
                id: row.0, projectID: row.1, name: row.2, url: row.3, credentialID: row.4, knownHosts: row.5, hasToken: row.6,
                refs: try [String: String](jsonObject: row.7), accessible: row.8, checkedAt: row.9, pollIntervalSeconds: row.14,
                nextPollAt: row.15, createdAt: row.10, updatedAt: row.11, archivedAt: row.12),
            Cursor(createdMicroseconds: row.13, id: row.0)
        )
    }

    static let maximumURLLength = 2048

    /// A clone URL: trimmed, 1 to 2048 characters, no whitespace or control characters. The
    /// schema refuses credentials in it (`repositories_url_check`).
    static func validURL(_ value: String) throws -> String {
        let url = value.trimmingWhitespace()
        guard !url.isEmpty else { throw StoreError.invalid("url", "the URL must not be empty") }
        guard url.count <= maximumURLLength else {
            throw StoreError.invalid("url", "the URL must be at most \(maximumURLLength) characters")
        }
        guard !url.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control }) else {
            throw StoreError.invalid("url", "the URL must not contain spaces or control characters")
        }
        do {
            _ = try GitURLPolicy.validate(url)
        } catch {
            throw StoreError.invalid("url", error.message)
        }
        return url
    }

    /// Host keys in OpenSSH `known_hosts` form, at most 64 KiB; empty for none beyond the
    /// built-in ones.
    static func validKnownHosts(_ text: String) throws -> String {
        guard text.utf8.count <= 65_536 else { throw StoreError.invalid("known_hosts", "known_hosts must be at most 64 KiB") }
        do {
            try KnownHosts.validate(text)
        } catch {
            throw StoreError.invalid("known_hosts", "\(error)")
        }
        return text
    }

    /// Seconds between polls when none is given.
    public static let defaultPollInterval = 60

    /// Seconds between polls: 10 to 86400 (a day).
    static func validPollInterval(_ seconds: Int) throws -> Int {
        guard (10...86_400).contains(seconds) else {
            throw StoreError.invalid("poll_interval_seconds", "the poll interval must be 10 to 86400 seconds")
        }
        return seconds
    }

    /// The deploy key's name, within the length a name may have.
    static func deployKeyName(for url: String) -> String {
        let prefix = "deploy key for "
        let room = 200 - prefix.count
        return prefix + (url.count <= room ? url : url.prefix(room - 1) + "…")
    }

    /// A repository's name: 1 to 100 of `A-Z a-z 0-9 . _ -`, not `.` or `..` (it names a
    /// directory of the workspace).
    static func validName(_ value: String) throws -> String {
        let name = value.trimmingWhitespace()
        guard (1...100).contains(name.utf8.count), name != ".", name != "..",
            name.utf8.allSatisfy({
                (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || [45, 46, 95].contains($0)
            })
        else {
            throw StoreError.invalid("name", "a repository's name is 1 to 100 letters, digits, '.', '_' or '-', and not '.' or '..'")
        }
        return name
    }

    /// The name a repository gets when none is given: its URL's last path component without
    /// `.git` (`git@github.com:acme/web.git` → `web`), or `repository` when that is no name.
    public static func defaultName(for url: String) -> String {
        (try? GitURLPolicy.defaultName(for: url)) ?? "repository"
    }

    /// Creates a repository in a live project, with its deploy key (within the actor's quota of
    /// pending keys). Without a `name`, it is named after its URL (numbered if a live repository
    /// of the project has that name).
    public func create(
        project: UUID, url: String, name: String? = nil, knownHosts: String = "", pollIntervalSeconds: Int? = nil, actor: UUID?
    ) async throws -> Repository {
        let url = try Self.validURL(url)
        let givenName = try name.map(Self.validName)
        let knownHosts = try Self.validKnownHosts(knownHosts)
        let interval = try Self.validPollInterval(pollIntervalSeconds ?? Self.defaultPollInterval)
        return try await client.write(logger: logger) { connection in
            let key = try await SSHKeyStore.insert(
                project: project, name: Self.deployKeyName(for: url), algorithm: .ed25519, actor: actor, quotas: quotas, on: connection,
                logger: logger)
            var name = givenName ?? ""
            if givenName == nil { name = try await freeName(Self.defaultName(for: url), project: project, on: connection) }
            let inserted = try await connection.first(
                """
                INSERT INTO repositories (project_id, name, url, credential_id, known_hosts, poll_interval_seconds)
                VALUES (\(project), \(name), \(url), \(key.id), \(knownHosts), \(interval)) RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let repository = inserted?.item else { throw StoreError(.conflict, "the repository was not created") }
            try await ActivityLog.record(
                "repository.created", project: project, actor: actor,
                payload: ["repository_id": repository.id.uuidString.lowercased(), "url": url], on: connection, logger: logger)
            return repository
        }
    }

    /// `base`, or `base-2`, `base-3`… : the first not taken by a live repository of `project`.
    private func freeName(_ base: String, project: UUID, on connection: PostgresConnection) async throws -> String {
        let taken = Set(
            try await connection.all(
                """
                SELECT name FROM repositories WHERE project_id = \(project) AND archived_at IS NULL
                  AND (name = \(base) OR name LIKE \(base.replacingOccurrences(of: "_", with: "\\_") + "-%"))
                """, logger: logger, { try $0.decode(String.self) }))
        if !taken.contains(base) { return base }
        var number = 2
        while taken.contains("\(base)-\(number)") { number += 1 }
        return "\(base)-\(number)"
    }

    /// The repository of `project`; archived ones only with `includeArchived`.
    public func find(_ id: UUID, project: UUID, includeArchived: Bool = false) async throws -> Repository {
        try await client.read { connection in
            try await connection.find(
                id, in: "repositories", columns: Self.columns, project: project, includeArchived: includeArchived, notFound: "repository",
                logger: logger, Self.record)
        }
    }

    /// The project's live repositories, oldest first.
    public func list(project: UUID, page: PageRequest) async throws -> Page<Repository> {
        try await client.read { connection in
            try await connection.page(of: "repositories", columns: Self.columns, project: project, page: page, logger: logger, Self.record)
        }
    }

    /// Changes what is given (URL, name, pinned host keys, poll interval) and keeps the rest, its
    /// deploy key included. A new URL is another repository as far as polling goes: its refs are
    /// forgotten, so the next poll records them without reporting changes.
    public func update(
        _ id: UUID, project: UUID, url: String? = nil, name: String? = nil, knownHosts: String? = nil, pollIntervalSeconds: Int? = nil,
        actor: UUID?
    ) async throws -> Repository {
        let url = try url.map(Self.validURL)
        let name = try name.map(Self.validName)
        let knownHosts = try knownHosts.map(Self.validKnownHosts)
        let interval = try pollIntervalSeconds.map(Self.validPollInterval)
        return try await client.write(logger: logger) { connection in
            let updated = try await connection.first(
                """
                UPDATE repositories SET url = coalesce(\(url), url), name = coalesce(\(name), name),
                    known_hosts = coalesce(\(knownHosts), known_hosts), updated_at = now(),
                    poll_interval_seconds = coalesce(\(interval), poll_interval_seconds),
                    -- A shorter interval takes effect at once, not after the poll already planned.
                    next_poll_at = least(next_poll_at, now() + make_interval(secs => coalesce(\(interval), poll_interval_seconds))),
                    refs = CASE WHEN \(url)::text IS DISTINCT FROM url AND \(url)::text IS NOT NULL THEN '{}' ELSE refs END,
                    refs_listed_at = CASE WHEN \(url)::text IS DISTINCT FROM url AND \(url)::text IS NOT NULL THEN NULL ELSE refs_listed_at END,
                    -- A token is for the server it was set for: a new URL would send it elsewhere.
                    token_ciphertext = CASE WHEN \(url)::text IS DISTINCT FROM url AND \(url)::text IS NOT NULL THEN NULL ELSE token_ciphertext END,
                    token_key_id = CASE WHEN \(url)::text IS DISTINCT FROM url AND \(url)::text IS NOT NULL THEN NULL ELSE token_key_id END
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING \(unescaped: Self.columns)
                """, logger: logger, Self.record)
            guard let repository = updated?.item else { throw StoreError.notFound("repository") }
            try await ActivityLog.record(
                "repository.updated", project: project, actor: actor,
                payload: ["repository_id": id.uuidString.lowercased(), "url": repository.url, "name": repository.name], on: connection,
                logger: logger)
            return repository
        }
    }

    /// Archives the repository, its git triggers, and its deploy key unless another live
    /// repository reads with it.
    public func archive(_ id: UUID, project: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            let archived = try await connection.first(
                """
                UPDATE repositories SET archived_at = now(), updated_at = now()
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING credential_id
                """, logger: logger, { try $0.decode(UUID?.self) })
            guard let credential = archived else { throw StoreError.notFound("repository") }
            try await connection.query(
                "UPDATE git_triggers SET archived_at = now(), updated_at = now() WHERE repository_id = \(id) AND archived_at IS NULL",
                logger: logger)
            if let credential {
                try await connection.query(
                    """
                    UPDATE ssh_keys SET archived_at = now(), updated_at = now()
                    WHERE id = \(credential) AND archived_at IS NULL
                      AND NOT EXISTS (SELECT 1 FROM repositories WHERE credential_id = \(credential) AND archived_at IS NULL)
                    """, logger: logger)
            }
            try await ActivityLog.record(
                "repository.archived", project: project, actor: actor, payload: ["repository_id": id.uuidString.lowercased()],
                on: connection, logger: logger)
        }
    }
}
