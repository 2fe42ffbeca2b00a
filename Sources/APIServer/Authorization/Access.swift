import Foundation
import Store

/// Decides what a caller may do, as README's matrix says: a project role is the higher of the
/// caller's project and organization roles; platform admins may do everything. Someone with no
/// role sees nothing (404); someone whose role is too low may look but not act (403).
struct Access: Sendable {
    let memberships: MembershipStore

    /// The caller's role in the project, when it allows `permission`.
    @discardableResult
    func require(_ permission: Permission, project: UUID, caller: Caller) async throws -> Role {
        if caller.user.isAdmin { return .owner }
        guard let role = try await memberships.effectiveRole(user: caller.user.id, project: project) else {
            throw Problem.notFound("project not found")
        }
        guard permission.allows(role) else { throw Self.forbidden(permission, role) }
        return role
    }

    /// The caller's role in the organization, when it allows `permission`. With
    /// `visibleThroughProjects`, members of one of its projects only may read it (as a guest),
    /// nothing more: the organization listing shows them it, so reading it agrees.
    @discardableResult
    func require(_ permission: Permission, organization: UUID, caller: Caller, visibleThroughProjects: Bool = false) async throws -> Role {
        if caller.user.isAdmin { return .owner }
        if let role = try await memberships.organizationRole(user: caller.user.id, organization: organization) {
            guard permission.allows(role) else { throw Self.forbidden(permission, role) }
            return role
        }
        if visibleThroughProjects, try await memberships.hasProject(user: caller.user.id, in: organization) {
            guard permission == .read else { throw Self.forbidden(permission, .guest) }
            return .guest
        }
        throw Problem.notFound("organization not found")
    }

    static func forbidden(_ permission: Permission, _ role: Role) -> Problem {
        Problem.forbidden("this needs the \(permission.minimumRole.rawValue) role or higher; yours is \(role.rawValue)")
    }
}
