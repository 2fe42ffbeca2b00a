import Foundation
import JobContracts
import Logging
import PostgresNIO

/// Git polling's records: which repositories are due for a poll (claimed by any number of
/// pollers at once, each due poll queued once), and what a poll found, recorded in one
/// transaction with the activities it causes and the operations its git triggers start.
public struct RepositoryPollStore: Sendable {
    /// The channel notified when a repository may have become due sooner than pollers planned
    /// (a git trigger was created): pollers listen on it and look again.
    public static let channel = "harrow_repository_polls"
    /// How long a refresh keeps a repository without git triggers polled.
    public static let refreshWindowSeconds = 3600

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// What one look for due repositories did.
    public struct Claim: Sendable, Hashable {
        /// The repositories whose `poll-repo` job was queued.
        public var queued: [UUID]
        /// Due repositories that nobody watches any more (no live git trigger, no recent
        /// refresh): no longer scheduled.
        public var unscheduled: [UUID]
        /// How long until the next scheduled poll of any repository (zero when one is due
        /// already); `nil` when none is scheduled.
        public var nextDueIn: Duration?
    }

    /// Claims up to `limit` due repositories (`FOR UPDATE SKIP LOCKED`: pollers never wait on
    /// each other, and each due poll is claimed once), plans the next poll of each watched one
    /// an interval ± `jitter` (a fraction of it) later, and queues its `poll-repo` job through
    /// the outbox, in one transaction.
    public func claimDue(limit: Int = 100, jitter: Double = 0.1) async throws -> Claim {
        let jitter = min(max(jitter, 0), 0.5)
        return try await client.inTransaction(logger: logger) { connection in
            let claimed = try await connection.all(
                """
                WITH due AS (
                    SELECT r.id, (coalesce(r.polled_until > now(), false) OR EXISTS (
                        SELECT 1 FROM git_triggers t WHERE t.repository_id = r.id AND t.archived_at IS NULL)) AS watched
                    FROM repositories r
                    WHERE r.archived_at IS NULL AND r.next_poll_at <= clock_timestamp()
                    ORDER BY r.next_poll_at LIMIT \(limit) FOR UPDATE OF r SKIP LOCKED)
                UPDATE repositories r SET next_poll_at = CASE WHEN due.watched
                    THEN clock_timestamp() + make_interval(secs => r.poll_interval_seconds * (1 + \(jitter) * (2 * random() - 1))) END
                FROM due WHERE r.id = due.id
                RETURNING r.id, due.watched
                """, logger: logger, { try $0.decode((UUID, Bool).self) })
            let queued = claimed.filter(\.1).map(\.0)
            try await Outbox.enqueue(try queued.map { try OutboxJob(PollRepo(repositoryID: $0)) }, on: connection, logger: logger)
            let next = try await connection.first(
                """
                SELECT (extract(epoch FROM min(next_poll_at) - clock_timestamp()) * 1000)::int8 FROM repositories
                WHERE archived_at IS NULL AND next_poll_at IS NOT NULL
                """, logger: logger, { try $0.decode(Int64?.self) })
            return Claim(
                queued: queued, unscheduled: claimed.filter { !$0.1 }.map(\.0),
                nextDueIn: next.flatMap { $0 }.map { .milliseconds(max(0, $0)) })
        }
    }

    /// `POST …/refresh`: queues a poll of the live repository now, and keeps it polled for
    /// ``refreshWindowSeconds`` even without git triggers.
    public func refresh(_ id: UUID, project: UUID) async throws {
        try await client.write(logger: logger) { connection in
            let found = try await connection.first(
                """
                UPDATE repositories SET polled_until = now() + make_interval(secs => \(Self.refreshWindowSeconds)),
                    next_poll_at = coalesce(next_poll_at, now() + make_interval(secs => poll_interval_seconds))
                WHERE id = \(id) AND project_id = \(project) AND archived_at IS NULL RETURNING id
                """, logger: logger, { try $0.decode(UUID.self) })
            guard found != nil else { throw StoreError.notFound("repository") }
            // One poll per repository at a time: the contract's unique key.
            try await Outbox.enqueue([try OutboxJob(PollRepo(repositoryID: id))], on: connection, logger: logger)
            try await connection.query("SELECT pg_notify(\(Self.channel), \(id.uuidString.lowercased()))", logger: logger)
        }
    }

    /// What a poll of the remote found.
    public enum Listing: Sendable, Hashable {
        /// The remote's refs, name → sha.
        case refs([String: String])
        /// The remote could not be read (unreachable, refused the key or host key, no such
        /// repository); the reason is said in the `repository.inaccessible` activity.
        case failed(String)
    }

