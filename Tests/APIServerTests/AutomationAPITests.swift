import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import NIOCore
import Store
import Testing

@testable import APIServer

@Suite struct AutomationAPITests {
    /// A project with a task, an environment and a job, made through the API; returns the base
    /// path, the job's id and the owner's token.
    static func project(_ harness: APIHarness, _ client: any TestClientProtocol) async throws -> (base: String, job: String, token: String)
    {
        let (owner, token) = try await harness.signedIn("Owner", client: client)
        let organization = try await OrganizationStore(client: harness.database, logger: harness.logger).create(
            name: "Acme", owner: owner.id)
        let project = try #require(
            try await client.send(.post, "/v1/organizations/\(organization.id)/projects", token: token, json: #"{"name":"Web"}"#).json()[
                "id"]
                as? String)
        let base = "/v1/projects/\(project)"
        let environment = try #require(
            (try await client.send(.get, "\(base)/environments", token: token).json()["items"] as? [[String: Any]])?.first?["id"] as? String
        )
        let task = try #require(
            try await client.send(.post, "\(base)/tasks", token: token, json: #"{"name":"t","script":"true"}"#).json()["id"] as? String)
        let job = try #require(
            try await client.send(
                .post, "\(base)/jobs", token: token, json: #"{"name":"j","task_id":"\#(task)","environment_id":"\#(environment)"}"#
            )
            .json()["id"] as? String)
        return (base, job, token)
    }

    /// The operations list filtered by status, as the web app's filter asks for it.
    @Test func operationsAreListedByStatus() async throws {
        try await APIHarness.with("api_operations_status") { harness, client in
            let (base, job, token) = try await Self.project(harness, client)
            var ids: [String] = []
            for _ in 0..<2 {
                let run = try await client.send(.post, "\(base)/jobs/\(job)/operations", token: token)
                ids.append(try #require(try run.json()["id"] as? String))
            }
            #expect(try await client.send(.post, "\(base)/operations/\(ids[0])/cancel", token: token).status == .ok)
            func listed(_ query: String) async throws -> [String] {
                let page = try await client.send(.get, "\(base)/operations\(query)", token: token)
                #expect(page.status == .ok, "\(String(buffer: page.body))")
                return (try page.json()["items"] as? [[String: Any]])?.compactMap { $0["id"] as? String } ?? []
            }
            #expect(try await listed("?status=canceled") == [ids[0]])
            #expect(try await listed("?status=queued") == [ids[1]])
            #expect(try await listed("?status=queued,canceled") == [ids[1], ids[0]])
            #expect(try await listed("?status=failed,timed_out").isEmpty)
            #expect(try await listed("").count == 2)
            let bad = try await client.send(.get, "\(base)/operations?status=queued,bogus", token: token)
            #expect(bad.status == .unprocessableContent)
            #expect((try bad.problem()["errors"] as? [[String: Any]])?.first?["field"] as? String == "status")
            #expect(try await client.send(.get, "\(base)/operations?status=", token: token).status == .unprocessableContent)
        }
    }

    /// The schedule editor's preview: the next fire times of a spec not yet saved, or the field
    /// that is wrong; nothing is saved, and only those who can read the project may ask.
    @Test func aCronSpecIsPreviewedBeforeItIsSaved() async throws {
        try await APIHarness.with("api_schedule_preview") { harness, client in
            let (base, _, token) = try await Self.project(harness, client)
            let preview = try await client.send(
                .get, "\(base)/schedule-preview?cron=30%202%20*%20*%20*&time_zone=Europe/Berlin", token: token)
            #expect(preview.status == .ok, "\(String(buffer: preview.body))")
            let times = try #require(try preview.json()["next_fire_times"] as? [String])
            #expect(times.count == 5)
            // 02:30 in Berlin is 00:30 or 01:30 UTC, by the season.
            #expect(times.allSatisfy { $0.contains("T00:30:00") || $0.contains("T01:30:00") }, "\(times)")
            let badCron = try await client.send(.get, "\(base)/schedule-preview?cron=61%20*%20*%20*%20*", token: token)
            #expect(badCron.status == .unprocessableContent)
            #expect((try badCron.problem()["errors"] as? [[String: Any]])?.first?["field"] as? String == "cron")
            let badZone = try await client.send(.get, "\(base)/schedule-preview?cron=@daily&time_zone=Mars/Olympus", token: token)
            #expect((try badZone.problem()["errors"] as? [[String: Any]])?.first?["field"] as? String == "time_zone")
            let long = String(repeating: "1", count: 300)
            #expect(try await client.send(.get, "\(base)/schedule-preview?cron=\(long)", token: token).status == .unprocessableContent)
            #expect(try await client.send(.get, "\(base)/schedule-preview?cron=@daily").status == .unauthorized)
            let (_, stranger) = try await harness.signedIn("Stranger", client: client)
            #expect(try await client.send(.get, "\(base)/schedule-preview?cron=@daily", token: stranger).status == .notFound)
            #expect((try await client.send(.get, "\(base)/schedules", token: token).json()["items"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func schedulesRepositoriesAndTheActivityFeed() async throws {
        try await APIHarness.with("api_automation") { harness, client in
            let (base, job, token) = try await Self.project(harness, client)
            let schedule = try await client.send(
                .post, "\(base)/schedules", token: token, json: #"{"job_id":"\#(job)","cron":"30 2 * * *","time_zone":"Europe/Berlin"}"#)
            #expect(schedule.status == .created, "\(String(buffer: schedule.body))")
            let fires = try #require(try schedule.json()["next_fire_times"] as? [String])
            #expect(fires.count == 5)
            #expect(try schedule.json()["cron"] as? String == "30 2 * * *")
            let both = try await client.send(
                .post, "\(base)/schedules", token: token, json: #"{"job_id":"\#(job)","cron":"* * * * *","run_at":"2030-01-01T00:00:00Z"}"#)
            #expect(both.status == .unprocessableContent)
            let badCron = try await client.send(
                .post, "\(base)/schedules", token: token, json: #"{"job_id":"\#(job)","cron":"61 * * * *"}"#)
            #expect(badCron.status == .unprocessableContent)
            let badZone = try await client.send(
                .post, "\(base)/schedules", token: token, json: #"{"job_id":"\#(job)","cron":"* * * * *","time_zone":"Mars/Olympus"}"#)
            #expect((try badZone.problem()["errors"] as? [[String: Any]])?.first?["field"] as? String == "time_zone")

            let repository = try await client.send(
                .post, "\(base)/repositories", token: token, json: #"{"url":"git@github.com:acme/web.git"}"#)
            #expect(repository.status == .created, "\(String(buffer: repository.body))")
            let repositoryID = try #require(try repository.json()["id"] as? String)
            let deployKey = try #require(try repository.json()["deploy_key"] as? [String: Any], "\(String(buffer: repository.body))")
            #expect(deployKey["status"] as? String == "pending")
            #expect(try await harness.outboxPayloads(type: "generate-key").count == 1)
            let listed = try #require(
                try await client.send(.get, "\(base)/repositories", token: token).json()["items"] as? [[String: Any]])
            #expect(listed.count == 1)
            #expect((listed.first?["deploy_key"] as? [String: Any])?["id"] as? String == deployKey["id"] as? String)
            let withCredentials = try await client.send(
                .post, "\(base)/repositories", token: token, json: #"{"url":"https://user:hunter2@github.com/acme/web.git"}"#)
            #expect(withCredentials.status == .unprocessableContent)
            #expect(!String(buffer: withCredentials.body).contains("hunter2"))
            #expect(try await client.send(.post, "\(base)/repositories/\(repositoryID)/refresh", token: token).status == .accepted)
            #expect(try await harness.outboxPayloads(type: "poll-repo").count == 1)

            let feed = try await client.send(.get, "\(base)/activities?limit=3", token: token)
            let names = try #require((try feed.json()["items"] as? [[String: Any]])?.compactMap { $0["name"] as? String })
            #expect(names.count == 3)
            #expect(names.first == "repository.created" || names.contains("repository.created"))
            #expect(try feed.json()["next_cursor"] as? String != nil)
        }
    }

    @Test func notifiersAndRulesAreReadAndUpdatedButRulesKeepTheirNotifier() async throws {
        try await APIHarness.with("api_notifications") { harness, client in
            let (base, job, token) = try await Self.project(harness, client)
            let notifier = try await client.send(
                .post, "\(base)/notifiers", token: token, json: #"{"name":"ops","recipients":["ops@example.com"]}"#)
            #expect(notifier.status == .created, "\(String(buffer: notifier.body))")
            let notifierID = try #require(try notifier.json()["id"] as? String)
            let read = try await client.send(.get, "\(base)/notifiers/\(notifierID)", token: token)
            #expect(try read.json()["recipients"] as? [String] == ["ops@example.com"])

            let rule = try await client.send(
                .post, "\(base)/notification-rules", token: token,
                json: #"{"notifier_id":"\#(notifierID)","activity_pattern":"operation.*"}"#)
            #expect(rule.status == .created, "\(String(buffer: rule.body))")
            let ruleID = try #require(try rule.json()["id"] as? String)
            let updated = try await client.send(
                .patch, "\(base)/notification-rules/\(ruleID)", token: token,
                json: #"{"job_id":"\#(job)","activity_pattern":"operation.failed"}"#)
            #expect(updated.status == .ok, "\(String(buffer: updated.body))")
            let reread = try await client.send(.get, "\(base)/notification-rules/\(ruleID)", token: token)
            #expect(try reread.json()["activity_pattern"] as? String == "operation.failed")
            #expect(try reread.json()["job_id"] as? String == job)

            let moved = try await client.send(
                .patch, "\(base)/notification-rules/\(ruleID)", token: token,
                json: #"{"notifier_id":"\#(UUID())","activity_pattern":"*"}"#)
            #expect(moved.status == .unprocessableContent)
            #expect((try moved.problem()["errors"] as? [[String: Any]])?.first?["field"] as? String == "notifier_id")
            #expect(try await client.send(.get, "\(base)/notification-rules/\(UUID())", token: token).status == .notFound)
        }
    }

    /// A webhook notifier shows its signing secret when it is made and on rotation, never when
    /// read; fields of other kinds and kind changes are refused.
    @Test func aWebhookNotifiersSecretIsShownOnce() async throws {
        try await APIHarness.with("api_webhook_notifier") { harness, client in
            let (base, job, token) = try await Self.project(harness, client)
            let created = try await client.send(
                .post, "\(base)/notifiers", token: token, json: #"{"name":"chat","kind":"webhook","url":"https://hooks.example.com/x"}"#)
            #expect(created.status == .created, "\(String(buffer: created.body))")
            let secret = try #require(try created.json()["signing_secret"] as? String)
            #expect(try created.json()["url"] as? String == "https://hooks.example.com/…")
            let id = try #require(try created.json()["id"] as? String)
            let read = try await client.send(.get, "\(base)/notifiers/\(id)", token: token)
            #expect(read.status == .ok && !String(buffer: read.body).contains(secret))
            #expect(try read.json()["signing_secret"] == nil)
            let listed = try await client.send(.get, "\(base)/notifiers", token: token)
            #expect(!String(buffer: listed.body).contains(secret))

            let renamed = try await client.send(.patch, "\(base)/notifiers/\(id)", token: token, json: #"{"name":"chat ops"}"#)
            #expect(renamed.status == .ok)
            #expect(try renamed.json()["url"] as? String == "https://hooks.example.com/…")
            let stored = try await WebhookNotifierSecrets(client: harness.database, keyring: harness.keyring, logger: harness.logger)
                .target(of: try #require(UUID(uuidString: id)))
            #expect(stored?.url == "https://hooks.example.com/x", "a rename keeps the URL")
            let rekinded = try await client.send(
                .patch, "\(base)/notifiers/\(id)", token: token, json: #"{"name":"x","kind":"email","recipients":["a@example.com"]}"#)
            #expect(rekinded.status == .unprocessableContent, "\(String(buffer: rekinded.body))")
            let rotated = try await client.send(.post, "\(base)/notifiers/\(id)/rotate", token: token)
            let next = try #require(try rotated.json()["signing_secret"] as? String)
            #expect(next != secret)

            for body in [
                #"{"name":"w","kind":"webhook","url":"https://u:p@example.com/"}"#, #"{"name":"w","kind":"webhook"}"#,
                #"{"name":"w","kind":"webhook","url":"https://example.com/","recipients":["a@example.com"]}"#,
                #"{"name":"w","kind":"job","job_id":"\#(job)","url":"https://example.com/"}"#,
                #"{"name":"w","url":"gopher://example.com/"}"#,
            ] {
                let refused = try await client.send(.post, "\(base)/notifiers", token: token, json: body)
                #expect(refused.status == .unprocessableContent, "\(body): \(String(buffer: refused.body))")
            }
            let mail = try await client.send(
                .post, "\(base)/notifiers", token: token, json: #"{"name":"ops","recipients":["ops@example.com"]}"#)
            #expect(mail.status == .created)
            #expect(try mail.json()["signing_secret"] == nil)
            let mailID = try #require(try mail.json()["id"] as? String)
            #expect(try await client.send(.post, "\(base)/notifiers/\(mailID)/rotate", token: token).status == .notFound)
        }
    }

    @Test func aGitHubTokenIsWriteOnly() async throws {
        try await APIHarness.with("api_github_token") { harness, client in
            let (base, _, token) = try await Self.project(harness, client)
            #expect(try await client.send(.get, "\(base)/github-token", token: token).json()["configured"] as? Bool == false)
            #expect(try await client.send(.delete, "\(base)/github-token", token: token).status == .notFound)
            let spaced = try await client.send(.put, "\(base)/github-token", token: token, json: #"{"token":"ghp has spaces"}"#)
            #expect(spaced.status == .unprocessableContent)
            let set = try await client.send(.put, "\(base)/github-token", token: token, json: #"{"token":"ghp_secretvalue"}"#)
            #expect(set.status == .noContent, "\(String(buffer: set.body))")
            let status = try await client.send(.get, "\(base)/github-token", token: token)
            #expect(try status.json()["configured"] as? Bool == true)
            #expect(try status.json()["updated_at"] as? String != nil)
            #expect(!String(buffer: status.body).contains("ghp_secretvalue"))
            let project = try #require(UUID(uuidString: String(base.split(separator: "/").last ?? "")))
            let stored = try await GitHubTokenStore(client: harness.database, keyring: harness.keyring, logger: harness.logger).token(
                of: project)
            #expect(stored == "ghp_secretvalue")
            #expect(try await client.send(.delete, "\(base)/github-token", token: token).status == .noContent)
            #expect(try await client.send(.get, "\(base)/github-token", token: token).json()["configured"] as? Bool == false)
        }
    }
}
