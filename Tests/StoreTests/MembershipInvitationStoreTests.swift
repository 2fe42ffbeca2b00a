import Foundation
import HarrowTestSupport
import PostgresNIO
import Testing

@testable import Store

@Suite struct MembershipInvitationStoreTests {
    @Test func organizationMembersAreAddedChangedListedAndRemoved() async throws {
        try await Stores.with("member_org") { stores in
            let (ada, organization, _) = try await stores.ownedProject()
            let bob = try await stores.user("Bob")
            let scope = Membership.Scope.organization(organization.id)
            let added = try await stores.memberships.add(bob.id, to: scope, role: .member, actor: ada.id)
            #expect(added.user == bob && added.role == .member && added.scope == scope)

            let promoted = try await stores.memberships.changeRole(of: bob.id, in: scope, to: .manager, actor: ada.id, actorRole: nil)
            #expect(promoted.role == .manager && promoted.createdAt == added.createdAt)
            let members = try await stores.memberships.list(scope, page: try PageRequest())
            #expect(members.items.map(\.user.id) == [ada.id, bob.id] && members.items.map(\.role) == [.owner, .manager])

            try await stores.memberships.remove(bob.id, from: scope, actor: ada.id, actorRole: nil)
            #expect(try await stores.memberships.list(scope, page: try PageRequest()).items.map(\.user.id) == [ada.id])
            let rows = try await stores.client.value(
                "SELECT count(*)::int8 FROM organization_memberships WHERE user_id = \(bob.id)", as: Int.self)
            #expect(rows == 0, "memberships are deleted, not archived")
            let activities = try await stores.client.value(
                """
                SELECT string_agg(name || ':' || (payload->>'role'), ',' ORDER BY id) FROM activities
                WHERE organization_id = \(organization.id) AND project_id IS NULL AND payload->>'user_id' = \(bob.id.uuidString.lowercased())
                """, as: String.self)
            #expect(activities == "membership.created:member,membership.updated:manager,membership.deleted:manager")
        }
    }

