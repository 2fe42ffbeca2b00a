import Foundation
import HarrowTestSupport
import JobContracts
import Store
import Testing
import WorkerPool

@testable import Jobs

/// The mail handler signs links only for their own user's address and only as long as their
/// purpose allows: whoever can put a `send-mail` job into the queue (or the outbox) must not get
/// a link that signs someone else in.
@Suite struct MailLinksTests {
    static func with(_ body: (MailLinks, User) async throws -> Void) async throws {
        try await JobsHarness.with("mail_links", register: { _, _ in }) { harness in
            let users = UserStore(client: harness.database, logger: harness.logger)
            let victim = try await users.create(email: "Admin@Example.com", name: "Admin", passwordHash: "$2b$12$hash")
            let links = MailLinks(signer: LinkSigner(keyring: harness.keyring), users: users, publicURL: "https://harrow.example.com/")
            try await body(links, victim)
        }
    }

    static func link(_ purpose: LinkSigner.Purpose, for user: User, lifetime: TimeInterval) -> SendMail.SignedLink {
        SendMail.SignedLink(
            purpose: purpose.rawValue, userID: user.id, expiresAt: Int64(Date().addingTimeInterval(lifetime).timeIntervalSince1970))
    }

    @Test func aLinkGoesOnlyToItsUsersOwnAddress() async throws {
        try await Self.with { links, victim in
            for purpose in LinkSigner.Purpose.allCases {
                let link = Self.link(purpose, for: victim, lifetime: 3_600)
                let error = await #expect(throws: JobFailure.self) {
                    _ = try await links.url(for: link, recipient: "attacker@example.net")
                }
                #expect(error?.message.contains("its user's own address") == true, "\(String(describing: error))")
                // The user's own address, however it is spelled, gets the link.
                let url = try await links.url(for: link, recipient: " admin@EXAMPLE.com ")
                #expect(url.hasPrefix("https://harrow.example.com/\(purpose.rawValue)?token="))
            }
        }
    }

    @Test func aLinkLivesNoLongerThanItsPurposeAllows() async throws {
        try await Self.with { links, victim in
            for purpose in LinkSigner.Purpose.allCases {
                let forever = Self.link(purpose, for: victim, lifetime: 10 * 365 * 86_400)
                let error = await #expect(throws: JobFailure.self) {
                    _ = try await links.url(for: forever, recipient: victim.email)
                }
                #expect(error?.message.contains("may live at most") == true, "\(String(describing: error))")
                let longest = Self.link(purpose, for: victim, lifetime: purpose.longestLifetime)
                _ = try await links.url(for: longest, recipient: victim.email)
            }
        }
    }
}
