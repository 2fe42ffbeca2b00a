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

            // The manager adds a member but cannot grant more than manager, nor invite an owner.
            let (member, _) = try await harness.signedIn("Member", client: client)
            let added = try await client.send(
                .post, "/v1/organizations/\(organization)/members", token: inviteeToken,
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
}
