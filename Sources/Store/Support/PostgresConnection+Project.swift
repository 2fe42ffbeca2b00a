import Foundation
import Logging
import PostgresNIO

extension PostgresConnection {
    /// Locks a live project's row until the transaction ends, or throws `missing`. The lock
    /// (`FOR NO KEY UPDATE`) serializes the writers that keep a rule across a project's rows
    /// (one default environment, names unique among live tasks and jobs) and holds off the
    /// project's archiving, which would miss rows this transaction adds.
    func lockLiveProject(_ id: UUID, orElse missing: StoreError, logger: Logger) async throws {
        let rows = try await query("SELECT id FROM projects WHERE id = \(id) AND archived_at IS NULL FOR NO KEY UPDATE", logger: logger)
        guard try await rows.decode(UUID.self).contains(where: { _ in true }) else { throw missing }
    }

    /// Throws a conflict when live jobs refer to the record `id` through `column` (a constant:
    /// `task_id` or `environment_id`), so archiving it does not leave jobs that cannot run.
    func refuseWhileLiveJobs(use column: String, _ id: UUID, what: String, logger: Logger) async throws {
        let rows = try await query(
            "SELECT count(*)::int8 FROM jobs WHERE \(unescaped: column) = \(id) AND archived_at IS NULL", logger: logger)
        for try await count in rows.decode(Int.self) where count > 0 {
            let (jobs, them) = count == 1 ? ("a live job uses", "it") : ("\(count) live jobs use", "them")
            throw StoreError(.conflict, "\(jobs) this \(what): archive or change \(them) first")
        }
    }
}

extension PostgresConnection {
    /// Throws a duplicate when a live row of `table` (a constant: `tasks` or `jobs`) in
    /// `project` other than `except` has `name`. The schema has no unique index on these
    /// names, so callers hold ``lockLiveProject(_:orElse:logger:)`` to keep two writers from
    /// both passing this check.
    func refuseLiveName(_ name: String, table: String, project: UUID, except: UUID?, what: String, logger: Logger) async throws {
        let rows = try await query(
            """
            SELECT id FROM \(unescaped: table)
            WHERE project_id = \(project) AND name = \(name) AND archived_at IS NULL AND id IS DISTINCT FROM \(except)
            """, logger: logger)
        if try await rows.decode(UUID.self).contains(where: { _ in true }) {
            throw StoreError(.duplicate, "\(what) with this name exists in the project", field: "name")
        }
    }
}
