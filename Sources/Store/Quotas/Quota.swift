import Foundation
import Logging
import PostgresNIO

/// One of the ``UserQuotas``: what it counts, and the name the API and the flags give it.
enum Quota: Sendable {
    case organizations
    case pendingKeys
    case queuedOperations

    /// The limit's name: its `api-server` flag without the dashes, and the `limit` of the 403.
    var name: String {
        switch self {
        case .organizations: "max-organizations-per-user"
        case .pendingKeys: "max-pending-keys-per-user"
        case .queuedOperations: "max-queued-operations-per-user"
        }
    }

    /// What is counted, in a sentence's words.
    var counted: String {
        switch self {
        case .organizations: "organizations created by this user (archived ones aside)"
        case .pendingKeys: "SSH keys and ssh secrets of this user waiting for their key pair"
        case .queuedOperations: "operations requested by this user queued or running"
        }
    }

    /// What the user can do about it.
    var remedy: String {
        switch self {
        case .organizations: "archive one first"
        case .pendingKeys: "wait until they are generated"
        case .queuedOperations: "wait until some have finished"
        }
    }

    func limit(in quotas: UserQuotas) -> Int? {
        switch self {
        case .organizations: quotas.organizations
        case .pendingKeys: quotas.pendingKeys
        case .queuedOperations: quotas.queuedOperations
        }
    }

    /// How many `user` holds now.
    func count(for user: UUID) -> PostgresQuery {
        switch self {
        case .organizations:
            "SELECT count(*)::int8 FROM organizations WHERE created_by = \(user) AND archived_at IS NULL"
        case .pendingKeys:
            """
            SELECT (SELECT count(*) FROM ssh_keys WHERE created_by = \(user) AND status = 'pending' AND archived_at IS NULL)
                 + (SELECT count(*) FROM secrets
                    WHERE created_by = \(user) AND kind = 'ssh' AND status = 'pending' AND archived_at IS NULL)
            """
        case .queuedOperations:
            "SELECT count(*)::int8 FROM operations WHERE requested_by = \(user) AND status IN ('queued', 'running')"
        }
    }
}

extension PostgresConnection {
    /// Throws ``StoreError`` `quotaExceeded` when `user` holds `quota`'s limit already. Locks the
    /// user's row first (`FOR NO KEY UPDATE`, which rows that merely refer to the user do not
    /// wait for) until the transaction ends: a second creation by the same user waits here for
    /// this one to commit, then counts its row. No limit, no user, or a platform admin: nothing
    /// is checked or locked.
    func requireQuota(_ quota: Quota, of quotas: UserQuotas, for user: UUID?, logger: Logger) async throws {
        guard let limit = quota.limit(in: quotas), let user else { return }
        let isAdmin = try await first(
            "SELECT is_admin FROM users WHERE id = \(user) FOR NO KEY UPDATE", logger: logger, { try $0.decode(Bool.self) })
        // A user that does not exist is the foreign key's to refuse.
        guard isAdmin == false else { return }
        let held = try await first(quota.count(for: user), logger: logger, { try $0.decode(Int64.self) }) ?? 0
        guard held < limit else {
            throw StoreError(
                .quotaExceeded,
                "\(held) \(quota.counted): \(quota.name) allows \(limit); \(quota.remedy)",
                limit: quota.name)
        }
    }
}