    /// What recording a poll did.
    public struct Outcome: Sendable, Hashable {
        /// Whether this was the repository's first listing, recorded without changes.
        public var firstListing: Bool
        /// The changes since the previous listing (none for a first listing or a failure).
        public var changes: [RefChange]
        /// The operations git triggers started.
        public var operations: [Operation]
        /// Git triggers skipped because their stored pattern does not compile.
        public var brokenTriggers: [UUID]
    }

    /// Records a poll of the live repository `id` in one transaction, under the row's lock (so
    /// two polls never report the same change twice, and a redelivered poll reports nothing
    /// new): the refs, `accessible` and `checked_at`; an activity when accessibility changes
    /// (and for a first check that fails); for each changed ref a `repository.ref-…` activity
    /// and, for every live git trigger whose pattern matches the whole ref name and whose change
    /// type is the change's, an operation of its job (reason `git_trigger`) with its
    /// `run-operation` job. A first listing records refs only. `nil` when the repository is
    /// archived or gone.
    public func record(_ id: UUID, _ listing: Listing) async throws -> Outcome? {
        if case .refs(let refs) = listing {
            guard refs.count <= 100_000 else { throw StoreError.invalid("refs", "a repository can have at most 100000 refs recorded") }
            guard !refs.keys.contains(where: { $0.isEmpty || $0.utf8.count > 1024 }) else {
                throw StoreError.invalid("refs", "a ref name must be 1 to 1024 bytes")
            }
        }
        return try await client.write(logger: logger) { connection in
            let locked = try await connection.first(
                """
                SELECT project_id, refs::text, accessible, refs_listed_at IS NULL FROM repositories
                WHERE id = \(id) AND archived_at IS NULL FOR NO KEY UPDATE
                """, logger: logger, { try $0.decode((UUID, String, Bool?, Bool).self) })
            guard let (project, storedRefs, wasAccessible, neverListed) = locked else { return nil }
            let repositoryID = id.uuidString.lowercased()
            let accessible: Bool
            var outcome = Outcome(firstListing: false, changes: [], operations: [], brokenTriggers: [])
            var reason: String?
            switch listing {
            case .failed(let why):
                accessible = false
                reason = why
                try await connection.query(
                    "UPDATE repositories SET accessible = false, checked_at = now() WHERE id = \(id)", logger: logger)
            case .refs(let refs):
                accessible = true
                outcome.firstListing = neverListed
                if !neverListed { outcome.changes = RefChange.between(try [String: String](jsonObject: storedRefs), refs) }
                try await connection.query(
                    """
                    UPDATE repositories SET refs = \(try refs.jsonText())::jsonb, accessible = true, checked_at = now(),
                        refs_listed_at = now()
                    WHERE id = \(id)
                    """, logger: logger)
            }
            if wasAccessible != accessible, wasAccessible != nil || !accessible {
                var payload = ["repository_id": repositoryID]
                if let reason { payload["reason"] = String(reason.prefix(1000)) }
                try await ActivityLog.record(
                    accessible ? "repository.accessible" : "repository.inaccessible", project: project, actor: nil, payload: payload,
                    on: connection, logger: logger)
            }
            guard !outcome.changes.isEmpty else { return outcome }
            for change in outcome.changes {
                try await ActivityLog.record(
                    change.activityName, project: project, actor: nil,
                    payload: ["repository_id": repositoryID, "ref": change.ref, "sha": change.sha, "previous_sha": change.previousSHA],
                    on: connection, logger: logger)
            }
            let triggers = try await connection.all(
                """
                SELECT \(unescaped: GitTriggerStore.columns) FROM git_triggers
                WHERE repository_id = \(id) AND archived_at IS NULL ORDER BY created_at, id
                """, logger: logger, { try GitTriggerStore.record($0).item })
            for trigger in triggers {
                guard let pattern = try? Regex(trigger.refPattern) else {
                    logger.error(
                        "a git trigger's ref pattern does not compile; the trigger is skipped",
                        metadata: ["git_trigger_id": "\(trigger.id.uuidString.lowercased())", "ref_pattern": "\(trigger.refPattern)"])
                    outcome.brokenTriggers.append(trigger.id)
                    continue
                }
                for change in outcome.changes where change.type == trigger.changeType && change.ref.wholeMatch(of: pattern) != nil {
                    let operation = try await OperationStore.queue(
                        job: trigger.jobID, project: project, reason: .gitTrigger, requestedBy: nil,
                        parameters: change.parameters(repository: id), on: connection, logger: logger)
                    if let operation { outcome.operations.append(operation) }
                }
            }
            return outcome
        }
    }
}
