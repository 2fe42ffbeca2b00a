import Foundation
import Logging
import PostgresNIO

/// A project's git repositories. Each gets a deploy key of its own, created with it (the
/// key's generation is queued in the same transaction), which the user adds to the git host.
public struct RepositoryStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns =
        "id, project_id, name, url, credential_id, known_hosts, token_ciphertext IS NOT NULL, refs::text, accessible, checked_at, created_at, updated_at, archived_at, \(Cursor.column)"
    typealias Row = (UUID, UUID, String, String, UUID?, String, Bool, String, Bool?, Date?, Date, Date, Date?, Int64)

    static func record(_ row: PostgresRow) throws -> (item: Repository, position: Cursor) {
        let row = try row.decode(Row.self)
        return (
            Repository(
                id: row.0, projectID: row.1, name: row.2, url: row.3, credentialID: row.4, knownHosts: row.5, hasToken: row.6,
                refs: try [String: String](jsonObject: row.7), accessible: row.8, checkedAt: row.9, createdAt: row.10, updatedAt: row.11,
                archivedAt: row.12),
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

    /// Creates a repository in a live project, with its deploy key. Without a `name`, it is
    /// named after its URL (numbered if a live repository of the project has that name).
    public func create(
        project: UUID, url: String, name: String? = nil, knownHosts: String = "", actor: UUID?
    ) async throws -> Repository {
        let url = try Self.validURL(url)
        let givenName = try name.map(Self.validName)
        let knownHosts = try Self.validKnownHosts(knownHosts)
        return try await client.write(logger: logger) { connection in
            let key = try await SSHKeyStore.insert(
                project: project, name: Self.deployKeyName(for: url), algorithm: .ed25519, actor: actor, on: connection, logger: logger)
            var name = givenName ?? ""
            if givenName == nil { name = try await freeName(Self.defaultName(for: url), project: project, on: connection) }
            let inserted = try await connection.first(
                """
                INSERT INTO repositories (project_id, name, url, credential_id, known_hosts)
                VALUES (\(project), \(name), \(url), \(key.id), \(knownHosts)) RETURNING \(unescaped: Self.columns)
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

    /// Changes what is given (URL, name, pinned host keys) and keeps the rest, its deploy key
    /// included.
    public func update(
        _ id: UUID, project: UUID, url: String? = nil, name: String? = nil, knownHosts: String? = nil, actor: UUID?
    ) async throws -> Repository {
        let url = try url.map(Self.validURL)
        let name = try name.map(Self.validName)
        let knownHosts = try knownHosts.map(Self.validKnownHosts)
        return try await client.write(logger: logger) { connection in
            let updated = try await connection.first(
                """
                UPDATE repositories SET url = coalesce(\(url), url), name = coalesce(\(name), name),
                    known_hosts = coalesce(\(knownHosts), known_hosts), updated_at = now(),
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

    /// Records what a check of the live repository found: its refs and whether it could be
    /// read. Returns the repository and the refs it had before, read under the row's lock, so
    /// that two checks never report the same change twice. A change of accessibility (and a
    /// first check that fails) is an activity; the refs are not, as they change all the time.
    public func recordRefs(
        _ id: UUID, refs: [String: String], accessible: Bool
    ) async throws -> (repository: Repository, previousRefs: [String: String]) {
        guard refs.count <= 100_000 else { throw StoreError.invalid("refs", "a repository can have at most 100000 refs recorded") }
        guard !refs.keys.contains(where: { $0.isEmpty || $0.utf8.count > 1024 }) else {
            throw StoreError.invalid("refs", "a ref name must be 1 to 1024 bytes")
        }
        let json = try refs.jsonText()
        return try await client.write(logger: logger) { connection in
            let updated = try await connection.first(
                """
                WITH old AS (
                    SELECT id AS old_id, refs::text AS old_refs, accessible AS was_accessible FROM repositories
                    WHERE id = \(id) AND archived_at IS NULL FOR UPDATE)
                UPDATE repositories SET refs = \(json)::jsonb, accessible = \(accessible), checked_at = now()
                FROM old WHERE id = old.old_id
                RETURNING \(unescaped: Self.columns), old_refs, was_accessible
                """, logger: logger,
                { row in
                    let cells = row.makeRandomAccess()
                    let previous = try [String: String](jsonObject: try cells["old_refs"].decode(String.self))
                    return (try Self.record(row).item, previous, try cells["was_accessible"].decode(Bool?.self))
                })
            guard let (repository, previous, wasAccessible) = updated else { throw StoreError.notFound("repository") }
            if wasAccessible != accessible, wasAccessible != nil || !accessible {
                try await ActivityLog.record(
                    accessible ? "repository.accessible" : "repository.inaccessible", project: repository.projectID, actor: nil,
                    payload: ["repository_id": id.uuidString.lowercased()], on: connection, logger: logger)
            }
            return (repository, previous)
        }
    }
}
