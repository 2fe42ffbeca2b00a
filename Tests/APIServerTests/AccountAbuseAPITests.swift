import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import JobContracts
import Jobs
import NIOCore
import PostgresNIO
import Queue
import Store
import Testing

@testable import APIServer

/// The account routes against the attacks of the security review: login limits sidestepped or
/// turned against an account's owner, squatted addresses, mail relaying, tokens at rest, and
/// enumeration through link checks.
@Suite struct AccountAbuseAPITests {
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    static func login(
        _ client: any TestClientProtocol, _ email: String, _ password: String, from address: String? = nil
    ) async throws
        -> TestResponse
    {
        let body = try JSONSerialization.data(withJSONObject: ["email": email, "password": password])
        return try await client.send(
            .post, "/v1/sessions", json: String(decoding: body, as: UTF8.self),
            headers: address.map { [Self.forwardedFor: $0] } ?? [:])
    }

    /// Spellings of one address share its counter: whitespace, case and compatibility forms.
    @Test func respelledAddressesShareTheLoginCounter() async throws {
        try await APIHarness.with("api_login_spelling") { harness, client in
            let (user, _) = try await harness.signedIn("Vic", client: client)
            for _ in 0..<5 {
                #expect(try await Self.login(client, user.email, "wrong password!").status == .unauthorized)
            }
            let fullwidth = user.email.uppercased().unicodeScalars.map { scalar -> String in
                // Fullwidth forms of ASCII letters: NFKC maps them back.
                guard ("A"..."Z").contains(Character(scalar)) else { return String(scalar) }
                return String(UnicodeScalar(scalar.value - 0x41 + 0xFF21)!)
            }.joined()
            for spelling in [" \(user.email)", "\(user.email.uppercased())\t", fullwidth] {
                let response = try await Self.login(client, spelling, "wrong password!")
                #expect(response.status == .tooManyRequests, "\(spelling.debugDescription): \(response.status)")
            }
        }
    }

