import Foundation
import HTTPTypes
import HarrowTestSupport
import JobContracts
import Logging
import PostgresNIO
import Queue
import Store
import Testing
import WorkerPool

@testable import Jobs

/// `post-status` on a real worker, Postgres and Redis, against a local stand-in for GitHub's API.
@Suite struct StatusReporterTests {
    static let sha = "0123456789abcdef0123456789abcdef01234567"

    /// A harness whose worker posts to `apiURL`, with an operation on a GitHub repository and a
    /// token for the project; `body` gets the operation.
    static func with(
        _ name: String, apiURL: String, repositoryURL: String = "git@github.com:acme/web.git", gitHubHosts: [String] = ["github.com"],
        _ body: @Sendable (JobsHarness, Store.Operation) async throws -> Void
    ) async throws {
        try await JobsHarness.withPlatformJobs(
            name,
            configure: { configuration in
                configuration.publicURL = "https://harrow.example.com"
                configuration.gitHubAPIURL = apiURL
                // The stand-in's address is no GitHub host: name the one the repositories are on.
                configuration.gitHubHosts = gitHubHosts
            }
        ) { harness in
            let logger = harness.logger
            let task = try await TaskStore(client: harness.database, logger: logger).create(
                project: harness.project, name: "build", script: "make", actor: nil)
            let job = try await JobStore(client: harness.database, logger: logger).create(
                project: harness.project, name: "build web", task: task.id, environment: harness.environment, actor: nil)
            let repository = try await RepositoryStore(client: harness.database, logger: logger).create(
                project: harness.project, url: repositoryURL, actor: nil)
            let operation = try await OperationStore(client: harness.database, logger: logger).create(
                job: job.id, project: harness.project, reason: .gitTrigger, requestedBy: nil,
                parameters: ["sha": sha, "repository_id": repository.id.uuidString.lowercased()])
            try await GitHubTokenStore(client: harness.database, keyring: harness.keyring, logger: logger).set(
                project: harness.project, token: "ghp_testtoken123", actor: nil)
            try await body(harness, operation)
        }
    }