    @Test func membershipFailurePaths() async throws {
        try await Stores.with("member_failures") { stores in
            let (ada, organization, project) = try await stores.ownedProject()
            let bob = try await stores.user("Bob")
            let scope = Membership.Scope.organization(organization.id)

            let duplicate = await #expect(throws: StoreError.self) {
                try await stores.memberships.add(ada.id, to: scope, role: .member, actor: ada.id)
            }
            #expect(duplicate?.code == .duplicate && duplicate?.constraint == "organization_memberships_pkey")
            let unknownUser = await #expect(throws: StoreError.self) {
                try await stores.memberships.add(UUID(), to: .project(project.id), role: .member, actor: ada.id)
            }
            #expect(unknownUser?.code == .notFound && unknownUser?.field == "user_id")
            await #expect(throws: StoreError.notFound("organization")) {
                try await stores.memberships.add(bob.id, to: .organization(UUID()), role: .member, actor: ada.id)
            }
            await #expect(throws: StoreError.notFound("project")) {
                try await stores.memberships.add(bob.id, to: .project(UUID()), role: .member, actor: ada.id)
            }
            await #expect(throws: StoreError.notFound("membership")) {
                try await stores.memberships.changeRole(of: bob.id, in: scope, to: .owner, actor: ada.id, actorRole: nil)
            }
            await #expect(throws: StoreError.notFound("membership")) {
                try await stores.memberships.remove(bob.id, from: .project(project.id), actor: ada.id, actorRole: nil)
            }

            // The last owner stays: neither demoted nor removed, until there is another.
            let demote = await #expect(throws: StoreError.self) {
                try await stores.memberships.changeRole(of: ada.id, in: scope, to: .manager, actor: ada.id, actorRole: nil)
            }
            #expect(demote?.code == .conflict)
            let leave = await #expect(throws: StoreError.self) {
                try await stores.memberships.remove(ada.id, from: scope, actor: ada.id, actorRole: nil)
            }
            #expect(leave?.code == .conflict)
            _ = try await stores.memberships.add(bob.id, to: scope, role: .owner, actor: ada.id)
            try await stores.memberships.remove(ada.id, from: scope, actor: bob.id, actorRole: nil)
            // A project's owners include its organization's: Bob still owns the project.
            _ = try await stores.memberships.add(ada.id, to: .project(project.id), role: .owner, actor: bob.id)
            try await stores.memberships.remove(ada.id, from: .project(project.id), actor: bob.id, actorRole: nil)

            try await stores.projects.archive(project.id, actor: bob.id)
            await #expect(throws: StoreError.notFound("project")) {
                try await stores.memberships.add(ada.id, to: .project(project.id), role: .member, actor: bob.id)
            }
            try await stores.organizations.archive(organization.id, actor: bob.id)
            await #expect(throws: StoreError.notFound("organization")) {
                try await stores.memberships.changeRole(of: bob.id, in: scope, to: .member, actor: bob.id, actorRole: nil)
            }
        }
    }

    /// Nobody changes or removes a member whose role is above their own; owners may change
    /// owners. The role checked is read under the same lock as the change.
    @Test func membersAboveTheActorsRoleCannotBeChangedOrRemoved() async throws {
        try await Stores.with("member_above") { stores in
            let (ada, organization, project) = try await stores.ownedProject()
            let bob = try await stores.user("Bob")
            let carol = try await stores.user("Carol")
            let scope = Membership.Scope.organization(organization.id)
            _ = try await stores.memberships.add(bob.id, to: scope, role: .manager, actor: ada.id)
            _ = try await stores.memberships.add(carol.id, to: scope, role: .owner, actor: ada.id)
            let demote = await #expect(throws: StoreError.self) {
                try await stores.memberships.changeRole(of: ada.id, in: scope, to: .guest, actor: bob.id, actorRole: .manager)
            }
            #expect(demote?.code == .forbidden)
            let remove = await #expect(throws: StoreError.self) {
                try await stores.memberships.remove(carol.id, from: scope, actor: bob.id, actorRole: .manager)
            }
            #expect(remove?.code == .forbidden)
            #expect(try await stores.memberships.organizationRole(user: ada.id, organization: organization.id) == .owner)
            // Equal roles may be changed; owners change owners.
            _ = try await stores.memberships.changeRole(of: carol.id, in: scope, to: .member, actor: ada.id, actorRole: .owner)
            _ = try await stores.memberships.add(carol.id, to: .project(project.id), role: .owner, actor: ada.id)
            let projectOwner = await #expect(throws: StoreError.self) {
                try await stores.memberships.remove(carol.id, from: .project(project.id), actor: bob.id, actorRole: .manager)
            }
            #expect(projectOwner?.code == .forbidden)
            try await stores.memberships.remove(bob.id, from: scope, actor: bob.id, actorRole: .manager)
        }
    }

    /// Members who joined in one transaction share `created_at`; the user id orders them, so
    /// pages neither repeat nor skip anyone.
    @Test func membersArePagedWithTheUserIDAsTiebreaker() async throws {
        try await Stores.with("member_pages") { stores in
            let (ada, _, project) = try await stores.ownedProject()
            var users: [UUID] = []
            for index in 0..<5 { users.append(try await stores.user("U\(index)").id) }
            try await stores.write(
                """
                INSERT INTO project_memberships (project_id, user_id, role)
                SELECT \(project.id), user_id, 'member' FROM unnest(\(users)::uuid[]) AS user_id
                """)
            let late = try await stores.memberships.add(ada.id, to: .project(project.id), role: .guest, actor: ada.id)
            let read = try await stores.allPages(limit: 2) { try await stores.memberships.list(.project(project.id), page: $0) }
            let sorted = try await stores.client.value(
                "SELECT string_agg(id::text, ',' ORDER BY id) FROM unnest(\(users)::uuid[]) AS id", as: String.self)
            #expect(
                read.items.map(\.user.id) == (sorted ?? "").split(separator: ",").compactMap { UUID(uuidString: String($0)) } + [
                    late.user.id
                ])
            #expect(read.pages == 3)
            #expect(Set(read.items.map(\.scope)) == [.project(project.id)])
        }
    }

    /// The effective role is the higher of the project and organization roles.
    @Test func theEffectiveRoleIsTheHigherOfProjectAndOrganizationRoles() async throws {
        try await Stores.with("member_effective") { stores in
            let (ada, organization, project) = try await stores.ownedProject()
            let bob = try await stores.user("Bob")
            let memberships = stores.memberships
            #expect(try await memberships.effectiveRole(user: ada.id, project: project.id) == .owner)
            #expect(try await memberships.effectiveRole(user: bob.id, project: project.id) == nil)
            _ = try await memberships.add(bob.id, to: .project(project.id), role: .guest, actor: ada.id)
            #expect(try await memberships.effectiveRole(user: bob.id, project: project.id) == .guest)
            _ = try await memberships.add(bob.id, to: .organization(organization.id), role: .member, actor: ada.id)
            #expect(try await memberships.effectiveRole(user: bob.id, project: project.id) == .member)
            _ = try await memberships.changeRole(of: bob.id, in: .project(project.id), to: .manager, actor: ada.id, actorRole: nil)
            #expect(try await memberships.effectiveRole(user: bob.id, project: project.id) == .manager)
            try await memberships.remove(bob.id, from: .project(project.id), actor: ada.id, actorRole: nil)
            #expect(try await memberships.effectiveRole(user: bob.id, project: project.id) == .member)
            #expect(try await memberships.effectiveRole(user: bob.id, project: UUID()) == nil)
            try await stores.projects.archive(project.id, actor: ada.id)
            #expect(try await memberships.effectiveRole(user: ada.id, project: project.id) == nil)
        }
    }

    @Test func anInvitationIsAcceptedByItsAddresseeOnly() async throws {
        try await Stores.with("invite_accept") { stores in
            let (ada, organization, project) = try await stores.ownedProject()
            let bob = try await stores.users.create(email: "Bob@Example.com", name: "Bob", passwordHash: "h")
            let eve = try await stores.user("Eve")
            let invitation = try await stores.invitations.create(
                organization: organization.id, project: project.id, email: " bob@EXAMPLE.com ", role: .manager, invitedBy: ada.id)
            #expect(invitation.email == "bob@EXAMPLE.com" && invitation.projectID == project.id && invitation.acceptedAt == nil)
            let lifetime = invitation.expiresAt.timeIntervalSince(invitation.createdAt)
            #expect(abs(lifetime - 7 * 86_400) < 1)
            #expect(try await stores.invitations.listOpen(organization: organization.id, page: try PageRequest()).items == [invitation])

            // Someone else cannot learn that it exists.
            await #expect(throws: StoreError.notFound("invitation")) { try await stores.invitations.accept(invitation.id, by: eve) }
            await #expect(throws: StoreError.notFound("invitation")) { try await stores.invitations.refuse(invitation.id, by: eve) }
            await #expect(throws: StoreError.notFound("invitation")) { try await stores.invitations.accept(UUID(), by: bob) }

            let accepted = try await stores.invitations.accept(invitation.id, by: bob)
            #expect(accepted.acceptedAt != nil && accepted.refusedAt == nil)
            #expect(try await stores.memberships.effectiveRole(user: bob.id, project: project.id) == .manager)
            #expect(try await stores.invitations.listOpen(organization: organization.id, page: try PageRequest()).items.isEmpty)
            #expect(try await stores.invitations.find(invitation.id, organization: organization.id) == accepted)

            let twice = await #expect(throws: StoreError.self) { try await stores.invitations.accept(invitation.id, by: bob) }
            #expect(twice?.code == .conflict)
            let refuseAfter = await #expect(throws: StoreError.self) { try await stores.invitations.refuse(invitation.id, by: bob) }
            #expect(refuseAfter?.code == .conflict)
            #expect(
                try await stores.activityNames(project: project.id).suffix(3) == [
                    "invitation.created", "membership.created", "invitation.accepted",
                ])
            // The feed is readable by project guests outside the organization: no address in it.
            #expect(
                try await stores.count("SELECT count(*)::int8 FROM activities WHERE name LIKE 'invitation.%' AND payload ? 'email'") == 0)
        }
    }

    /// Accepting adds an organization membership for an organization invitation, and never
    /// demotes a member who has a higher role already.
    @Test func acceptingGrantsTheRoleWithoutDemoting() async throws {
        try await Stores.with("invite_grant") { stores in
            let (ada, organization, project) = try await stores.ownedProject()
            let bob = try await stores.user("Bob")
            let toOrganization = try await stores.invitations.create(
                organization: organization.id, email: bob.email, role: .member, invitedBy: ada.id)
            _ = try await stores.invitations.accept(toOrganization.id, by: bob)
            let role = try await stores.client.value(
                "SELECT role FROM organization_memberships WHERE organization_id = \(organization.id) AND user_id = \(bob.id)",
                as: String.self)
            #expect(role == "member")

            _ = try await stores.memberships.add(bob.id, to: .project(project.id), role: .owner, actor: ada.id)
            let lower = try await stores.invitations.create(
                organization: organization.id, project: project.id, email: bob.email, role: .guest, invitedBy: ada.id)
            _ = try await stores.invitations.accept(lower.id, by: bob)
            #expect(try await stores.memberships.list(.project(project.id), page: try PageRequest()).items.map(\.role) == [.owner])
            let higher = try await stores.invitations.create(
                organization: organization.id, email: bob.email, role: .manager, invitedBy: ada.id)
            _ = try await stores.invitations.accept(higher.id, by: bob)
            #expect(
                try await stores.memberships.list(.organization(organization.id), page: try PageRequest()).items.map(\.role) == [
                    .owner, .manager,
                ])
        }
    }

    @Test func invitationFailurePaths() async throws {
        try await Stores.with("invite_failures") { stores in
            let (ada, organization, project) = try await stores.ownedProject()
            let other = try await stores.organizations.create(name: "Other", owner: ada.id)
            let foreignProject = try await stores.projects.create(organization: other.id, name: "Foreign", actor: ada.id)
            let bob = try await stores.user("Bob")

            let crossOrganization = await #expect(throws: StoreError.self) {
                try await stores.invitations.create(
                    organization: organization.id, project: foreignProject.id, email: bob.email, role: .member, invitedBy: ada.id)
            }
            #expect(crossOrganization?.code == .notFound && crossOrganization?.field == "project_id")
            #expect(crossOrganization?.constraint == "invitations_project_id_fkey")
            let unknownProject = await #expect(throws: StoreError.self) {
                try await stores.invitations.create(
                    organization: organization.id, project: UUID(), email: bob.email, role: .member, invitedBy: ada.id)
            }
            #expect(unknownProject?.code == .notFound && unknownProject?.field == "project_id")
            await #expect(throws: StoreError.notFound("organization")) {
                try await stores.invitations.create(organization: UUID(), email: bob.email, role: .member, invitedBy: ada.id)
            }
            let unknownInviter = await #expect(throws: StoreError.self) {
                try await stores.invitations.create(organization: organization.id, email: bob.email, role: .member, invitedBy: UUID())
            }
            #expect(unknownInviter?.code == .notFound && unknownInviter?.constraint == "invitations_invited_by_fkey")
            for email in ["no-at-sign", "two words@example.com", "@example.com"] {
                let invalid = await #expect(throws: StoreError.self) {
                    try await stores.invitations.create(organization: organization.id, email: email, role: .member, invitedBy: ada.id)
                }
                #expect(invalid?.code == .invalid && invalid?.field == "email")
            }
            let lifetime = await #expect(throws: StoreError.self) {
                try await stores.invitations.create(
                    organization: organization.id, email: bob.email, role: .member, invitedBy: ada.id, expiresIn: .zero)
            }
            #expect(lifetime?.code == .invalid)

            // Expired: a conflict for its addressee, no longer listed.
            let expiring = try await stores.invitations.create(
                organization: organization.id, email: bob.email, role: .member, invitedBy: ada.id)
            try await stores.write("UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = \(expiring.id)")
            let expired = await #expect(throws: StoreError.self) { try await stores.invitations.accept(expiring.id, by: bob) }
            #expect(expired?.code == .conflict && expired?.message.contains("expired") == true)
            #expect(try await stores.invitations.listOpen(organization: organization.id, page: try PageRequest()).items.isEmpty)

            // Refused: no membership, and no second answer.
            let refused = try await stores.invitations.create(
                organization: organization.id, email: bob.email, role: .member, invitedBy: ada.id)
            #expect(try await stores.invitations.refuse(refused.id, by: bob).refusedAt != nil)
            let acceptAfter = await #expect(throws: StoreError.self) { try await stores.invitations.accept(refused.id, by: bob) }
            #expect(acceptAfter?.code == .conflict)
            #expect(try await stores.memberships.effectiveRole(user: bob.id, project: project.id) == nil)

            // Revoked, or archived with its project: gone.
            let revoked = try await stores.invitations.create(
                organization: organization.id, email: bob.email, role: .member, invitedBy: ada.id)
            try await stores.invitations.revoke(revoked.id, organization: organization.id, actor: ada.id)
            await #expect(throws: StoreError.notFound("invitation")) { try await stores.invitations.accept(revoked.id, by: bob) }
            await #expect(throws: StoreError.notFound("invitation")) {
                try await stores.invitations.revoke(revoked.id, organization: organization.id, actor: ada.id)
            }
            let toProject = try await stores.invitations.create(
                organization: organization.id, project: project.id, email: bob.email, role: .member, invitedBy: ada.id)
            try await stores.projects.archive(project.id, actor: ada.id)
            await #expect(throws: StoreError.notFound("invitation")) { try await stores.invitations.accept(toProject.id, by: bob) }
            let archivedProject = await #expect(throws: StoreError.self) {
                try await stores.invitations.create(
                    organization: organization.id, project: project.id, email: bob.email, role: .member, invitedBy: ada.id)
            }
            #expect(archivedProject?.code == .notFound && archivedProject?.field == "project_id")

            // A blocked user answers nothing.
            let blockedInvitation = try await stores.invitations.create(
                organization: organization.id, email: bob.email, role: .member, invitedBy: ada.id)
            try await stores.users.setBlocked(bob.id, true)
            await #expect(throws: StoreError.notFound("invitation")) { try await stores.invitations.accept(blockedInvitation.id, by: bob) }
        }
    }

    @Test func openInvitationsArePaged() async throws {
        try await Stores.with("invite_pages") { stores in
            let (ada, organization, project) = try await stores.ownedProject()
            var created: [UUID] = []
            for index in 0..<5 {
                created.append(
                    try await stores.invitations.create(
                        organization: organization.id, project: index.isMultiple(of: 2) ? nil : project.id, email: "u\(index)@example.com",
                        role: .guest, invitedBy: ada.id
                    ).id)
            }
            let read = try await stores.allPages(limit: 2) {
                try await stores.invitations.listOpen(organization: organization.id, page: $0)
            }
            #expect(read.items.map(\.id) == created && read.pages == 3)
        }
    }
}
