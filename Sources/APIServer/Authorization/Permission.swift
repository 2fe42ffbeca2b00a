import Store

/// What a caller may do in a project, and the least role that may do it. A user's role in a
/// project is the higher of their project and organization memberships
/// (`MembershipStore.effectiveRole`); platform admins may do everything.
///
/// A caller without any role in the project gets 404 for everything in it (it does not exist
/// for them); a caller with a role below what an action needs gets 403.
public enum Permission: String, Sendable, CaseIterable {
    /// See the project and everything in it (never secret values).
    case read
    /// Run a job now (creates an operation).
    case runJobs
    case cancelOperations
    case manageSchedules
    case manageNotificationRules
    case writeEnvironments
    case writeSecrets
    case writeTasks
    case writeJobs
    case writeRepositories
    case writeWebhooks
    case writeTriggers
    /// Add, change and remove members — never to a role above the caller's own.
    case manageMembers
    /// Archive the project, or records in it.
    case archive

    public var minimumRole: Role {
        switch self {
        case .read: .guest
        case .runJobs, .cancelOperations, .manageSchedules, .manageNotificationRules: .member
        case .writeEnvironments, .writeSecrets, .writeTasks, .writeJobs, .writeRepositories, .writeWebhooks, .writeTriggers,
            .manageMembers:
            .manager
        case .archive: .owner
        }
    }

    /// Whether `role` may do this.
    public func allows(_ role: Role) -> Bool {
        role >= minimumRole
    }
}
