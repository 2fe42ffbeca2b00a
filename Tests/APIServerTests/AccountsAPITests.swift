import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import JobContracts
import NIOCore
import Prometheus
import Queue
import Store
import Testing

@testable import APIServer

@Suite struct AccountsAPITests {
    /// Sign up, verify by the mailed link, log in, use the token, log out.
    @Test func signUpVerifyLogInAndOut() async throws {
        try await APIHarness.with("api_signup") { harness, client in
            let email = "ada-\(TestRedis.randomHex())@example.com"
            let signUp = try await client.send(
                .post, "/v1/users", json: #"{"email":"\#(email)","name":"Ada","password":"analytical engine"}"#)
            #expect(signUp.status == .accepted)
            #expect(signUp.headers[HTTPField.Name("X-Request-Id")!] != nil)

            let login = #"{"email":"\#(email)","password":"analytical engine"}"#
            let early = try await client.send(.post, "/v1/sessions", json: login)
            #expect(early.status == .forbidden)
            #expect(try early.problem()["type"] as? String == "https://harrow.dev/problems/email-not-verified")

            let mails = try await harness.outboxMails()
            #expect(mails.count == 1)
            #expect(mails.first?.template == "verify-email")
            #expect(mails.first?.to == email)
            let token = try await harness.linkToken(of: try #require(mails.first))
            let bad = try await client.send(.post, "/v1/users/verify", json: #"{"token":"\#(token.dropLast(2))xx"}"#)
            #expect(bad.status == .badRequest)
            #expect(try await client.send(.post, "/v1/users/verify", json: #"{"token":"\#(token)"}"#).status == .noContent)

            let session = try await client.send(.post, "/v1/sessions", json: login, headers: [.userAgent: "tests"])
            #expect(session.status == .created)
            let bearer = try #require(try session.json()["token"] as? String)
            let me = try await client.send(.get, "/v1/me", token: bearer)
            #expect(me.status == .ok)
            #expect(try me.json()["email"] as? String == email)
            let sessions = try await client.send(.get, "/v1/sessions", token: bearer)
            let items = try #require(try sessions.json()["items"] as? [[String: Any]])
            #expect(items.count == 1 && items.first?["current"] as? Bool == true)

            #expect(try await client.send(.delete, "/v1/sessions/current", token: bearer).status == .noContent)
            let after = try await client.send(.get, "/v1/me", token: bearer)
            #expect(after.status == .unauthorized)
            #expect(after.headers[.wwwAuthenticate] == "Bearer")
            _ = try after.problem()
        }
    }

    /// Bad requests are problem documents with the right status, and nothing is recorded.
    @Test func malformedRequestsAreProblems() async throws {
        try await APIHarness.with("api_problems", configure: { $0.bodyLimit = 2048 }) { harness, client in
            let malformed = try await client.send(.post, "/v1/users", json: #"{"email": "#)
            #expect(malformed.status == .badRequest)
            _ = try malformed.problem()
            let unknown = try await client.send(
                .post, "/v1/users", json: #"{"email":"a@b.c","name":"A","password":"long enough pw","admin":true}"#)
            #expect(unknown.status == .badRequest)
            #expect((try unknown.problem()["detail"] as? String)?.contains("admin") == true)
            let missing = try await client.send(.post, "/v1/users", json: #"{"email":"a@b.c","name":"A"}"#)
            #expect(missing.status == .unprocessableContent)
            #expect((try missing.problem()["errors"] as? [[String: Any]])?.first?["field"] as? String == "password")
            let short = try await client.send(.post, "/v1/users", json: #"{"email":"a@b.c","name":"A","password":"short"}"#)
            #expect(short.status == .unprocessableContent)
            let text = try await client.send(.post, "/v1/users", json: "{}", headers: [.contentType: "text/plain"])
            #expect(text.status == .unsupportedMediaType)
            let huge = try await client.send(.post, "/v1/users", json: #"{"name":"\#(String(repeating: "x", count: 4096))"}"#)
            #expect(huge.status == .contentTooLarge)
            _ = try huge.problem()
            let route = try await client.send(.get, "/v1/no-such-route")
            #expect(route.status == .notFound)
            _ = try route.problem()
            let badID = try await client.send(.get, "/v1/projects/not-a-uuid", token: "x")
            #expect(badID.status == .unauthorized || badID.status == .badRequest)
            #expect(try await harness.users.findForLogin(email: "a@b.c") == nil)

            let email = "dup-\(TestRedis.randomHex())@example.com"
            #expect(
                try await client.send(.post, "/v1/users", json: #"{"email":"\#(email)","name":"A","password":"long enough pw"}"#).status
                    == .accepted)
            // A second sign-up with the address answers the same; its owner is told by mail.
            let duplicate = try await client.send(
                .post, "/v1/users", json: #"{"email":"\#(email.uppercased())","name":"B","password":"long enough pw"}"#)
            #expect(duplicate.status == .accepted)
            #expect(try await harness.outboxMails().map(\.template) == ["verify-email", "account-exists"])
        }
    }

    /// Failed logins are limited per account: the next attempt gets 429 with Retry-After, even
    /// with the right password.
    @Test func failedLoginsAreRateLimited() async throws {
        try await APIHarness.with(
            "api_ratelimit", configure: { $0.loginLimits = .init(maximumFailuresPerAccountAndAddress: 3, maximumFailuresPerAddress: 100) }
        ) { harness, client in
            let (user, _) = try await harness.signedIn("Grace", client: client)
            for _ in 0..<3 {
                let wrong = try await client.send(.post, "/v1/sessions", json: #"{"email":"\#(user.email)","password":"wrong password!"}"#)
                #expect(wrong.status == .unauthorized)
            }
            let limited = try await client.send(
                .post, "/v1/sessions", json: #"{"email":"\#(user.email)","password":"correct horse battery"}"#)
            #expect(limited.status == .tooManyRequests)
            let retryAfter = try #require(limited.headers[.retryAfter].flatMap(Int.init))
            #expect(retryAfter > 0 && retryAfter <= 900)
            _ = try limited.problem()
            // An unknown account gets the same answer as a wrong password.
            let unknown = try await client.send(
                .post, "/v1/sessions", json: #"{"email":"nobody@example.com","password":"wrong password!"}"#)
            #expect(unknown.status == .unauthorized)
            #expect(try unknown.problem()["detail"] as? String == "the email or the password is wrong")
        }
    }

    /// Forgot/reset: the same answer for unknown addresses; the link works once and logs every
    /// session out; changing the password logs out the other sessions.
    @Test func passwordResetAndChange() async throws {
        try await APIHarness.with("api_password") { harness, client in
            let (user, token) = try await harness.signedIn("Lin", client: client)
            #expect(try await client.send(.post, "/v1/password/forgot", json: #"{"email":"nobody@example.com"}"#).status == .accepted)
            #expect(try await harness.outboxMails().isEmpty)
            #expect(try await client.send(.post, "/v1/password/forgot", json: #"{"email":"\#(user.email)"}"#).status == .accepted)
            let mail = try #require(try await harness.outboxMails().first)
            #expect(mail.template == "password-reset")
            let resetToken = try await harness.linkToken(of: mail)
            let reset = #"{"token":"\#(resetToken)","password":"a brand new password"}"#
            #expect(try await client.send(.post, "/v1/password/reset", json: reset).status == .noContent)
            #expect(try await client.send(.get, "/v1/me", token: token).status == .unauthorized)
            #expect(try await client.send(.post, "/v1/password/reset", json: reset).status == .badRequest)

            let login = try await client.send(.post, "/v1/sessions", json: #"{"email":"\#(user.email)","password":"a brand new password"}"#)
            let first = try #require(try login.json()["token"] as? String)
            let second = try #require(
                try await client.send(.post, "/v1/sessions", json: #"{"email":"\#(user.email)","password":"a brand new password"}"#)
                    .json()["token"] as? String)
            let wrong = try await client.send(
                .post, "/v1/password/change", token: first,
                json: #"{"current_password":"nope nope nope","new_password":"another password"}"#)
            #expect(wrong.status == .unprocessableContent)
            let change = try await client.send(
                .post, "/v1/password/change", token: first,
                json: #"{"current_password":"a brand new password","new_password":"another password"}"#)
            #expect(change.status == .noContent)
            #expect(try await client.send(.get, "/v1/me", token: first).status == .ok)
            #expect(try await client.send(.get, "/v1/me", token: second).status == .unauthorized)
        }
    }

    @Test func healthReadinessAndRequestIDs() async throws {
        try await APIHarness.with("api_health") { _, client in
            #expect(try await client.send(.get, "/healthz").status == .ok)
            #expect(try await client.send(.get, "/readyz").status == .ok)
            let echoed = try await client.send(.get, "/healthz", headers: [HTTPField.Name("X-Request-Id")!: "trace-123"])
            #expect(echoed.headers[HTTPField.Name("X-Request-Id")!] == "trace-123")
        }
    }
}
