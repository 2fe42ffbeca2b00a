import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Store
import Testing

@testable import APIServer

@Suite struct MembershipAPITests {
    @Test func invitationsAndMembersRespectRoles() async throws {
        try await APIHarness.with("api_members") { harness, client in
            let (owner, ownerToken) = try await harness.signedIn("Owner", client: client)
            let organization = try #require(
                try await client.send(.post, "/v1/organizations", token: ownerToken, json: #"{"name":"Acme"}"#).json()["id"] as? String)
            let (invitee, inviteeToken) = try await harness.signedIn("Invitee", client: client)
            let (_, strangerToken) = try await harness.signedIn("Stranger", client: client)

            let invited = try await client.send(
                .post, "/v1/organizations/\(organization)/invitations", token: ownerToken,
                json: #"{"email":"\#(invitee.email.uppercased())","role":"manager"}"#)
            #expect(invited.status == .created, "\(String(buffer: invited.body))")
            let invitation = try #require(try invited.json()["id"] as? String)
            let mail = try #require(try await harness.outboxPayloads(type: "send-mail").last)
            #expect(mail["template"] as? String == "invitation")
            #expect((mail["to"] as? String)?.lowercased() == invitee.email.lowercased())
            #expect(try await client.send(.get, "/v1/organizations/\(organization)/invitations", token: strangerToken).status == .notFound)

            // Only the invited user may answer it; anyone else learns nothing.
            #expect(try await client.send(.post, "/v1/invitations/\(invitation)/accept", token: strangerToken).status == .notFound)
            let accepted = try await client.send(.post, "/v1/invitations/\(invitation)/accept", token: inviteeToken)
            #expect(accepted.status == .ok, "\(String(buffer: accepted.body))")
            #expect(try await client.send(.post, "/v1/invitations/\(invitation)/accept", token: inviteeToken).status == .conflict)
            #expect(try await client.send(.get, "/v1/organizations/\(organization)", token: inviteeToken).status == .ok)

            // Adding someone by id needs no consent: only platform admins may; the manager
            // cannot grant more than manager, nor invite an owner.
            let (member, _) = try await harness.signedIn("Member", client: client)
            let byID = try await client.send(
                .post, "/v1/organizations/\(organization)/members", token: inviteeToken,
                json: #"{"user_id":"\#(member.id)","role":"member"}"#)
            #expect(byID.status == .forbidden, "\(String(buffer: byID.body))")
            let (_, adminToken) = try await harness.signedIn("Admin", admin: true, client: client)
            let added = try await client.send(
                .post, "/v1/organizations/\(organization)/members", token: adminToken,
                json: #"{"user_id":"\#(member.id)","role":"member"}"#)
            #expect(added.status == .created, "\(String(buffer: added.body))")
            #expect((try added.json()["user"] as? [String: Any])?["email"] as? String == member.email)
            #expect(try added.json()["scope"] as? String == "organization")
            let promote = try await client.send(
                .patch, "/v1/organizations/\(organization)/members/\(member.id)", token: inviteeToken, json: #"{"role":"owner"}"#)
            #expect(promote.status == .forbidden)
            let ownerInvite = try await client.send(
                .post, "/v1/organizations/\(organization)/invitations", token: inviteeToken,
                json: #"{"email":"x@example.com","role":"owner"}"#)
            #expect(ownerInvite.status == .forbidden)
            let listed = try await client.send(.get, "/v1/organizations/\(organization)/members", token: inviteeToken)
            #expect((try listed.json()["items"] as? [[String: Any]])?.count == 3)
            #expect(
                try await client.send(.delete, "/v1/organizations/\(organization)/members/\(member.id)", token: ownerToken).status
                    == .noContent)
            // The last owner stays.
            let lastOwner = try await client.send(.delete, "/v1/organizations/\(organization)/members/\(owner.id)", token: ownerToken)
            #expect(lastOwner.status == .conflict)
        }
    }

    /// A manager may neither demote nor remove an owner (or anyone above them); the last
    /// owner stays whoever asks.
    @Test func managersCannotDemoteOrRemoveOwners() async throws {
        try await APIHarness.with("api_members_owners") { harness, client in
            let (owner, ownerToken) = try await harness.signedIn("Owner", client: client)
            let organization = try #require(
                try await client.send(.post, "/v1/organizations", token: ownerToken, json: #"{"name":"Acme"}"#).json()["id"] as? String)
            let scope = Membership.Scope.organization(try #require(UUID(uuidString: organization)))
            let (manager, managerToken) = try await harness.signedIn("Manager", client: client)
            _ = try await harness.memberships.add(manager.id, to: scope, role: .manager, actor: owner.id)

            let demote = try await client.send(
                .patch, "/v1/organizations/\(organization)/members/\(owner.id)", token: managerToken, json: #"{"role":"guest"}"#)
            #expect(demote.status == .forbidden, "\(String(buffer: demote.body))")
            let remove = try await client.send(.delete, "/v1/organizations/\(organization)/members/\(owner.id)", token: managerToken)
            #expect(remove.status == .forbidden, "\(String(buffer: remove.body))")
            #expect(try await harness.memberships.organizationRole(user: owner.id, organization: scope.id) == .owner)

            let (_, adminToken) = try await harness.signedIn("Admin", admin: true, client: client)
            let adminDemotes = try await client.send(
                .patch, "/v1/organizations/\(organization)/members/\(owner.id)", token: adminToken, json: #"{"role":"guest"}"#)
            #expect(adminDemotes.status == .conflict, "the last owner stays, even for an admin")
        }
    }

    /// Every caller role against every target role, in an organization and in a project: a
    /// change or removal succeeds only for managers and owners, and only when the target's role
    /// is at most the caller's.
    @Test func memberChangesFollowTheTargetAndCallerRoles() async throws {
        try await APIHarness.with("api_members_matrix") { harness, client in
            let (owner, ownerToken) = try await harness.signedIn("Owner", client: client)
            let (organization, project) = try await Self.organizationAndProject(client, token: ownerToken)
            let scopes: [(Membership.Scope, String)] = [
                (.organization(try #require(UUID(uuidString: organization))), "/v1/organizations/\(organization)"),
                (.project(try #require(UUID(uuidString: project))), "/v1/projects/\(project)"),
            ]
            for (scope, base) in scopes {
                for callerRole in Role.allCases {
                    let (caller, token) = try await harness.signedIn("Caller", client: client)
                    _ = try await harness.memberships.add(caller.id, to: scope, role: callerRole, actor: owner.id)
                    for targetRole in Role.allCases {
                        let allowed = Permission.manageMembers.allows(callerRole) && targetRole <= callerRole
                        for method in [HTTPRequest.Method.patch, .delete] {
                            let target = try await harness.users.create(
                                email: "t-\(TestRedis.randomHex())@example.com", name: "Target", passwordHash: "h")
                            _ = try await harness.memberships.add(target.id, to: scope, role: targetRole, actor: owner.id)
                            let response = try await client.send(
                                method, "\(base)/members/\(target.id)", token: token, json: method == .patch ? #"{"role":"guest"}"# : nil)
                            let label =
                                "\(base): \(callerRole) \(method) \(targetRole): \(response.status) \(String(buffer: response.body))"
                            #expect(allowed ? (200..<300).contains(Int(response.status.code)) : response.status == .forbidden, "\(label)")
                        }
                    }
                }
            }
        }
    }

    /// Members' addresses are for members of the same organization: someone in one project
    /// only sees names.
    @Test func memberAddressesAreShownOnlyWithinTheOrganization() async throws {
        try await APIHarness.with("api_members_email") { harness, client in
            let (owner, ownerToken) = try await harness.signedIn("Owner", client: client)
            let (organization, project) = try await Self.organizationAndProject(client, token: ownerToken)
            let (guest, guestToken) = try await harness.signedIn("Guest", client: client)
            _ = try await harness.memberships.add(
                guest.id, to: .project(try #require(UUID(uuidString: project))), role: .guest, actor: owner.id)
            _ = try await harness.memberships.add(
                owner.id, to: .project(try #require(UUID(uuidString: project))), role: .owner, actor: owner.id)

            let seenByGuest = try await client.send(.get, "/v1/projects/\(project)/members", token: guestToken)
            let users = (try seenByGuest.json()["items"] as? [[String: Any]])?.compactMap { $0["user"] as? [String: Any] } ?? []
            #expect(users.count == 2 && users.allSatisfy { $0["email"] is NSNull && $0["name"] is String }, "\(users)")
            let seenByOwner = try await client.send(.get, "/v1/projects/\(project)/members", token: ownerToken)
            let emails = (try seenByOwner.json()["items"] as? [[String: Any]])?.compactMap {
                ($0["user"] as? [String: Any])?["email"] as? String
            }
            #expect(Set(emails ?? []) == [owner.email, guest.email])
        }
    }

    /// A new organization of the token's user with one project: their ids.
    static func organizationAndProject(_ client: any TestClientProtocol, token: String) async throws -> (String, String) {
        let organization = try #require(
            try await client.send(.post, "/v1/organizations", token: token, json: #"{"name":"Acme"}"#).json()["id"] as? String)
        let project = try #require(
            try await client.send(.post, "/v1/organizations/\(organization)/projects", token: token, json: #"{"name":"Web"}"#)
                .json()["id"] as? String)
        return (organization, project)
    }
}
