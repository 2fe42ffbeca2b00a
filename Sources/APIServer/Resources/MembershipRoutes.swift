import Foundation
import HTTPTypes
import Hummingbird
import JobContracts
import Store

/// Members of organizations and projects, and invitations. Nobody grants a role above their
/// own; only the invited user may accept or refuse an invitation.
struct MembershipRoutes: Sendable {
    let memberships: MembershipStore
    let invitations: InvitationStore
    let access: Access
    let configuration: APIConfiguration

    struct MemberBody: RequestBody {
        static let fields: Set<String> = ["user_id", "role"]
        var userId: UUID?
        var role: Role
    }

    /// A membership as the API shows it: `{"user": {...}, "role", "scope": "organization" |
    /// "project", "scope_id", "created_at", "updated_at"}`.
    struct MemberView: ResponseEncodable {
        var user: User
        var role: Role
        var scope: String
        var scopeId: UUID
        var createdAt: Date
        var updatedAt: Date

        init(_ membership: Membership) {
            user = membership.user
            role = membership.role
            switch membership.scope {
            case .organization(let id): (scope, scopeId) = ("organization", id)
            case .project(let id): (scope, scopeId) = ("project", id)
            }
            createdAt = membership.createdAt
            updatedAt = membership.updatedAt
        }
    }

    struct InvitationBody: RequestBody {
        static let fields: Set<String> = ["email", "role", "project_id"]
        var email: String
        var role: Role
        var projectId: UUID?
    }

    func addRoutes(to router: some RouterMethods<APIContext>) {
        let limit = configuration.bodyLimit
        for kind in ["organizations", "projects"] {
            let scopeParameter = kind == "organizations" ? "organization" : "project"
            let members = router.group("\(kind)/:\(scopeParameter)/members")
            members.get { request, context -> PageBody<MemberView> in
                let (scope, _, _) = try await resolve(kind, .read, context)
                let page = try await memberships.list(scope, page: try request.pageRequest())
                return PageBody(Page(items: page.items.map(MemberView.init), nextCursor: page.nextCursor))
            }
            members.post { request, context -> EditedResponse<MemberView> in
                let (scope, caller, role) = try await resolve(kind, .manageMembers, context)
                let body = try await request.json(MemberBody.self, limit: limit)
                try Self.notAbove(role, body.role)
                let user = try Fields.required(body.userId, "user_id")
                let membership = try await memberships.add(user, to: scope, role: body.role, actor: caller.user.id)
                return EditedResponse(status: .created, response: MemberView(membership))
            }
            members.patch(":user") { request, context -> MemberView in
                let (scope, caller, role) = try await resolve(kind, .manageMembers, context)
                let body = try await request.json(MemberBody.self, limit: limit)
                try Self.notAbove(role, body.role)
                return MemberView(
                    try await memberships.changeRole(of: try context.id("user"), in: scope, to: body.role, actor: caller.user.id))
            }
            members.delete(":user") { _, context -> HTTPResponse.Status in
                let (scope, caller, _) = try await resolve(kind, .manageMembers, context)
                try await memberships.remove(try context.id("user"), from: scope, actor: caller.user.id)
                return .noContent
            }
        }

        router.post("organizations/:organization/invitations") { request, context -> EditedResponse<Invitation> in
            let organization = try context.id("organization")
            let caller = try context.caller()
            let role = try await access.require(.manageMembers, organization: organization, caller: caller)
            let body = try await request.json(InvitationBody.self, limit: limit)
            try Self.notAbove(role, body.role)
            let base = configuration.publicURL
            let invitation = try await invitations.create(
                organization: organization, project: body.projectId, email: body.email, role: body.role, invitedBy: caller.user.id
            ) { invitation in
                [
                    try OutboxJob(
                        SendMail(
                            template: "invitation", to: invitation.email,
                            data: [
                                "inviter": caller.user.name, "role": invitation.role.rawValue,
                                "link": "\(base)/invitations/\(invitation.id.uuidString.lowercased())",
                            ]
                        ))
                ]
            }
            return EditedResponse(status: .created, response: invitation)
        }
        router.get("organizations/:organization/invitations") { request, context -> PageBody<Invitation> in
            let organization = try context.id("organization")
            try await access.require(.manageMembers, organization: organization, caller: try context.caller())
            return PageBody(try await invitations.listOpen(organization: organization, page: try request.pageRequest()))
        }
        router.delete("organizations/:organization/invitations/:id") { _, context -> HTTPResponse.Status in
            let organization = try context.id("organization")
            let caller = try context.caller()
            try await access.require(.manageMembers, organization: organization, caller: caller)
            try await invitations.revoke(try context.id(), organization: organization, actor: caller.user.id)
            return .noContent
        }
        router.post("invitations/:id/accept") { _, context -> Invitation in
            try await invitations.accept(try context.id(), by: try context.caller().user)
        }
        router.post("invitations/:id/refuse") { _, context -> Invitation in
            try await invitations.refuse(try context.id(), by: try context.caller().user)
        }
    }

    /// The membership scope of the path, the caller, and the caller's role there.
    private func resolve(_ kind: String, _ permission: Permission, _ context: APIContext) async throws -> (Membership.Scope, Caller, Role) {
        let caller = try context.caller()
        if kind == "organizations" {
            let organization = try context.id("organization")
            return (.organization(organization), caller, try await access.require(permission, organization: organization, caller: caller))
        }
        let project = try context.id("project")
        return (.project(project), caller, try await access.require(permission, project: project, caller: caller))
    }

    /// Nobody grants more than they have.
    static func notAbove(_ own: Role, _ granted: Role) throws {
        guard granted <= own else {
            throw Problem.forbidden("you cannot grant the \(granted.rawValue) role: yours is \(own.rawValue)")
        }
    }
}
