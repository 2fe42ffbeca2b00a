import Crypto
import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Store
import Testing

@testable import APIServer

/// `POST /hooks/{slug}` against real Postgres and Redis: Harrow's signed format (timestamp and
/// delivery id) and GitHub's, replays and duplicates, stale timestamps, the per-hook rate limit,
/// and failures of the database, which must not look like a bad signature or lose a delivery.
@Suite struct WebhookAPITests {
    /// A webhook's slug and secret, and how to sign requests for it either way.
    struct Hook {
        let slug: String
        let secret: String

        static let signature = HTTPField.Name("X-Harrow-Signature")!
        static let timestamp = HTTPField.Name("X-Harrow-Timestamp")!
        static let delivery = HTTPField.Name("X-Harrow-Delivery")!
        static let hubSignature = HTTPField.Name("X-Hub-Signature-256")!
        static let gitHubDelivery = HTTPField.Name("X-GitHub-Delivery")!
        static let gitHubEvent = HTTPField.Name("X-GitHub-Event")!

        var path: String { "/hooks/\(slug)" }

        func mac(_ text: String, secret: String? = nil) -> String {
            let code = HMAC<SHA256>.authenticationCode(
                for: Array(text.utf8), using: SymmetricKey(data: Array((secret ?? self.secret).utf8)))
            return "sha256=" + code.map { String(format: "%02x", $0) }.joined()
        }

        /// Harrow's headers: the HMAC of `"<timestamp>.<body>"`.
        func harrow(_ body: String, at timestamp: Int = Self.now, delivery: String = UUID().uuidString.lowercased()) -> HTTPFields {
            [Self.signature: mac("\(timestamp).\(body)"), Self.timestamp: "\(timestamp)", Self.delivery: delivery]
        }

        /// GitHub's headers: the HMAC of the raw body.
        func gitHub(_ body: String, event: String = "push", delivery: String = UUID().uuidString.lowercased()) -> HTTPFields {
            [Self.hubSignature: mac(body), Self.gitHubEvent: event, Self.gitHubDelivery: delivery]
        }

        static var now: Int { Int(Date().timeIntervalSince1970) }
    }

