import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import Store
import Testing

@testable import APIServer

/// Bad input on the write routes: each gets its problem document, and nothing is recorded.
@Suite struct BadInputAPITests {
    struct Route: Sendable {
        var method: HTTPRequest.Method
        var path: String
        /// A body of the right shape with one field of the wrong type.
        var wrongType: String
        /// The table the route writes to.
        var table: String
    }

    @Test func everyWriteRouteRefusesBadInputAndRecordsNothing() async throws {
        try await APIHarness.with("api_bad_input") { harness, client in
            let (base, job, token) = try await AutomationAPITests.project(harness, client)
            let environment = try #require(
                (try await client.send(.get, "\(base)/environments", token: token).json()["items"] as? [[String: Any]])?.first?["id"]
                    as? String)
            let routes: [Route] = [
                Route(method: .post, path: "\(base)/environments", wrongType: #"{"name":5}"#, table: "environments"),
                Route(
                    method: .post, path: "\(base)/environments/\(environment)/secrets", wrongType: #"{"name":"A","value":[1]}"#,
                    table: "secrets"),
                Route(method: .post, path: "\(base)/tasks", wrongType: #"{"name":"t","script":false}"#, table: "tasks"),
                Route(
                    method: .post, path: "\(base)/jobs", wrongType: #"{"name":"j","task_id":"not-a-uuid","environment_id":"x"}"#,
                    table: "jobs"),
                Route(method: .post, path: "\(base)/repositories", wrongType: #"{"url":{}}"#, table: "repositories"),
                Route(method: .post, path: "\(base)/ssh-keys", wrongType: #"{"name":"k","algorithm":"dsa"}"#, table: "ssh_keys"),
                Route(method: .post, path: "\(base)/schedules", wrongType: #"{"job_id":"\#(job)","cron":7}"#, table: "schedules"),
                Route(method: .post, path: "\(base)/triggers", wrongType: #"{"name":"g","change_type":"rename"}"#, table: "git_triggers"),
                Route(method: .post, path: "\(base)/webhooks", wrongType: #"{"job_id":"\#(job)","name":["w"]}"#, table: "webhooks"),
                Route(
                    method: .post, path: "\(base)/notifiers", wrongType: #"{"name":"n","recipients":"ops@example.com"}"#, table: "notifiers"
                ),
                Route(
                    method: .post, path: "\(base)/notification-rules", wrongType: #"{"activity_pattern":1}"#, table: "notification_rules"),
                Route(method: .post, path: "\(base)/jobs/\(job)/operations", wrongType: #"{"parameters":["a"]}"#, table: "operations"),
                Route(method: .post, path: "/v1/organizations", wrongType: #"{"name":null}"#, table: "organizations"),
            ]
            for route in routes {
                let before = try await Self.count(route.table, harness)
                let malformed = try await client.send(route.method, route.path, token: token, json: #"{"name": "#)
                #expect(malformed.status == .badRequest, "\(route.path) malformed: \(malformed.status)")
                _ = try malformed.problem()
                let unknown = try await client.send(route.method, route.path, token: token, json: #"{"surprise":1}"#)
                #expect(unknown.status == .badRequest, "\(route.path) unknown field: \(unknown.status)")
                let wrong = try await client.send(route.method, route.path, token: token, json: route.wrongType)
                #expect(wrong.status == .unprocessableContent, "\(route.path) wrong type: \(wrong.status) \(String(buffer: wrong.body))")
                _ = try wrong.problem()
                let text = try await client.send(route.method, route.path, token: token, json: "{}", headers: [.contentType: "text/plain"])
                #expect(text.status == .unsupportedMediaType, "\(route.path) content type: \(text.status)")
                let huge = try await client.send(
                    route.method, route.path, token: token, json: #"{"name":"\#(String(repeating: "x", count: 1 << 20))"}"#)
                #expect(huge.status == .contentTooLarge, "\(route.path) size: \(huge.status)")
                #expect(try await Self.count(route.table, harness) == before, "\(route.path) recorded something")
            }
            // Text Postgres cannot store, an invalid cron spec or time zone, and ids of records
            // that do not exist: each a problem naming the field, and nothing recorded.
            let refused: [(path: String, body: String, table: String, field: String)] = [
                ("/v1/organizations", #"{"name":"a\u0000b"}"#, "organizations", "name"),
                ("\(base)/environments", #"{"name":"e","variables":{"A":"x\u0000"}}"#, "environments", "variables.A"),
                // Names that change how a shell, the loader or the C library starts, and Harrow's own.
                ("\(base)/environments", #"{"name":"e","variables":{"LD_PRELOAD":"/tmp/x.so"}}"#, "environments", "variables"),
                ("\(base)/environments", #"{"name":"e","variables":{"BASH_ENV":"/tmp/x"}}"#, "environments", "variables"),
                ("\(base)/environments", #"{"name":"e","variables":{"GCONV_PATH":"/tmp"}}"#, "environments", "variables"),
                ("\(base)/environments", #"{"name":"e","variables":{"HARROW_WORKSPACE":"/"}}"#, "environments", "variables"),
                ("\(base)/environments", #"{"name":"e","variables":{"1A":"x"}}"#, "environments", "variables"),
                ("\(base)/environments/\(environment)/secrets", #"{"name":"GLIBC_TUNABLES","kind":"env","value":"x"}"#, "secrets", "name"),
                ("\(base)/schedules", #"{"job_id":"\#(job)","cron":"61 * * * *"}"#, "schedules", "cron"),
                ("\(base)/schedules", #"{"job_id":"\#(job)","cron":"* * * *"}"#, "schedules", "cron"),
                ("\(base)/schedules", #"{"job_id":"\#(job)","cron":"0 3 * * *","time_zone":"Mars/Olympus"}"#, "schedules", "time_zone"),
                ("\(base)/jobs", #"{"name":"unknown task","task_id":"\#(UUID())","environment_id":"\#(environment)"}"#, "jobs", "task"),
                ("\(base)/schedules", #"{"job_id":"\#(UUID())","cron":"0 3 * * *"}"#, "schedules", "job"),
            ]
            for (path, body, table, field) in refused {
                let before = try await Self.count(table, harness)
                let response = try await client.send(.post, path, token: token, json: body)
                #expect([.unprocessableContent, .notFound].contains(response.status), "\(path) \(body): \(response.status)")
                let problem = try JSONDecoder().decode(Problem.self, from: Data(response.body.readableBytesView))
                #expect(
                    (problem.errors ?? []).contains { $0.field == field } || problem.detail.contains(field),
                    "\(path) \(body): \(problem.detail)")
                #expect(try await Self.count(table, harness) == before, "\(path) \(body) recorded something")
            }

            // Parameter names that would make one variable.
            let clashing = try await client.send(
                .post, "\(base)/jobs/\(job)/operations", token: token, json: #"{"parameters":{"ref":"a","REF":"b"}}"#)
            #expect(clashing.status == .unprocessableContent)

            // Unknown ids in a path are not found, and change nothing.
            let before = try await Self.count("operations", harness)
            #expect(try await client.send(.post, "\(base)/jobs/\(UUID())/operations", token: token).status == .notFound)
            #expect(try await client.send(.post, "\(base)/operations/\(UUID())/cancel", token: token).status == .notFound)
            #expect(try await Self.count("operations", harness) == before)
        }
    }

    static func count(_ table: String, _ harness: APIHarness) async throws -> Int {
        let rows = try await harness.database.query(PostgresQuery(unsafeSQL: "SELECT count(*)::int8 FROM \(table)"))
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }
}
