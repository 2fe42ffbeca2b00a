import Foundation
import Logging
import PostgresNIO

/// Environments of a project: named sets of variables that jobs run with. A project always has
/// one default environment: making another the default un-defaults the previous one, and the
/// default cannot be archived or un-defaulted on its own.
public struct EnvironmentStore: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The `variables` jsonb column: an object of strings, bound and decoded as JSON by
    /// postgres-nio.
    struct Variables: Sendable, Codable, PostgresCodable {
        var values: [String: String]

        init(_ values: [String: String]) {
            self.values = values
        }

        init(from decoder: any Decoder) throws {
            values = try decoder.singleValueContainer().decode([String: String].self)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(values)
        }
    }

    static let columns =
        "id, project_id, name, variables, is_default, target, target_secret_id, known_hosts, created_at, updated_at, archived_at, \(Cursor.column)"
    typealias Row = (UUID, UUID, String, Variables, Bool, String?, UUID?, String, Date, Date, Date?, Int64)

    static func record(_ row: Row) -> (item: Environment, position: Cursor) {
        (
            Environment(
                id: row.0, projectID: row.1, name: row.2, variables: row.3.values, isDefault: row.4, target: row.5, targetSecretID: row.6,
                knownHosts: row.7, createdAt: row.8, updatedAt: row.9, archivedAt: row.10),
            Cursor(createdMicroseconds: row.11, id: row.0)
        )
    }

    /// Creates an environment in a live project; with `isDefault` it becomes the project's
    /// default in place of the previous one.
    public func create(
        project: UUID, name: String, variables: [String: String] = [:], isDefault: Bool = false, target: String? = nil,
        knownHosts: String = "", actor: UUID?
    ) async throws -> Environment {
        let name = try Validate.name(name)
        let variables = Variables(try Self.validate(variables))
        let target = try target.flatMap(Self.validTarget)
        let knownHosts = try RepositoryStore.validKnownHosts(knownHosts)
        return try await client.write(logger: logger) { connection in
            try await connection.lockLiveProject(project, orElse: .notFound("project"), logger: logger)
            if isDefault { try await Self.clearDefault(project: project, on: connection, logger: logger) }
            let rows = try await connection.query(
                """
                INSERT INTO environments (project_id, name, variables, is_default, target, known_hosts)
                VALUES (\(project), \(name), \(variables), \(isDefault), \(target), \(knownHosts)) RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let environment = Self.record(row).item
                try await ActivityLog.record(
                    "environment.created", project: project, actor: actor, payload: Self.payload(environment), on: connection,
                    logger: logger)
                return environment
            }
            throw StoreError(.conflict, "the environment was not created")
        }
    }

    /// The environment of `project`; archived ones only with `includeArchived`. Another
    /// project's environment is not found.
    public func find(_ id: UUID, project: UUID, includeArchived: Bool = false) async throws -> Environment {
        try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM environments
                WHERE id = \(id) AND project_id = \(project) AND (archived_at IS NULL OR \(includeArchived))
                """, logger: logger)
            for try await row in rows.decode(Row.self) { return Self.record(row).item }
            throw StoreError.notFound("environment")
        }
    }

    /// The project's live environments, oldest first.
    public func list(project: UUID, page: PageRequest) async throws -> Page<Environment> {
        let after = Cursor.bounds(try page.position())
        return try await client.read { connection in
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM environments
                WHERE project_id = \(project) AND archived_at IS NULL
                  AND (\(after.first) OR (created_at, id) > (to_timestamp(0) + \(after.microseconds) * interval '1 microsecond', \(after.id)))
                ORDER BY created_at, id LIMIT \(page.limit + 1)
                """, logger: logger)
            return try await Page(rows.decode(Row.self), limit: page.limit, Self.record)
        }
    }

    /// Changes what is given and keeps the rest. `isDefault: true` makes the environment the
    /// default in place of the previous one; `isDefault: false` on the default is a conflict,
    /// since the project would be left without one.
    /// `target` and `targetSecret` change only when given: an empty target clears both (as does
    /// a secret id given as `.some(nil)`, the secret alone). The target's secret must be a live `ssh` secret of this
    /// environment.
    public func update(
        _ id: UUID, project: UUID, name: String? = nil, variables: [String: String]? = nil, isDefault: Bool? = nil,
        target: String? = nil, targetSecret: UUID?? = nil, knownHosts: String? = nil, actor: UUID?
    ) async throws -> Environment {
        let name = try name.map { try Validate.name($0) }
        let variables = try variables.map { Variables(try Self.validate($0)) }
        let newTarget = try target.map(Self.validTarget)
        let knownHosts = try knownHosts.map(RepositoryStore.validKnownHosts)
        return try await client.write(logger: logger) { connection in
            try await connection.lockLiveProject(project, orElse: .notFound("environment"), logger: logger)
            let current = try await connection.query(
                """
                SELECT is_default FROM environments WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL FOR UPDATE
                """, logger: logger)
            var wasDefault: Bool?
            for try await value in current.decode(Bool.self) { wasDefault = value }
            guard let wasDefault else { throw StoreError.notFound("environment") }
            if isDefault == false && wasDefault {
                throw StoreError(.conflict, "the project needs a default environment: make another environment the default instead")
            }
            if isDefault == true && !wasDefault { try await Self.clearDefault(project: project, on: connection, logger: logger) }
            if case .some(.some(let secret)) = targetSecret {
                let usable = try await connection.first(
                    """
                    SELECT 1::int4 FROM secrets WHERE id = \(secret) AND environment_id = \(id) AND kind = 'ssh' AND archived_at IS NULL
                    """, logger: logger, { try $0.decode(Int32.self) })
                guard usable != nil else {
                    throw StoreError.invalid("target_secret_id", "the target's key must be a live ssh secret of this environment")
                }
            }
            let setsTarget = newTarget != nil
            let setsSecret = targetSecret != nil
            let rows = try await connection.query(
                """
                UPDATE environments SET name = coalesce(\(name), name), variables = coalesce(\(variables), variables),
                    is_default = coalesce(\(isDefault), is_default),
                    target = CASE WHEN \(setsTarget) THEN \(newTarget.flatMap { $0 }) ELSE target END,
                    target_secret_id = CASE WHEN \(setsSecret) THEN \(targetSecret.flatMap { $0 })
                        WHEN \(setsTarget) AND \(newTarget.flatMap { $0 })::text IS NULL THEN NULL ELSE target_secret_id END,
                    known_hosts = coalesce(\(knownHosts), known_hosts), updated_at = now()
                WHERE id = \(id) RETURNING \(unescaped: Self.columns)
                """, logger: logger)
            for try await row in rows.decode(Row.self) {
                let environment = Self.record(row).item
                try await ActivityLog.record(
                    "environment.updated", project: project, actor: actor, payload: Self.payload(environment), on: connection,
                    logger: logger)
                return environment
            }
            throw StoreError.notFound("environment")
        }
    }

    /// Archives the environment and its secrets. The default environment, and one that live
    /// jobs run in, cannot be archived (conflict).
    public func archive(_ id: UUID, project: UUID, actor: UUID?) async throws {
        try await client.write(logger: logger) { connection in
            // Archive first: the row lock makes a concurrent job creation on this environment
            // either finish first (and be counted below) or find the environment archived.
            let rows = try await connection.query(
                """
                UPDATE environments SET archived_at = now(), updated_at = now()
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING name, is_default
                """, logger: logger)
            var archived: (name: String, isDefault: Bool)?
            for try await row in rows.decode((String, Bool).self) { archived = row }
            guard let archived else { throw StoreError.notFound("environment") }
            if archived.isDefault {
                throw StoreError(.conflict, "the default environment cannot be archived: make another environment the default first")
            }
            try await connection.refuseWhileLiveJobs(use: "environment_id", id, what: "environment", logger: logger)
            try await connection.query(
                "UPDATE secrets SET archived_at = now(), updated_at = now() WHERE environment_id = \(id) AND archived_at IS NULL",
                logger: logger)
            try await ActivityLog.record(
                "environment.archived", project: project, actor: actor,
                payload: ["environment_id": id.uuidString.lowercased(), "name": archived.name], on: connection, logger: logger)
        }
    }

    private static func clearDefault(project: UUID, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            UPDATE environments SET is_default = false, updated_at = now()
            WHERE project_id = \(project) AND is_default AND archived_at IS NULL
            """, logger: logger)
    }

    private static func payload(_ environment: Environment) -> [String: String] {
        [
            "environment_id": environment.id.uuidString.lowercased(), "name": environment.name,
            "default": environment.isDefault ? "true" : "false",
        ]
    }

    /// Variables a process can be given: at most 500, each named like a shell variable, with
    /// a value of at most 64 KiB and no NUL (which neither a process environment nor jsonb
    /// can hold). Messages never quote a name or a value.
    static func validate(_ variables: [String: String]) throws -> [String: String] {
        guard variables.count <= 500 else { throw StoreError.invalid("variables", "an environment has at most 500 variables") }
        for (name, value) in variables {
            guard isVariableName(name) else {
                throw StoreError.invalid(
                    "variables", "variable names start with a letter or an underscore and contain only letters, digits and underscores")
            }
            if let reason = refusedVariableName(name) { throw StoreError.invalid("variables", reason) }
            guard value.utf8.count <= 65_536 else { throw StoreError.invalid("variables", "a variable's value is at most 64 KiB") }
            guard !value.utf8.contains(0) else { throw StoreError.invalid("variables", "a variable's value must not contain NUL") }
        }
        return variables
    }

    /// A remote target, `ssh://user@host[:port]`; `nil` for an empty text (no target: run on the
    /// worker).
    static func validTarget(_ text: String) throws -> String? {
        let text = text.trimmingWhitespace()
        guard !text.isEmpty else { return nil }
        do {
            return try SSHTarget(text).description
        } catch {
            throw StoreError.invalid("target", "\(error)")
        }
    }

    /// What glibc ignores in the environment of a privileged program (its `UNSECURE_ENVVARS`, but
    /// `TMPDIR`, which only picks a directory): these change what the loader and the C library
    /// load, and the programs that start a script (`setpriv`, `bwrap`) still run as the worker's
    /// account when they read them.
    static let loaderVariables: Set<String> = [
        "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH", "MALLOC_TRACE", "NIS_PATH",
        "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TZDIR",
    ]

    /// Names that change how a shell or the dynamic loader starts, which no script's
    /// environment may set (a value of `BASH_ENV` would run a file before the script), and the
    /// `HARROW_` names the runner sets itself. Says why when `name` is one of them.
    public static func refusedVariableName(_ name: String) -> String? {
        if ["BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS"].contains(name) || name.hasPrefix("LD_")
            || loaderVariables.contains(name)
        {
            return "\(name) changes how a shell or the loader starts: it cannot be set"
        }
        if name.hasPrefix("HARROW_") { return "names starting with HARROW_ are set by Harrow itself" }
        return nil
    }

    /// Whether `name` can name an environment variable in any shell: `[A-Za-z_][A-Za-z0-9_]*`,
    /// at most 200 characters.
    static func isVariableName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= 200 else { return false }
        func isLetter(_ byte: UInt8) -> Bool { (65...90).contains(byte) || (97...122).contains(byte) || byte == 95 }
        return isLetter(first) && bytes.allSatisfy { isLetter($0) || (48...57).contains($0) }
    }
}