    @Test func aStatusIsPostedWithTheRightPathHeadersAndBody() async throws {
        try await GitHubStandIn.with { github, url in
            try await Self.with("status_posted", apiURL: url) { harness, operation in
                let job = try await harness.jobQueue.enqueue(PostStatus(operationID: operation.id))
                try await eventually("the status is posted") { await github.requests.count == 1 }
                let request = try #require(await github.requests.first)
                #expect(request.path == "/repos/acme/web/statuses/\(Self.sha)")
                #expect(request.headers[.authorization] == "Bearer ghp_testtoken123")
                #expect(request.headers[.accept] == "application/vnd.github+json")
                #expect(request.headers[HTTPField.Name("X-GitHub-Api-Version")!] == "2022-11-28")
                #expect(request.body["state"] == "pending")
                #expect(request.body["context"] == "harrow/build web")
                #expect(
                    request.body["target_url"]
                        == "https://harrow.example.com/projects/\(harness.project.uuidString.lowercased())/operations/\(operation.id.uuidString.lowercased())"
                )
                try await eventually("the run is recorded") {
                    try await JobRuns.outcome(of: job.id, client: harness.database, logger: harness.logger) == "pending"
                }
            }
        }
    }

    /// A repository on another host (gitlab.com, or github.com when Harrow talks to a GitHub
    /// Enterprise server) gets no status: the project's token must never leave for a host
    /// that is not the configured GitHub. The job ends quietly (no dead letter, no retry).
    @Test(arguments: [
        ("git@gitlab.com:acme/web.git", ["github.com"]), ("https://gitlab.com/acme/web.git", ["github.com"]),
        ("ssh://git@bitbucket.org/acme/web.git", ["github.com"]), ("https://github.com/acme/web", ["ghe.example"]),
        ("https://github.com.evil.example/acme/web", ["github.com"]), ("git@evil.example:github.com/web.git", ["github.com"]),
    ])
    func aRepositoryOnAnotherHostGetsNoStatusAndTheTokenStaysHome(repositoryURL: String, hosts: [String]) async throws {
        try await GitHubStandIn.with { github, url in
            try await Self.with("status_other_host", apiURL: url, repositoryURL: repositoryURL, gitHubHosts: hosts) { harness, operation in
                let job = try await harness.jobQueue.enqueue(PostStatus(operationID: operation.id))
                try await eventually("the job is done") {
                    let posted = await github.requests.count
                    let dead = try await harness.jobQueue.deadLetters(queue: "status").count
                    return try await JobRuns.outcome(of: job.id, client: harness.database, logger: harness.logger) != nil || dead > 0
                        || posted > 0
                }
                #expect(await github.requests.isEmpty, "\(repositoryURL): the token went to the GitHub API")
                #expect(try await JobRuns.outcome(of: job.id, client: harness.database, logger: harness.logger) == "skipped")
                #expect(try await harness.jobQueue.deadLetters(queue: "status").isEmpty)
            }
        }
    }

    /// GitHub Enterprise: its repositories get statuses.
    @Test func aRepositoryOnTheConfiguredEnterpriseHostGetsItsStatus() async throws {
        try await GitHubStandIn.with { github, url in
            try await Self.with(
                "status_enterprise", apiURL: url, repositoryURL: "https://GHE.example/acme/web.git", gitHubHosts: ["ghe.example"]
            ) {
                harness, operation in
                _ = try await harness.jobQueue.enqueue(PostStatus(operationID: operation.id))
                try await eventually("the status is posted") { await github.requests.count == 1 }
                #expect(await github.requests.first?.path == "/repos/acme/web/statuses/\(Self.sha)")
            }
        }
    }

    @Test func a422IsDeadLetteredWithGitHubsMessage() async throws {
        try await GitHubStandIn.with { github, url in
            await github.script([.init(status: .unprocessableContent, body: #"{"message":"No commit found for SHA"}"#)])
            try await Self.with("status_422", apiURL: url) { harness, operation in
                _ = try await harness.jobQueue.enqueue(PostStatus(operationID: operation.id))
                var dead: [DeadLetter] = []
                try await eventually("the job is dead") {
                    dead = try await harness.jobQueue.deadLetters(queue: "status")
                    return !dead.isEmpty
                }
                #expect(dead[0].error.contains("422"), "\(dead[0].error)")
                #expect(dead[0].error.contains("No commit found for SHA"), "\(dead[0].error)")
                #expect(!dead[0].error.contains("ghp_testtoken123"))
                #expect(await github.requests.count == 1)
            }
        }
    }

    /// A 403 with GitHub's rate-limit headers: the job waits until the reset (not the
    /// backoff), and meanwhile the token is held off for every worker.
    @Test func aRateLimitedRequestRetriesAfterTheReset() async throws {
        try await GitHubStandIn.with { github, url in
            let reset = Int(Date().timeIntervalSince1970) + 3
            await github.script([
                .init(
                    status: .forbidden,
                    headers: [
                        HTTPField.Name("X-RateLimit-Remaining")!: "0", HTTPField.Name("X-RateLimit-Reset")!: "\(reset)",
                    ], body: #"{"message":"API rate limit exceeded"}"#)
            ])
            try await Self.with("status_rate_limited", apiURL: url) { harness, operation in
                _ = try await harness.jobQueue.enqueue(PostStatus(operationID: operation.id))
                var delayed: [JobSummary] = []
                try await eventually("the job waits") {
                    delayed = try await harness.jobQueue.delayedJobs(queue: "status", limit: 10)
                    return !delayed.isEmpty
                }
                let runAt = try #require(delayed.first?.runAt)
                #expect(runAt >= Int64(reset) * 1000 - 1000, "due at \(runAt), reset at \(reset)")
                let limiter = GitHubRateLimiter(redis: harness.redis, keyPrefix: harness.keyPrefix)
                let blockedUntil = try await harness.redis.send(
                    "HGET", [.string(limiter.key("ghp_testtoken123")), .string("blocked_until")]
                ).string.flatMap { Int64($0) }
                #expect((blockedUntil ?? 0) >= Int64(reset) * 1000 - 1000, "every worker is held off the token until the reset")

                try await eventually("posted after the reset", timeout: .seconds(60)) { await github.requests.count == 2 }
                let second = try #require(await github.requests.last)
                #expect(second.receivedAt.timeIntervalSince1970 >= Double(reset) - 1)
                #expect(try await harness.jobQueue.deadLetters(queue: "status").isEmpty)
            }
        }
    }

    @Test func aServerErrorRetriesAndAMissingTokenIsPermanent() async throws {
        try await GitHubStandIn.with { github, url in
            await github.script([.init(status: .internalServerError, body: #"{"message":"boom"}"#)])
            try await Self.with("status_500", apiURL: url) { harness, operation in
                _ = try await harness.jobQueue.enqueue(PostStatus(operationID: operation.id))
                try await eventually("retried after the 500", timeout: .seconds(60)) { await github.requests.count == 2 }
                #expect(try await harness.jobQueue.deadLetters(queue: "status").isEmpty)

                try await GitHubTokenStore(client: harness.database, keyring: harness.keyring, logger: harness.logger).clear(
                    project: harness.project, actor: nil)
                _ = try await harness.jobQueue.enqueue(PostStatus(operationID: operation.id))
                var dead: [DeadLetter] = []
                try await eventually("dead without a token") {
                    dead = try await harness.jobQueue.deadLetters(queue: "status")
                    return !dead.isEmpty
                }
                #expect(dead[0].error.contains("no GitHub token"), "\(dead[0].error)")
                #expect(await github.requests.count == 2)
            }
        }
    }

    @Test func aDownServerRetries() async throws {
        // Port 1 (tcpmux) has no listener here: connection refused, which is retried, not
        // dead-lettered.
        try await Self.with("status_down", apiURL: "http://127.0.0.1:1") { harness, operation in
            _ = try await harness.jobQueue.enqueue(PostStatus(operationID: operation.id))
            // The HTTP client retries connecting until the request's deadline (20 s), then fails.
            try await eventually("the job waits for a retry", timeout: .seconds(90)) {
                try await !harness.jobQueue.delayedJobs(queue: "status", limit: 10).isEmpty
            }
            #expect(try await harness.jobQueue.deadLetters(queue: "status").isEmpty)
        }
    }
}

/// The bucket itself, on the test Redis.
@Suite struct GitHubRateLimiterTests {
    @Test func aBucketAllowsItsBurstThenSaysHowLongToWaitPerToken() async throws {
        try await TestRedis.withClient { redis in
            let prefix = TestRedis.uniqueKeyPrefix("ratelimit")
            // Two an hour: a refill between these calls is out of the question however slow they are.
            let limiter = GitHubRateLimiter(redis: redis, keyPrefix: prefix, perHour: 2, burst: 2)
            #expect(try await limiter.acquire(token: "a") == .now)
            #expect(try await limiter.acquire(token: "a") == .now)
            // The next request is half an hour off: too far to reserve within a minute.
            guard case .retry(let wait) = try await limiter.acquire(token: "a", reservingUpTo: .seconds(60)) else {
                Issue.record("expected no reservation")
                return
            }
            #expect(wait > .seconds(1700) && wait <= .seconds(1800))
            // Within an hour it is reserved, and the one after that queues behind it.
            guard case .after(let first) = try await limiter.acquire(token: "a", reservingUpTo: .seconds(3600)),
                case .after(let second) = try await limiter.acquire(token: "a", reservingUpTo: .seconds(3600))
            else {
                Issue.record("expected reservations")
                return
            }
            #expect(first > .seconds(1700) && first <= .seconds(1800))
            #expect(second > first + .seconds(1700))
            #expect(try await limiter.acquire(token: "b") == .now, "another token has its own bucket")

            try await limiter.block(token: "b", forMilliseconds: 60_000)
            guard case .retry(let blocked) = try await limiter.acquire(token: "b", reservingUpTo: .seconds(3600)) else {
                Issue.record("a blocked token reserves nothing")
                return
            }
            #expect(blocked > .seconds(50) && blocked <= .seconds(60))
            let keys = try await redis.send("KEYS", [.string("\(prefix):*")]).array?.compactMap(\.string) ?? []
            #expect(keys.count == 2)
            #expect(keys.allSatisfy { !$0.hasSuffix(":a") && !$0.hasSuffix(":b") }, "keys hold a hash, not the token")
            try await TestRedis.deleteKeys(prefix: prefix, on: redis)
        }
    }

    @Test(arguments: [
        ("git@github.com:acme/web.git", "acme/web"), ("https://github.com/acme/web", "acme/web"),
        ("ssh://git@github.example.com/acme/web.git", "acme/web"), ("https://github.com/acme/web.git/", "acme/web"),
    ])
    func repositoryNamesFromURLs(url: String, expected: String) {
        #expect(GitHubRepositoryName(url: url)?.description == expected)
    }

    @Test(arguments: [
        "https://github.com/acme", "file:///srv/git/web.git", "git@github.com:acme/web/extra.git", "https://github.com/acme/we b",
    ])
    func urlsThatAreNotGitHubRepositories(url: String) {
        #expect(GitHubRepositoryName(url: url) == nil)
    }
}

/// Which repositories are on the configured GitHub.
@Suite struct GitHubHostsTests {
    @Test(arguments: [
        ("https://api.github.com", "github.com"), ("https://api.github.com/", "github.com"), ("https://ghe.example/api/v3", "ghe.example"),
        ("https://GHE.example:8443/api/v3/", "ghe.example"), ("https://api.acme.ghe.com", "acme.ghe.com"),
        ("http://127.0.0.1:9999", "127.0.0.1"), ("https://api.example.com", "api.example.com"),
        ("https://api.ghe.com", "api.ghe.com"),
    ])
    func theHostIsDerivedFromTheAPIRoot(apiURL: String, host: String) {
        #expect(GitHubHosts(apiURL: apiURL).hosts == [host])
    }

    @Test(arguments: [
        ("git@github.com:acme/web.git", "github.com"), ("ssh://git@GitHub.com:22/acme/web.git", "github.com"),
        ("https://github.com/acme/web", "github.com"), ("https://x-access-token@ghe.example:8443/acme/web", "ghe.example"),
        ("https://github.com.evil.example/acme/web", "github.com.evil.example"), ("git@evil.example:github.com/web.git", "evil.example"),
    ])
    func repositoryURLsNameTheirHost(url: String, host: String) {
        #expect(GitHubRepositoryName(url: url)?.host == host)
    }

    @Test func configuredHostsCompareWithoutCaseOrFinalDot() {
        let hosts = GitHubHosts(["GitHub.com", " ", "ssh.github.com."])
        #expect(hosts.hosts == ["github.com", "ssh.github.com"])
        #expect(hosts.contains("github.com."))
        #expect(!hosts.contains("gitlab.com"))
    }
}