    /// Concurrent guesses reserve their attempt before the password is checked: no more than
    /// the limit are ever checked.
    @Test func concurrentGuessesCannotOutrunTheLimit() async throws {
        try await APIHarness.with("api_login_concurrent") { harness, client in
            let (user, _) = try await harness.signedIn("Con", client: client)
            // Each attempt on a connection of its own, so they reach the server at once.
            let port = try #require(client.port)
            let body = ByteBuffer(string: #"{"email":"\#(user.email)","password":"wrong password!"}"#)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<60 {
                    group.addTask {
                        try await TestClient.withClient(host: "localhost", port: port) { connection in
                            try await connection.execute(
                                TestClient.Request(
                                    "/v1/sessions", method: .post, headers: [.contentType: "application/json"], body: body)
                            ).status
                        }
                    }
                }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .unauthorized }.count == 5, "\(statuses)")
            #expect(statuses.filter { $0 == .tooManyRequests }.count == 55)
        }
    }

    /// Failures from one address block that address (even with the right password), not the
    /// owner's; `X-Forwarded-For` is believed from trusted proxies only.
    @Test func strangersCannotLockTheOwnerOut() async throws {
        try await APIHarness.with(
            "api_login_lockout", configure: { $0.trustedProxies = try! TrustedProxies(["127.0.0.1", "::1"]) }
        ) { harness, client in
            let (user, _) = try await harness.signedIn("Own", client: client)
            for _ in 0..<5 {
                #expect(try await Self.login(client, user.email, "wrong password!", from: "203.0.113.7").status == .unauthorized)
            }
            #expect(try await Self.login(client, user.email, "correct horse battery", from: "203.0.113.7").status == .tooManyRequests)
            #expect(try await Self.login(client, user.email, "correct horse battery", from: "198.51.100.2").status == .created)
            // A trusted proxy's own hop is skipped: the client is the last untrusted address.
            #expect(
                try await Self.login(client, user.email, "correct horse battery", from: "203.0.113.7, 127.0.0.1").status
                    == .tooManyRequests)
        }
        // Without trusted proxies the header is the caller's word, and ignored.
        try await APIHarness.with("api_login_untrusted") { harness, client in
            let (user, _) = try await harness.signedIn("Own", client: client)
            for address in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5"] {
                #expect(try await Self.login(client, user.email, "wrong password!", from: address).status == .unauthorized)
            }
            #expect(try await Self.login(client, user.email, "wrong password!", from: "203.0.113.6").status == .tooManyRequests)
        }
    }

    /// Failures spread over many addresses meet the account's own ceiling, which then holds off
    /// every address; and an IPv6 client cannot get a fresh count by taking another address in
    /// its /64.
    @Test func theAccountCeilingAndIPv6SubnetsHold() async throws {
        try await APIHarness.with(
            "api_login_ceiling",
            configure: {
                $0.trustedProxies = try! TrustedProxies(["127.0.0.1", "::1"])
                $0.loginLimits = .init(maximumFailuresPerAccountAndAddress: 3, maximumFailuresPerAccount: 5, maximumFailuresPerAddress: 30)
            }
        ) { harness, client in
            let (user, _) = try await harness.signedIn("Own", client: client)
            for host in 1...3 {
                #expect(try await Self.login(client, user.email, "wrong password!", from: "2001:db8:1:2::\(host)").status == .unauthorized)
            }
            #expect(try await Self.login(client, user.email, "wrong password!", from: "2001:db8:1:2::99").status == .tooManyRequests)
            #expect(try await Self.login(client, user.email, "correct horse battery", from: "2001:db8:1:3::1").status == .created)
            // Three failures so far (the refused attempt and the success count none): two more
            // from elsewhere reach the account's ceiling of five.
            for address in ["203.0.113.1", "203.0.113.2"] {
                #expect(try await Self.login(client, user.email, "wrong password!", from: address).status == .unauthorized)
            }
            // Even the owner's own, clean address waits now.
            #expect(try await Self.login(client, user.email, "correct horse battery", from: "198.51.100.2").status == .tooManyRequests)
        }
    }

    /// A stranger signs up first with someone's address; its owner signs up too, gets the same
    /// answer, takes the account over by the mailed reset link, and it is verified.
    @Test func aSquattedAddressIsWonBackByItsOwner() async throws {
        try await APIHarness.with("api_squatting") { harness, client in
            let email = "victim-\(TestRedis.randomHex())@example.com"
            let squat = try await client.send(
                .post, "/v1/users", json: #"{"email":"\#(email)","name":"Mallory","password":"mallory's password"}"#)
            let owner = try await client.send(
                .post, "/v1/users", json: #"{"email":"\#(email)","name":"Vic","password":"vic's own password"}"#)
            #expect(squat.status == .accepted && owner.status == .accepted)
            #expect(String(buffer: squat.body) == String(buffer: owner.body))
            let mails = try await harness.outboxMails()
            #expect(mails.map(\.template) == ["verify-email", "account-exists"] && mails.allSatisfy { $0.to == email })

            let reset = try await harness.linkToken(of: mails[1])
            #expect(
                try await client.send(.post, "/v1/password/reset", json: #"{"token":"\#(reset)","password":"vic's new password"}"#).status
                    == .noContent)
            #expect(try await Self.login(client, email, "vic's new password").status == .created)
            #expect(try await Self.login(client, email, "mallory's password").status == .unauthorized)
        }
    }

    /// `POST /v1/users/verify/resend` mails an unverified account again, answers alike for
    /// everyone else, and is throttled.
    @Test func verificationMailsCanBeResent() async throws {
        try await APIHarness.with("api_resend", configure: { $0.mailLimits = .init(perRecipientPerHour: 2, perCallerPerHour: 100) }) {
            harness, client in
            let email = "late-\(TestRedis.randomHex())@example.com"
            #expect(
                try await client.send(.post, "/v1/users", json: #"{"email":"\#(email)","name":"Late","password":"a long password"}"#).status
                    == .accepted)
            let (verified, _) = try await harness.signedIn("Done", client: client)
            for address in [email, verified.email, "nobody-\(TestRedis.randomHex())@example.com"] {
                #expect(try await client.send(.post, "/v1/users/verify/resend", json: #"{"email":"\#(address)"}"#).status == .accepted)
            }
            let mails = try await harness.outboxMails()
            #expect(mails.map(\.template) == ["verify-email", "verify-email"] && mails.allSatisfy { $0.to == email })
            let third = try await client.send(.post, "/v1/users/verify/resend", json: #"{"email":"\#(email)"}"#)
            #expect(third.status == .tooManyRequests && third.headers[.retryAfter] != nil)
            let token = try await harness.linkToken(of: mails[1])
            #expect(try await client.send(.post, "/v1/users/verify", json: #"{"token":"\#(token)"}"#).status == .noContent)
        }
    }

    /// Mails that requests cause are limited per recipient and per caller, for accounts that
    /// exist and that do not alike; names with bidirectional controls are refused.
    @Test func theAPIIsNoMailRelay() async throws {
        try await APIHarness.with("api_mail_relay", configure: { $0.mailLimits = .init(perRecipientPerHour: 3, perCallerPerHour: 5) }) {
            harness, client in
            let target = "target-\(TestRedis.randomHex())@example.com"
            for _ in 0..<3 {
                #expect(try await client.send(.post, "/v1/password/forgot", json: #"{"email":"\#(target)"}"#).status == .accepted)
            }
            let perRecipient = try await client.send(.post, "/v1/password/forgot", json: #"{"email":"\#(target)"}"#)
            #expect(perRecipient.status == .tooManyRequests)
            _ = try perRecipient.problem()
            for index in 0..<2 {
                let other = "other-\(index)-\(TestRedis.randomHex())@example.com"
                #expect(try await client.send(.post, "/v1/password/forgot", json: #"{"email":"\#(other)"}"#).status == .accepted)
            }
            let perCaller = try await client.send(
                .post, "/v1/users", json: #"{"email":"fresh@example.com","name":"F","password":"a long password"}"#)
            #expect(perCaller.status == .tooManyRequests)
            #expect(try await harness.users.findForLogin(email: "fresh@example.com") == nil)

            // Invitations count against the inviting user.
            let (_, token) = try await harness.signedIn("Inviter", client: client)
            let organization = try #require(
                try await client.send(.post, "/v1/organizations", token: token, json: #"{"name":"Acme"}"#).json()["id"] as? String)
            var statuses: [HTTPResponse.Status] = []
            for index in 0..<6 {
                statuses.append(
                    try await client.send(
                        .post, "/v1/organizations/\(organization)/invitations", token: token,
                        json: #"{"email":"invitee-\#(index)@example.com","role":"guest"}"#
                    ).status)
            }
            #expect(statuses == Array(repeating: .created, count: 5) + [.tooManyRequests])

            let bidi = try await client.send(
                .post, "/v1/organizations", token: token, json: #"{"name":"Acme \u202Egnp.exe"}"#)
            #expect(bidi.status == .unprocessableContent)
        }
    }

    /// Neither the outbox, the stream, nor the admin's listing of the mail queue holds a link
    /// that signs anyone in: the job names the link, the mail handler signs it.
    @Test func mailedTokensAreNotAtRest() async throws {
        try await APIHarness.with("api_tokens_at_rest") { harness, client in
            let (user, _) = try await harness.signedIn("Rest", client: client)
            let (_, adminToken) = try await harness.signedIn("Admin", admin: true, client: client)
            #expect(try await client.send(.post, "/v1/password/forgot", json: #"{"email":"\#(user.email)"}"#).status == .accepted)
            let email = "new-\(TestRedis.randomHex())@example.com"
            #expect(
                try await client.send(.post, "/v1/users", json: #"{"email":"\#(email)","name":"New","password":"a long password"}"#).status
                    == .accepted)
            let rows = try await harness.outboxPayloads(type: "send-mail")
            #expect(rows.count == 2)
            let outbox = try await harness.database.query("SELECT string_agg(payload, ' ') FROM outbox")
            var text = ""
            for try await payload in outbox.decode(String?.self) { text = payload ?? "" }
            #expect(!text.contains("token") && !text.contains("\"link\""), "\(text)")
            // What signs the link is the mail handler's key, not anything in the payload.
            let mails = try await harness.outboxMails()
            let reset = try await harness.linkToken(of: try #require(mails.first { $0.template == "password-reset" }))
            #expect(!text.contains(reset))

            let queue = JobQueue(redis: harness.redis, options: JobQueue.Options(keyPrefix: harness.configuration.keyPrefix))
            let relay = OutboxRelay(client: harness.database, jobQueue: queue, logger: harness.logger)
            while try await relay.relayBatch() > 0 {}
            let listing = try await client.send(.get, "/admin/queues/mail/jobs?state=ready", token: adminToken)
            #expect(listing.status == .ok, "\(String(buffer: listing.body))")
            #expect(String(buffer: listing.body).contains("signed_link"))
            #expect(!String(buffer: listing.body).contains("token="))
            try await TestRedis.deleteKeys(prefix: harness.configuration.keyPrefix, on: harness.redis)
        }
    }

    /// Every invalid link gets one answer: a forged token for a user who does not exist answers
    /// like a corrupted one for a user who does, so link checks tell nothing about accounts.
    @Test func invalidLinksAllGetOneAnswer() async throws {
        try await APIHarness.with("api_link_oracle") { harness, client in
            let (user, _) = try await harness.signedIn("Orc", client: client)
            let forger = LinkSigner(masterKey: Array(repeating: UInt8(7), count: 32))
            let expiry = Date().addingTimeInterval(3600)
            var answers: [String] = []
            for (path, token) in [
                ("/v1/users/verify", forger.token(.verifyEmail, subject: UUID(), expiry: expiry, binding: "x@example.com")),
                ("/v1/users/verify", forger.token(.verifyEmail, subject: user.id, expiry: expiry, binding: user.email)),
                ("/v1/users/verify", "garbage"),
                ("/v1/password/reset", forger.token(.resetPassword, subject: UUID(), expiry: expiry)),
                ("/v1/password/reset", forger.token(.resetPassword, subject: user.id, expiry: expiry)),
            ] {
                let body = path.hasSuffix("reset") ? #"{"token":"\#(token)","password":"a long password"}"# : #"{"token":"\#(token)"}"#
                let response = try await client.send(.post, path, json: body)
                #expect(response.status == .badRequest, "\(path): \(response.status)")
                answers.append(String(buffer: response.body))
            }
            #expect(Set(answers).count == 1, "\(answers)")
        }
    }
}