    /// A project with a job and a webhook of it.
    static func hook(_ harness: APIHarness, _ client: any TestClientProtocol) async throws -> (hook: Hook, base: String, token: String) {
        let (base, job, token) = try await AutomationAPITests.project(harness, client)
        let created = try await client.send(.post, "\(base)/webhooks", token: token, json: #"{"job_id":"\#(job)","name":"deploy"}"#)
        #expect(created.status == .created, "\(String(buffer: created.body))")
        let secret = try #require(try created.json()["signing_secret"] as? String)
        let slug = try #require((try created.json()["webhook"] as? [String: Any])?["slug"] as? String)
        return (Hook(slug: slug, secret: secret), base, token)
    }

    static func runs(_ harness: APIHarness) async throws -> Int {
        try await harness.outboxPayloads(type: "run-operation").count
    }

    /// The operation a 202 names, as the API shows it.
    static func operation(
        _ response: TestResponse, base: String, token: String, client: any TestClientProtocol
    ) async throws -> [String: Any] {
        let id = try #require(try response.json()["operation_id"] as? String, "\(String(buffer: response.body))")
        return try await client.send(.get, "\(base)/operations/\(id)", token: token).json()
    }

    /// The same signed request twice, and again with another delivery id: one operation.
    @Test func aSignedDeliveryRunsTheJobOnceAndItsReplaysCreateNothing() async throws {
        try await APIHarness.with("api_hook_replay") { harness, client in
            let (hook, base, token) = try await Self.hook(harness, client)
            let payload = #"{"ref":"refs/heads/main"}"#
            let headers = hook.harrow(payload)

            var unsigned = headers
            unsigned[Hook.signature] = nil
            let badSignature = try await client.send(.post, hook.path, json: payload, headers: unsigned)
            #expect(badSignature.status == .unauthorized)
            #expect(badSignature.headers[.wwwAuthenticate] == nil, "a signature is asked for, not a bearer token")
            var forged = headers
            forged[Hook.signature] = "sha256=" + String(repeating: "0", count: 64)
            #expect(try await client.send(.post, hook.path, json: payload, headers: forged).status == .unauthorized)
            #expect(try await client.send(.post, hook.path, json: #"{"ref":"refs/heads/evil"}"#, headers: headers).status == .unauthorized)
            // The body's HMAC alone (the old format) no longer passes.
            var bodyOnly = headers
            bodyOnly[Hook.signature] = hook.mac(payload)
            #expect(try await client.send(.post, hook.path, json: payload, headers: bodyOnly).status == .unauthorized)
            // An unknown slug answers exactly as a bad signature does.
            let unknown = try await client.send(.post, "/hooks/no-such-slug", json: payload, headers: headers)
            #expect(unknown.status == .unauthorized)
            let wrong = try await client.send(.post, hook.path, json: payload, headers: forged)
            #expect(String(buffer: unknown.body) == String(buffer: wrong.body))
            #expect(try await Self.runs(harness) == 0)

            let accepted = try await client.send(.post, hook.path, json: payload, headers: headers)
            #expect(accepted.status == .accepted, "\(String(buffer: accepted.body))")
            #expect(try await Self.runs(harness) == 1)
            let operation = try await Self.operation(accepted, base: base, token: token, client: client)
            #expect(operation["reason"] as? String == "webhook")

            let replayed = try await client.send(.post, hook.path, json: payload, headers: headers)
            #expect(replayed.status == .conflict, "\(String(buffer: replayed.body))")
            #expect(try replayed.problem()["type"] as? String == "https://harrow.dev/problems/duplicate-delivery")
            // The delivery id is not signed: a captured request with a new one is still a replay.
            var renamed = headers
            renamed[Hook.delivery] = UUID().uuidString.lowercased()
            let replayedAgain = try await client.send(.post, hook.path, json: payload, headers: renamed)
            #expect(replayedAgain.status == .conflict, "\(String(buffer: replayedAgain.body))")
            // A sender's retry of the same delivery, signed afresh, is a duplicate too.
            let retried = try await client.send(
                .post, hook.path, json: payload, headers: hook.harrow(payload, at: Hook.now + 1, delivery: headers[Hook.delivery]!))
            #expect(retried.status == .conflict, "\(String(buffer: retried.body))")
            #expect(try await Self.runs(harness) == 1)

            let another = try await client.send(.post, hook.path, json: payload, headers: hook.harrow(payload, at: Hook.now + 2))
            #expect(another.status == .accepted, "\(String(buffer: another.body))")
            #expect(try await Self.runs(harness) == 2)
        }
    }

    /// More than five minutes off, either way, is refused with a problem that says so, and
    /// burns nothing: the same delivery signed now goes through.
    @Test func aStaleTimestampIsRefusedAndDoesNotBurnTheDelivery() async throws {
        try await APIHarness.with("api_hook_stale") { harness, client in
            let (hook, _, _) = try await Self.hook(harness, client)
            let payload = #"{"ref":"refs/heads/main"}"#
            let delivery = UUID().uuidString.lowercased()
            // Well past the 300 s tolerance: a slow request must not bring a skew back within it.
            for skew in [-400, 400, -86_400] {
                let stale = try await client.send(
                    .post, hook.path, json: payload, headers: hook.harrow(payload, at: Hook.now + skew, delivery: delivery))
                #expect(stale.status == .unauthorized, "\(skew): \(String(buffer: stale.body))")
                let problem = try stale.problem()
                #expect(problem["type"] as? String == "https://harrow.dev/problems/stale-timestamp", "\(problem)")
                #expect((problem["detail"] as? String)?.contains("X-Harrow-Timestamp") == true, "\(problem)")
            }
            var garbled = hook.harrow(payload, delivery: delivery)
            garbled[Hook.timestamp] = "yesterday"
            #expect(try await client.send(.post, hook.path, json: payload, headers: garbled).status == .unauthorized)
            // Only a genuine sender learns that its clock is off: a stale request for an unknown
            // slug is an unknown slug.
            let unknown = try await client.send(
                .post, "/hooks/no-such-slug", json: payload, headers: hook.harrow(payload, at: Hook.now - 900))
            #expect(try unknown.problem()["type"] as? String == "https://harrow.dev/problems/bad-signature")
            #expect(try await Self.runs(harness) == 0)

            let fresh = try await client.send(.post, hook.path, json: payload, headers: hook.harrow(payload, delivery: delivery))
            #expect(fresh.status == .accepted, "\(String(buffer: fresh.body))")
            #expect(try await Self.runs(harness) == 1)
        }
    }

    /// A GitHub webhook: `ping` answers without a run, `push` runs the job with the pushed ref
    /// and commit, a redelivery or a captured push with a new delivery id creates nothing.
    @Test func gitHubPushesRunTheJobOnceAndPingsRunNothing() async throws {
        try await APIHarness.with("api_hook_github") { harness, client in
            let (hook, base, token) = try await Self.hook(harness, client)
            let ping = #"{"zen":"Keep it logically awesome.","hook_id":1}"#
            let pong = try await client.send(.post, hook.path, json: ping, headers: hook.gitHub(ping, event: "ping"))
            #expect(pong.status == .noContent, "\(String(buffer: pong.body))")
            var unsignedPing = hook.gitHub(ping, event: "ping")
            unsignedPing[Hook.hubSignature] = hook.mac(ping, secret: "not the secret")
            #expect(try await client.send(.post, hook.path, json: ping, headers: unsignedPing).status == .unauthorized)
            #expect(try await Self.runs(harness) == 0)

            let sha = "0123456789abcdef0123456789abcdef01234567"
            let push = """
                {"ref":"refs/heads/main","before":"1111111111111111111111111111111111111111","after":"\(sha)","deleted":false,\
                "repository":{"full_name":"acme/web","clone_url":"https://github.com/acme/web.git"}}
                """
            let headers = hook.gitHub(push)
            var forged = headers
            forged[Hook.hubSignature] = hook.mac(push + " ")
            #expect(try await client.send(.post, hook.path, json: push, headers: forged).status == .unauthorized)
            #expect(try await Self.runs(harness) == 0)

            let accepted = try await client.send(.post, hook.path, json: push, headers: headers)
            #expect(accepted.status == .accepted, "\(String(buffer: accepted.body))")
            let operation = try await Self.operation(accepted, base: base, token: token, client: client)
            let parameters = try #require(operation["parameters"] as? [String: String], "\(operation)")
            #expect(parameters["ref"] == "refs/heads/main")
            #expect(parameters["sha"] == sha)
            #expect(parameters["github_event"] == "push")
            #expect(try await Self.runs(harness) == 1)

            let redelivered = try await client.send(.post, hook.path, json: push, headers: headers)
            #expect(redelivered.status == .conflict, "\(String(buffer: redelivered.body))")
            #expect(try redelivered.problem()["type"] as? String == "https://harrow.dev/problems/duplicate-delivery")
            var renamed = headers
            renamed[Hook.gitHubDelivery] = UUID().uuidString.lowercased()
            #expect(try await client.send(.post, hook.path, json: push, headers: renamed).status == .conflict)
            #expect(try await Self.runs(harness) == 1)

            var noDelivery = hook.gitHub(push.replacingOccurrences(of: "main", with: "next"))
            noDelivery[Hook.gitHubDelivery] = nil
            let missing = try await client.send(
                .post, hook.path, json: push.replacingOccurrences(of: "main", with: "next"), headers: noDelivery)
            #expect(missing.status == .badRequest, "\(String(buffer: missing.body))")
            #expect(try await Self.runs(harness) == 1)
        }
    }

    /// A hook takes `webhookRequestsPerMinute` deliveries a minute; the next is 429 with
    /// `Retry-After`, and other hooks are not held back.
    @Test func aHookIsRateLimitedPerMinute() async throws {
        try await APIHarness.with("api_hook_rate", configure: { $0.webhookRequestsPerMinute = 2 }) { harness, client in
            let (hook, base, token) = try await Self.hook(harness, client)
            let payload = "{}"
            for index in 0..<2 {
                // Different bodies: the same body signed at the same second is the same request,
                // and two clock readings may fall in one second or straddle two.
                let body = #"{"n":\#(index)}"#
                let accepted = try await client.send(.post, hook.path, json: body, headers: hook.harrow(body))
                #expect(accepted.status == .accepted, "\(String(buffer: accepted.body))")
            }
            let delivery = UUID().uuidString.lowercased()
            let limited = try await client.send(.post, hook.path, json: payload, headers: hook.harrow(payload, delivery: delivery))
            #expect(limited.status == .tooManyRequests, "\(String(buffer: limited.body))")
            let wait = try #require(limited.headers[.retryAfter].flatMap { Int($0) })
            #expect((1...60).contains(wait))
            #expect(try await Self.runs(harness) == 2)

            let job = try #require(
                (try await client.send(.get, "\(base)/jobs", token: token).json()["items"] as? [[String: Any]])?.first?["id"] as? String)
            let other = try await client.send(.post, "\(base)/webhooks", token: token, json: #"{"job_id":"\#(job)","name":"other"}"#)
            let otherHook = Hook(
                slug: try #require((try other.json()["webhook"] as? [String: Any])?["slug"] as? String),
                secret: try #require(try other.json()["signing_secret"] as? String))
            let elsewhere = try await client.send(
                .post, otherHook.path, json: payload, headers: otherHook.harrow(payload, delivery: delivery))
            #expect(elsewhere.status == .accepted, "limits are per hook")
        }
    }

    /// A captured Harrow-format request cannot be sent again in GitHub's format, whose signature
    /// covers no time: the HMAC of "<timestamp>.<body>" is also the HMAC of a GitHub body that
    /// reads "<timestamp>.<body>", so GitHub's format takes only JSON objects.
    @Test func aHarrowSignatureCannotBeReplayedAsGitHubs() async throws {
        try await APIHarness.with("api_hook_cross_format") { harness, client in
            let (hook, _, _) = try await Self.hook(harness, client)
            let payload = #"{"ref":"refs/heads/main"}"#
            let signed = "\(Hook.now - 3_600).\(payload)"
            // What the attacker captured an hour ago: its timestamp is stale, its MAC still good.
            let captured = hook.harrow(payload, at: Hook.now - 3_600)
            for event in ["push", "release", ""] {
                let replayed = try await client.send(
                    .post, hook.path, json: signed,
                    headers: [
                        Hook.hubSignature: try #require(captured[Hook.signature]), Hook.gitHubEvent: event,
                        Hook.gitHubDelivery: UUID().uuidString.lowercased(),
                    ])
                #expect(replayed.status == .unsupportedMediaType, "\(event): \(String(buffer: replayed.body))")
            }
            #expect(try await Self.runs(harness) == 0)
        }
    }

    /// Replays are refused before they are counted: sending a captured delivery again and again
    /// does not spend the webhook's minute, so the sender's next delivery still goes through.
    @Test func replaysDoNotSpendTheRateLimit() async throws {
        try await APIHarness.with("api_hook_replay_rate", configure: { $0.webhookRequestsPerMinute = 3 }) { harness, client in
            let (hook, _, _) = try await Self.hook(harness, client)
            let payload = #"{"n":0}"#
            let headers = hook.harrow(payload)
            #expect(try await client.send(.post, hook.path, json: payload, headers: headers).status == .accepted)
            for _ in 0..<5 {
                let replayed = try await client.send(.post, hook.path, json: payload, headers: headers)
                #expect(replayed.status == .conflict, "\(String(buffer: replayed.body))")
            }
            let next = #"{"n":1}"#
            let accepted = try await client.send(.post, hook.path, json: next, headers: hook.harrow(next))
            #expect(accepted.status == .accepted, "\(String(buffer: accepted.body))")
            #expect(try await Self.runs(harness) == 2)
        }
    }

    /// The webhook cannot be read: 503 (not 401, which would tell a sender its secret is
    /// wrong), for known and unknown slugs alike; once it can, the same delivery goes through.
    @Test func aDatabaseFailureIsA503AndTheDeliveryIsNotLost() async throws {
        try await APIHarness.with("api_hook_database") { harness, client in
            let (hook, _, _) = try await Self.hook(harness, client)
            let payload = #"{"ref":"refs/heads/main"}"#
            let delivery = UUID().uuidString.lowercased()
            try await harness.database.query("ALTER TABLE webhooks RENAME TO webhooks_away")
            let down = try await client.send(.post, hook.path, json: payload, headers: hook.harrow(payload, delivery: delivery))
            #expect(down.status == .serviceUnavailable, "\(String(buffer: down.body))")
            #expect(try down.problem()["type"] as? String == "https://harrow.dev/problems/unavailable")
            let unknown = try await client.send(.post, "/hooks/no-such-slug", json: payload, headers: hook.harrow(payload))
            #expect(unknown.status == .serviceUnavailable)
            try await harness.database.query("ALTER TABLE webhooks_away RENAME TO webhooks")

            // The operation cannot be recorded: the delivery id is given back for the retry.
            try await harness.database.query("ALTER TABLE outbox RENAME TO outbox_away")
            let failed = try await client.send(.post, hook.path, json: payload, headers: hook.harrow(payload, delivery: delivery))
            #expect(failed.status == .serviceUnavailable, "\(String(buffer: failed.body))")
            try await harness.database.query("ALTER TABLE outbox_away RENAME TO outbox")
            #expect(try await Self.runs(harness) == 0)

            let retried = try await client.send(
                .post, hook.path, json: payload, headers: hook.harrow(payload, at: Hook.now + 1, delivery: delivery))
            #expect(retried.status == .accepted, "\(String(buffer: retried.body))")
            #expect(try await Self.runs(harness) == 1)
        }
    }
}
