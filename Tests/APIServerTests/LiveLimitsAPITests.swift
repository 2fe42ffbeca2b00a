import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import HummingbirdWSTesting
import HummingbirdWebSocket
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket
import OperationLogs
import PostgresNIO
import Queue
import Store
import Testing

@testable import APIServer

/// `/ws` against sockets that push it: subscriptions changed while the recheck runs, more
/// subscriptions or sockets than allowed, many sockets following logs.
@Suite struct LiveLimitsAPITests {
    typealias Messages = WebSocketInboundMessageStream.AsyncIterator

    /// The next message of `type`, skipping activity notices.
    static func next(_ type: String, _ messages: inout Messages) async throws -> [String: Any] {
        while let message = try await messages.next() {
            let object = LiveEventsAPITests.json(message)
            if object["type"] as? String == type || object["type"] as? String == "error" { return object }
        }
        return [:]
    }

    /// Authenticates and returns the socket's messages after `ready`.
    static func ready(_ token: String, _ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter) async throws -> Messages {
        var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
        try await outbound.write(.text(#"{"type":"auth","token":"\#(token)"}"#))
        #expect(LiveEventsAPITests.json(try await messages.next())["type"] as? String == "ready")
        return messages
    }

    static func subscribe(_ project: UUID, _ outbound: WebSocketOutboundWriter, _ messages: inout Messages) async throws -> [String: Any] {
        try await outbound.write(.text(#"{"type":"subscribe","project":"\#(project)"}"#))
        return try await next("subscribed", &messages)
    }

    /// `count` projects in a new organization that `owner` owns.
    static func projects(_ count: Int, of owner: User, _ harness: APIHarness) async throws -> [UUID] {
        let organization = try await OrganizationStore(client: harness.database, logger: harness.logger).create(
            name: "Acme", owner: owner.id)
        let projects = ProjectStore(client: harness.database, logger: harness.logger)
        var made: [UUID] = []
        for index in 0..<count {
            made.append(try await projects.create(organization: organization.id, name: "project \(index)", actor: owner.id).id)
        }
        return made
    }

    /// Subscribing and unsubscribing while the recheck is under way (it checks dozens of
    /// projects, over and over) is never undone by it.
    @Test func subscriptionsChangedDuringARecheckStayChanged() async throws {
        try await APIHarness.with("api_live_race", configure: { $0.liveRecheckInterval = .milliseconds(1) }) { harness, client in
            let (owner, token) = try await harness.signedIn("Owner", client: client)
            let made = try await Self.projects(33, of: owner, harness)
            let ballast = Array(made[..<30])
            let targets = Array(made[30...])
            let tasks = TaskStore(client: harness.database, logger: harness.logger)
            let marker = ballast[0]

            _ = try await client.ws("/ws") { inbound, outbound, _ in
                var messages = try await Self.ready(token, inbound, outbound)
                for project in ballast {
                    #expect(try await Self.subscribe(project, outbound, &messages)["type"] as? String == "subscribed")
                }
                /// Creates a task in `project` and then one in the marker project; returns the
                /// projects of the tasks the socket was told about up to the marker's.
                func announced(_ project: UUID) async throws -> [String] {
                    _ = try await tasks.create(project: project, name: "t-\(UUID())", script: "true", actor: owner.id)
                    _ = try await tasks.create(project: marker, name: "t-\(UUID())", script: "true", actor: owner.id)
                    var seen: [String] = []
                    while true {
                        let activity = try await Self.next("changed", &messages)["activity"] as? [String: Any]
                        guard activity?["name"] as? String == "task.created", let id = activity?["project_id"] as? String else { continue }
                        if id == marker.uuidString.lowercased() { return seen }
                        seen.append(id)
                    }
                }
                for (index, target) in targets.enumerated() {
                    #expect(try await Self.subscribe(target, outbound, &messages)["type"] as? String == "subscribed")
                    try await Task.sleep(for: .milliseconds(300))  // several rechecks
                    #expect(try await announced(target) == [target.uuidString.lowercased()], "subscription \(index) kept")

                    let dropped = ballast[index + 1]
                    try await outbound.write(.text(#"{"type":"unsubscribe","project":"\#(dropped)"}"#))
                    #expect(try await Self.next("unsubscribed", &messages)["type"] as? String == "unsubscribed")
                    try await Task.sleep(for: .milliseconds(300))
                    #expect(try await announced(dropped) == [], "unsubscription \(index) kept")
                }
                try await outbound.close(.normalClosure, reason: nil)
            }
        }
    }

    /// A socket may hold `liveSubscriptionLimit` subscriptions; one more is refused (429),
    /// until one is dropped. Subscribing again to what it follows costs nothing.
    @Test func aSocketHoldsAtMostItsSubscriptionLimit() async throws {
        try await APIHarness.with("api_live_subs", configure: { $0.liveSubscriptionLimit = 2 }) { harness, client in
            let (owner, token) = try await harness.signedIn("Owner", client: client)
            let ids = try await Self.projects(3, of: owner, harness)

            _ = try await client.ws("/ws") { inbound, outbound, _ in
                var messages = try await Self.ready(token, inbound, outbound)
                #expect(try await Self.subscribe(ids[0], outbound, &messages)["type"] as? String == "subscribed")
                #expect(try await Self.subscribe(ids[1], outbound, &messages)["type"] as? String == "subscribed")
                #expect(try await Self.subscribe(ids[1], outbound, &messages)["type"] as? String == "subscribed")
                let refused = try await Self.subscribe(ids[2], outbound, &messages)
                #expect(refused["type"] as? String == "error" && refused["status"] as? Int == 429, "\(refused)")
                #expect((refused["detail"] as? String)?.contains("2 subscriptions") == true, "\(refused)")

                try await outbound.write(.text(#"{"type":"unsubscribe","project":"\#(ids[0])"}"#))
                #expect(try await Self.next("unsubscribed", &messages)["type"] as? String == "unsubscribed")
                #expect(try await Self.subscribe(ids[2], outbound, &messages)["type"] as? String == "subscribed")
                try await outbound.close(.normalClosure, reason: nil)
            }
        }
    }

    /// A session may have `liveConnectionsPerSession` sockets open; one more is closed with
    /// 4029, and a socket closed frees its place.
    @Test func aSessionHoldsAtMostItsConnectionLimit() async throws {
        try await APIHarness.with("api_live_sockets", configure: { $0.liveConnectionsPerSession = 2 }) { harness, client in
            let (_, token) = try await harness.signedIn("Owner", client: client)
            let release = NIOLockedValueBox(false)
            let (opened, openedContinuation) = AsyncStream.makeStream(of: Void.self)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        _ = try await client.ws("/ws") { inbound, outbound, _ in
                            _ = try await Self.ready(token, inbound, outbound)
                            openedContinuation.yield()
                            while !release.withLockedValue({ $0 }) { try await Task.sleep(for: .milliseconds(20)) }
                            try await outbound.close(.normalClosure, reason: nil)
                        }
                    }
                }
                var iterator = opened.makeAsyncIterator()
                for _ in 0..<2 { await iterator.next() }

                let refused = try await client.ws("/ws") { inbound, outbound, _ in
                    var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                    try await outbound.write(.text(#"{"type":"auth","token":"\#(token)"}"#))
                    if let message = try await messages.next() {
                        Issue.record("a socket beyond the limit was let in: \(LiveEventsAPITests.json(message))")
                        try await outbound.close(.normalClosure, reason: nil)
                    }
                }
                #expect(refused?.closeCode == WebSocketErrorCode(codeNumber: 4029))
                #expect(refused?.reason?.contains("2 live connections") == true, "\(String(describing: refused?.reason))")

                release.withLockedValue { $0 = true }
                try await group.waitForAll()
            }
            _ = try await client.ws("/ws") { inbound, outbound, _ in
                _ = try await Self.ready(token, inbound, outbound)
                try await outbound.close(.normalClosure, reason: nil)
            }
        }
    }

    /// Sockets following operation logs share one blocking Redis reader, whatever their number,
    /// and each still gets its own operations' lines.
    @Test func operationLogsOfManySocketsShareOneRedisReader() async throws {
        try await RedisServerProcess.withServer { server in
            try await TestDatabase.withDatabase("api_live_reader") { database, databaseConfiguration in
                let logger = TestRedis.logger("harrow.test.api")
                try await Migrator(client: database, logger: logger).migrate()
                let redis = RedisClient(configuration: server.configuration(), logger: logger)
                let key = SecretKeyring.Key.generate()
                let harness = APIHarness(
                    database: database, redis: redis, keyring: SecretKeyring(current: key),
                    configuration: APIConfiguration(bcryptCost: 4), logger: logger, databaseURL: "", secretKey: key)
                let app = buildApplication(
                    harness.configuration,
                    dependencies: APIDependencies(database: database, redis: redis, keyring: harness.keyring), logger: logger)
                try await app.test(.live) { client in
                    try await Self.followLogs(harness, client, sockets: 3)
                }
                await redis.close()
            }
        }
    }

    private static func followLogs(_ harness: APIHarness, _ client: any TestClientProtocol, sockets: Int) async throws {
        let (base, job, token) = try await AutomationAPITests.project(harness, client)
        let log = OperationLog(redis: harness.redis, keyPrefix: harness.configuration.keyPrefix)
        var operations: [UUID] = []
        for index in 0..<sockets {
            let run = try await client.send(.post, "\(base)/jobs/\(job)/operations", token: token)
            let operation = try #require(UUID(uuidString: try run.json()["id"] as? String ?? ""))
            try await log.append([("stdout", "first \(index)")], to: operation)
            operations.append(operation)
        }
        let following = NIOLockedValueBox(0)
        let texts = NIOLockedValueBox([Int: [String]]())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, operation) in operations.enumerated() {
                group.addTask {
                    _ = try await client.ws("/ws") { inbound, outbound, _ in
                        var messages = try await Self.ready(token, inbound, outbound)
                        try await outbound.write(.text(#"{"type":"subscribe","operation":"\#(operation)"}"#))
                        var counted = false
                        while let message = try await messages.next() {
                            let object = LiveEventsAPITests.json(message)
                            guard object["type"] as? String == "log" else { continue }
                            let lines = (object["lines"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
                            texts.withLockedValue { $0[index, default: []] += lines }
                            if !counted {
                                counted = true
                                following.withLockedValue { $0 += 1 }
                            }
                            if object["finished"] as? Bool == true { break }
                        }
                        try await outbound.close(.normalClosure, reason: nil)
                    }
                }
            }
            try await eventually("every socket following its log", timeout: .seconds(20)) { following.withLockedValue { $0 } == sockets }
            try await eventually("one blocking reader", timeout: .seconds(10)) {
                let clients = try await harness.redis.send("CLIENT", ["LIST"]).string ?? ""
                return clients.split(separator: "\n").filter { $0.contains(" cmd=xread ") }.count == 1
            }
            for (index, operation) in operations.enumerated() {
                try await log.append([("stdout", "live \(index)")], to: operation)
                try await log.finish(operation)
            }
            try await group.waitForAll()
        }
        for index in 0..<sockets {
            #expect(texts.withLockedValue { $0[index] } == ["first \(index)", "live \(index)"])
        }
    }

    /// The database cannot answer the rechecks (here: the sessions table is away): after a few
    /// in a row the socket ends rather than go on unchecked.
    @Test func rechecksTheDatabaseCannotAnswerEndTheSocket() async throws {
        try await APIHarness.with("api_live_fail_closed", configure: { $0.liveRecheckInterval = .milliseconds(200) }) {
            harness, client in
            let (_, token) = try await harness.signedIn("Watcher", client: client)
            let close = try await client.ws("/ws") { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                try await outbound.write(.text(#"{"type":"auth","token":"\#(token)"}"#))
                #expect(LiveEventsAPITests.json(try await messages.next())["type"] as? String == "ready")
                try await harness.database.query("ALTER TABLE sessions RENAME TO sessions_away")
                // Should the server never end it, the test does, with a code the check refuses.
                let deadline = Task {
                    try await Task.sleep(for: .seconds(30))
                    try await outbound.close(.normalClosure, reason: "the test's deadline")
                }
                while try await messages.next() != nil {}
                deadline.cancel()
                try await harness.database.query("ALTER TABLE sessions_away RENAME TO sessions")
            }
            #expect(close?.closeCode == .unexpectedServerError, "\(String(describing: close))")
        }
    }
}
