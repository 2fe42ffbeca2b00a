import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Queue
import Store
import Testing

@testable import APIServer

/// Operations run end to end: queued through the API, run by a real `worker` process started
/// with default options (its relay, its runner, its sandbox), read back through the API.
@Suite(.serialized) struct OperationRunAPITests {
    /// A user's project with one job whose task and environment a test chooses.
    struct Project {
        let base: String
        let token: String
        let job: String
        let environment: String
    }

    /// Creates an organization, a project, an environment with `variables` (and `secrets`), a
    /// task with `script` and a job of both.
    static func project(
        _ harness: APIHarness, _ client: any TestClientProtocol, script: String, variables: [String: String] = [:],
        secrets: [String: String] = [:], timeLimitSeconds: Int? = nil
    ) async throws -> Project {
        let (_, token) = try await harness.signedIn("Runner", client: client)
        let organization = try #require(
            try await client.send(.post, "/v1/organizations", token: token, json: #"{"name":"Runs \#(TestRedis.randomHex())"}"#).json()[
                "id"]
                as? String)
        let project = try #require(
            try await client.send(.post, "/v1/organizations/\(organization)/projects", token: token, json: #"{"name":"App"}"#).json()["id"]
                as? String)
        let base = "/v1/projects/\(project)"
        let environmentBody = try Self.json(["name": "staging", "variables": variables])
        let environment = try #require(
            try await client.send(.post, "\(base)/environments", token: token, json: environmentBody).json()["id"] as? String)
        for (name, value) in secrets {
            let created = try await client.send(
                .post, "\(base)/environments/\(environment)/secrets", token: token,
                json: try Self.json(["name": name, "kind": "env", "value": value]))
            #expect(created.status == .created, "\(String(buffer: created.body))")
        }
        let task = try #require(
            try await client.send(.post, "\(base)/tasks", token: token, json: try Self.json(["name": "run", "script": script])).json()["id"]
                as? String)
        var jobBody: [String: Any] = ["name": "run it", "task_id": task, "environment_id": environment]
        if let timeLimitSeconds { jobBody["time_limit_seconds"] = timeLimitSeconds }
        let job = try #require(
            try await client.send(.post, "\(base)/jobs", token: token, json: try Self.json(jobBody)).json()["id"] as? String)
        return Project(base: base, token: token, job: job, environment: environment)
    }

    static func json(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    /// A `worker` with default options but for its Redis key prefix (the test's) and `extra`.
    static func worker(
        _ harness: APIHarness, _ extra: [String] = [], environment extraEnvironment: [String: String] = [:]
    ) throws
        -> RunningExecutable
    {
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = harness.databaseURL
        environment["HARROW_SECRET_KEY"] = harness.secretKey.base64
        environment["HARROW_QUEUES"] = nil
        environment["SMTP_URL"] = nil
        environment["LOG_LEVEL"] = "info"
        for (name, value) in extraEnvironment { environment[name] = value }
        return try RunningExecutable(
            "worker", ["--redis-url", TestRedis.url, "--key-prefix", harness.configuration.keyPrefix] + extra, environment: environment)
    }

    /// Queues a run of the project's job; its id.
    static func run(_ project: Project, _ client: any TestClientProtocol) async throws -> String {
        let response = try await client.send(.post, "\(project.base)/jobs/\(project.job)/operations", token: project.token)
        #expect(response.status == .created, "\(String(buffer: response.body))")
        return try #require(try response.json()["id"] as? String)
    }

    /// The operation once `condition` holds for it.
    static func operation(
        _ id: String, of project: Project, _ client: any TestClientProtocol, timeout: Duration = .seconds(60),
        until condition: @escaping @Sendable ([String: Any]) -> Bool
    ) async throws -> [String: Any] {
        let latest = Latest()
        try await eventually("the operation gets where the test waits for", timeout: timeout, poll: .milliseconds(100)) {
            let response = try await client.send(.get, "\(project.base)/operations/\(id)", token: project.token)
            await latest.set(Data(response.body.readableBytesView))
            return condition(try response.json())
        }
        return (try JSONSerialization.jsonObject(with: await latest.value) as? [String: Any]) ?? [:]
    }

    /// Every line of the operation's log, read page by page.
    static func log(_ id: String, of project: Project, _ client: any TestClientProtocol) async throws -> [(stream: String, text: String)] {
        var lines: [(stream: String, text: String)] = []
        var after = "0"
        for _ in 0..<1000 {
            let page = try await client.send(.get, "\(project.base)/operations/\(id)/log?after=\(after)&limit=100", token: project.token)
                .json()
            let entries = page["lines"] as? [[String: Any]] ?? []
            lines += entries.map { (stream: $0["stream"] as? String ?? "", text: $0["text"] as? String ?? "") }
            after = page["next"] as? String ?? after
            if entries.isEmpty { break }
        }
        return lines
    }

    private actor Latest {
        var value = Data("{}".utf8)
        func set(_ value: Data) { self.value = value }
    }

    /// `echo hello; echo oops >&2; exit 3` ends `failed` with exit 3 and both lines with their
    /// streams; a variable holding `$(touch …)` reaches the script verbatim and runs nothing; a
    /// secret the script prints is masked; the run's variables are exactly Harrow's, the
    /// environment's and the secrets'; a notification rule on `operation.failed` mails its
    /// recipient.
    @Test func aFailingScriptIsRecordedWithItsLogAndMailed() async throws {
        try await SMTPSink.with { sink in
            let (inbox, smtpURL) = (sink.inbox, sink.url)
            try await APIHarness.with("op_fail") { harness, client in
                let marker = "/tmp/harrow-injected-\(TestRedis.randomHex())"
                let secret = "s3cr3t-\(TestRedis.randomHex())"
                let project = try await Self.project(
                    harness, client,
                    script: """
                        echo hello
                        echo oops >&2
                        printf 'greeting=%s\\n' "$GREETING"
                        echo "token=$TOKEN"
                        echo "$CERT" >&2
                        env | grep -o '^[A-Za-z_][A-Za-z0-9_]*=' | tr -d = | sort | tr '\\n' ' '
                        echo
                        exit 3
                        """, variables: ["GREETING": "$(touch \(marker))"],
                    secrets: ["TOKEN": secret, "CERT": "first-\(secret)\nsecond-line-\(secret.suffix(8))"])
                let notifier = try #require(
                    try await client.send(
                        .post, "\(project.base)/notifiers", token: project.token, json: #"{"name":"ops","recipients":["ops@example.com"]}"#
                    ).json()["id"] as? String)
                let rule = try await client.send(
                    .post, "\(project.base)/notification-rules", token: project.token,
                    json: #"{"notifier_id":"\#(notifier)","activity_pattern":"operation.failed"}"#)
                #expect(rule.status == .created, "\(String(buffer: rule.body))")
                let worker = try Self.worker(harness, environment: ["SMTP_URL": smtpURL])
                let id = try await Self.run(project, client)
                let finished = try await Self.operation(id, of: project, client) {
                    ["failed", "succeeded"].contains($0["status"] as? String ?? "")
                }
                #expect(finished["status"] as? String == "failed", "\(worker.log())")
                #expect(finished["exit_status"] as? Int == 3)
                #expect(finished["failure_reason"] as? String == "script_failed")
                let lines = try await Self.log(id, of: project, client)
                let output = lines.filter { $0.stream != "system" }
                // Two pipes: each stream keeps its order, not their interleaving.
                let stdout = output.filter { $0.stream == "stdout" }.map(\.text)
                #expect(stdout.prefix(3) == ["hello", "greeting=$(touch \(marker))", "token=***"])
                // A secret of several lines is masked line by line.
                #expect(output.filter { $0.stream == "stderr" }.map(\.text) == ["oops", "***", "***"])
                #expect(!lines.contains { $0.text.contains(secret) })
                #expect(!FileManager.default.fileExists(atPath: marker))
                let names = Set((stdout.dropFirst(3).first ?? "").split(separator: " ").map(String.init))
                #expect(
                    names == [
                        "PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "GREETING", "TOKEN", "CERT", "HARROW_OPERATION_ID", "HARROW_JOB",
                        "HARROW_JOB_ID",
                        "HARROW_PROJECT", "HARROW_PROJECT_ID", "HARROW_WORKSPACE", "HARROW_ENVIRONMENT",
                    ], "\(names)")
                try await eventually("the failure mail arrives", timeout: .seconds(60)) { try !inbox.messages().isEmpty }
                let mail = try #require(try inbox.messages().first)
                #expect(mail.rcptTos == ["ops@example.com"])
                #expect(mail.header("Subject")?.contains("failed") == true)
                #expect(mail.parts.contains { $0.content.contains("oops") } && !mail.raw.contains(secret))
                worker.signal(SIGTERM)
                #expect(try await worker.waitForExit() == 0, "\(worker.log())")
                #expect(!worker.log().contains(secret))
            }
        }
    }

    /// A 2 s time limit on `sleep 30` ends `timed_out`; a canceled run is gone, process and
    /// children, within 5 s; a finished operation is retried as a new one.
    @Test func timeLimitsAndCancelsStopTheWholeProcessGroup() async throws {
        try await APIHarness.with("op_stop") { harness, client in
            let worker = try Self.worker(harness)
            let slow = try await Self.project(harness, client, script: "echo started\nsleep 30", timeLimitSeconds: 2)
            let timed = try await Self.run(slow, client)
            let timedOut = try await Self.operation(timed, of: slow, client) { ($0["status"] as? String) == "timed_out" }
            #expect(timedOut["exit_status"] as? Int == 143)
            #expect(try await Self.log(timed, of: slow, client).contains { $0.stream == "system" && $0.text.contains("time limit") })

            let marker = "30\(Int.random(in: 100...999)).\(Int.random(in: 100_000...999_999))"
            let stubborn = try await Self.project(
                harness, client, script: "sleep \(marker) &\ntrap '' TERM\necho started\nsleep \(marker)\n")
            let id = try await Self.run(stubborn, client)
            try await eventually("the script started", timeout: .seconds(60)) {
                try await Self.log(id, of: stubborn, client).contains { $0.text == "started" }
            }
            #expect(try Self.processes(matching: marker) == 2)
            let canceledAt = ContinuousClock.now
            let cancel = try await client.send(.post, "\(stubborn.base)/operations/\(id)/cancel", token: stubborn.token)
            #expect(cancel.status == .ok)
            try await eventually("the script and its children are gone", timeout: .seconds(5), poll: .milliseconds(50)) {
                try Self.processes(matching: marker) == 0
            }
            #expect(ContinuousClock.now - canceledAt < .seconds(5))
            let canceled = try await Self.operation(id, of: stubborn, client) { $0["finished_at"] is String }
            #expect(canceled["status"] as? String == "canceled")

            let retry = try await client.send(.post, "\(stubborn.base)/operations/\(id)/retry", token: stubborn.token)
            #expect(retry.status == .created)
            #expect(try retry.json()["retry_of"] as? String == id && (try retry.json()["reason"] as? String) == "retry")
            let again = try #require(try retry.json()["id"] as? String)
            _ = try await Self.operation(again, of: stubborn, client) { ($0["status"] as? String) == "running" }
            _ = try await client.send(.post, "\(stubborn.base)/operations/\(again)/cancel", token: stubborn.token)
            _ = try await Self.operation(again, of: stubborn, client) { $0["finished_at"] is String }
            worker.signal(SIGTERM)
            #expect(try await worker.waitForExit() == 0, "\(worker.log())")
        }
    }

    /// A worker killed with SIGKILL mid-run: its script dies with it, the operation ends
    /// `failed`/`worker_lost` once the lease expired, and the script never runs again.
    @Test func aKilledWorkersRunEndsWorkerLostAndNeverRunsTwice() async throws {
        try await APIHarness.with("op_lost") { harness, client in
            let marker = "40\(Int.random(in: 100...999)).\(Int.random(in: 100_000...999_999))"
            let project = try await Self.project(harness, client, script: "echo started\nsleep \(marker)\n")
            let first = try Self.worker(harness, ["--operation-lease", "3"])
            let id = try await Self.run(project, client)
            try await eventually("the script started", timeout: .seconds(60)) {
                try await Self.log(id, of: project, client).contains { $0.text == "started" }
            }
            first.signal(SIGKILL)
            _ = try await first.waitForExit()
            try await eventually("the sandboxed script died with its worker", timeout: .seconds(10)) {
                try Self.processes(matching: marker) == 0
            }
            let second = try Self.worker(harness, ["--operation-lease", "3"])
            let lost = try await Self.operation(id, of: project, client, timeout: .seconds(90)) { ($0["status"] as? String) == "failed" }
            #expect(lost["failure_reason"] as? String == "worker_lost")
            let lines = try await Self.log(id, of: project, client)
            #expect(lines.filter { $0.text == "started" }.count == 1)
            #expect(lines.last?.text.contains("worker_lost") == true)
            second.signal(SIGTERM)
            #expect(try await second.waitForExit() == 0, "\(second.log())")
        }
    }

    /// How many processes have `marker` in their command line.
    static func processes(matching marker: String) throws -> Int {
        var count = 0
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc") where entry.allSatisfy(\.isNumber) {
            guard let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let command = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            if command.contains(marker) && !command.contains("pgrep") { count += 1 }
        }
        return count
    }
}
