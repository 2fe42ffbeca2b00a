import Foundation
import HTTPTypes
import Hummingbird
import JobContracts
import Store

/// Members of organizations and projects, and invitations. People join by invitation, accepted
/// by the invited address; adding a user by id is for platform admins only, since it needs no
/// consent. Nobody grants a role above their own, or changes or removes a member whose role is
/// above their own; only the invited user may accept or refuse an invitation. Members'
/// addresses are shown only to members of the same organization.
struct MembershipRoutes: Sendable {
    let memberships: MembershipStore
    let invitations: InvitationStore
    let access: Access
    let mailThrottle: MailThrottle
    let configuration: APIConfiguration

    struct MemberBody: RequestBody {
        static let fields: Set<String> = ["user_id", "role"]
        var userId: UUID?
        var role: Role
    }

    /// A member as listings show them: the address only to members of the same organization.
    struct MemberUser: Encodable {
        var id: UUID
        var name: String
        var email: String?

        enum CodingKeys: String, CodingKey {
            case id, name, email
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(name, forKey: .name)
            // Written as null when hidden, so the field is always present.
            try container.encode(email, forKey: .email)
        }
    }

    /// A membership as the API shows it: `{"user": {"id", "name", "email"}, "role", "scope":
    /// "organization" | "project", "scope_id", "created_at", "updated_at"}`.
    struct MemberView: ResponseEncodable {
        var user: MemberUser
        var role: Role
        var scope: String
        var scopeId: UUID
        var createdAt: Date
        var updatedAt: Date

        init(_ membership: Membership, showsEmail: Bool) {
            user = MemberUser(id: membership.user.id, name: membership.user.name, email: showsEmail ? membership.user.email : nil)
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
                let (scope, caller, _) = try await resolve(kind, .read, context)
                let page = try await memberships.list(scope, page: try request.pageRequest())
                let showsEmail = try await showsEmail(to: caller, in: scope)
                return PageBody(Page(items: page.items.map { MemberView($0, showsEmail: showsEmail) }, nextCursor: page.nextCursor))
            }
            members.post { request, context -> EditedResponse<MemberView> in
                let (scope, caller, _) = try await resolve(kind, .manageMembers, context)
                guard caller.user.isAdmin else {
                    throw Problem.forbidden(
                        "people join by invitation, which they accept: POST /v1/organizations/{organization}/invitations"
                            + " (adding a user by id is for platform admins)")
                }
                let body = try await request.json(MemberBody.self, limit: limit)
                let user = try Fields.required(body.userId, "user_id")
                let membership = try await memberships.add(user, to: scope, role: body.role, actor: caller.user.id)
                return EditedResponse(status: .created, response: MemberView(membership, showsEmail: true))
            }
            members.patch(":user") { request, context -> MemberView in
                let (scope, caller, role) = try await resolve(kind, .manageMembers, context)
                let body = try await request.json(MemberBody.self, limit: limit)
                try Self.notAbove(role, body.role)
                let membership = try await memberships.changeRole(
                    of: try context.id("user"), in: scope, to: body.role, actor: caller.user.id,
                    actorRole: Self.highestChangeableRole(role, caller))
                return MemberView(membership, showsEmail: try await showsEmail(to: caller, in: scope))
            }
            members.delete(":user") { _, context -> HTTPResponse.Status in
                let (scope, caller, role) = try await resolve(kind, .manageMembers, context)
                try await memberships.remove(
                    try context.id("user"), from: scope, actor: caller.user.id, actorRole: Self.highestChangeableRole(role, caller))
                return .noContent
            }
        }

        router.post("organizations/:organization/invitations") { request, context -> EditedResponse<Invitation> in
            let organization = try context.id("organization")
            let caller = try context.caller()
            let role = try await access.require(.manageMembers, organization: organization, caller: caller)
            let body = try await request.json(InvitationBody.self, limit: limit)
            try Self.notAbove(role, body.role)
            try await mailThrottle.reserve(to: body.email, caller: "user:\(caller.user.id.uuidString.lowercased())")
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

    /// Whether the caller may see members' addresses in `scope`.
    private func showsEmail(to caller: Caller, in scope: Membership.Scope) async throws -> Bool {
        if caller.user.isAdmin { return true }
        return try await memberships.sharesOrganization(caller.user.id, with: scope)
    }

    /// The role a member may have at most for the caller to change or remove them: their own;
    /// platform admins have no limit.
    static func highestChangeableRole(_ role: Role, _ caller: Caller) -> Role? {
        caller.user.isAdmin ? nil : role
    }

    /// Nobody grants more than they have.
    static func notAbove(_ own: Role, _ granted: Role) throws {
        guard granted <= own else {
            throw Problem.forbidden("you cannot grant the \(granted.rawValue) role: yours is \(own.rawValue)")
        }
    }
}
