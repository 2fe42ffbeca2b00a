import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import HummingbirdWSTesting
import HummingbirdWebSocket
import NIOConcurrencyHelpers
import NIOWebSocket
import OperationLogs
import Store
import Testing

@testable import APIServer

/// `GET /ws` against a live server.
@Suite struct LiveEventsAPITests {
    static func json(_ message: WebSocketMessage?) -> [String: Any] {
        guard case .text(let text)? = message else { return [:] }
        return (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    @Test func subscribersSeeChangesOfWhatTheyMayReadUntilTheirSessionEnds() async throws {
        try await APIHarness.with("api_live", configure: { $0.liveRecheckInterval = .milliseconds(300) }) { harness, client in
            let (owner, token) = try await harness.signedIn("Owner", client: client)
            let (stranger, _) = try await harness.signedIn("Stranger", client: client)
            let organizations = OrganizationStore(client: harness.database, logger: harness.logger)
            let projects = ProjectStore(client: harness.database, logger: harness.logger)
            let mine = try await projects.create(
                organization: try await organizations.create(name: "Mine", owner: owner.id).id, name: "Web", actor: owner.id)
            let theirs = try await projects.create(
                organization: try await organizations.create(name: "Theirs", owner: stranger.id).id, name: "Other", actor: stranger.id)
            let tasks = TaskStore(client: harness.database, logger: harness.logger)
            let sessions = SessionStore(client: harness.database, logger: harness.logger)

            let received = NIOLockedValueBox([String]())
            let close = try await client.ws("/ws") { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                try await outbound.write(.text(#"{"type":"auth","token":"\#(token)"}"#))
                #expect(Self.json(try await messages.next())["type"] as? String == "ready")
                try await outbound.write(.text(#"{"type":"subscribe","project":"\#(mine.id)"}"#))
                #expect(Self.json(try await messages.next())["type"] as? String == "subscribed")
                try await outbound.write(.text(#"{"type":"subscribe","project":"\#(theirs.id)"}"#))
                let refused = Self.json(try await messages.next())
                #expect(refused["type"] as? String == "error" && refused["status"] as? Int == 404)

                // A change in the other project is not sent; one in mine is.
                _ = try await tasks.create(project: theirs.id, name: "hidden", script: "true", actor: stranger.id)
                _ = try await tasks.create(project: mine.id, name: "build", script: "make", actor: owner.id)
                // The project's own `project.created`, made before the subscription, may still be
                // on its way when a loaded machine delivers its notification late: passed over.
                var changed = Self.json(try await messages.next())
                while (changed["activity"] as? [String: Any])?["name"] as? String == "project.created" {
                    changed = Self.json(try await messages.next())
                }
                #expect(changed["type"] as? String == "changed")
                let activity = changed["activity"] as? [String: Any]
                #expect(activity?["name"] as? String == "task.created")
                #expect(activity?["project_id"] as? String == mine.id.uuidString.lowercased())

                // Revoking the session ends the connection.
                _ = try await sessions.revokeAll(of: owner.id)
                while let message = try await messages.next() {
                    let name = (Self.json(message)["activity"] as? [String: Any])?["name"] as? String ?? ""
                    received.withLockedValue { $0.append(name) }
                }
            }
            #expect(close?.closeCode == WebSocketErrorCode(codeNumber: 4001))
            #expect(!received.withLockedValue { $0 }.contains("task.created"), "the hidden project's task was never sent")
        }
    }

    @Test func aBadTokenIsClosedWith4001() async throws {
        try await APIHarness.with("api_live_auth") { _, client in
            let close = try await client.ws("/ws") { inbound, outbound, _ in
                try await outbound.write(.text(#"{"type":"auth","token":"not-a-token"}"#))
                for try await _ in inbound {}
            }
            #expect(close?.closeCode == WebSocketErrorCode(codeNumber: 4001))
        }
    }

    /// An operation's log: read in pages over HTTP, and followed live over the WebSocket.
    @Test func operationLogsArePagedAndFollowed() async throws {
        try await APIHarness.with("api_live_log") { harness, client in
            let (base, job, token) = try await AutomationAPITests.project(harness, client)
            let run = try await client.send(.post, "\(base)/jobs/\(job)/operations", token: token)
            let operation = try #require(UUID(uuidString: try run.json()["id"] as? String ?? ""))
            let log = OperationLog(redis: harness.redis, keyPrefix: harness.configuration.keyPrefix)
            try await log.append([("stdout", "line 1"), ("stderr", "line 2")], to: operation)

            let page = try await client.send(.get, "\(base)/operations/\(operation)/log?limit=1", token: token)
            #expect(page.status == .ok, "\(String(buffer: page.body))")
            let lines = try #require(try page.json()["lines"] as? [[String: Any]])
            #expect(lines.map { $0["text"] as? String } == ["line 1"])
            let next = try #require(try page.json()["next"] as? String)
            let rest = try await client.send(.get, "\(base)/operations/\(operation)/log?after=\(next)", token: token)
            #expect((try rest.json()["lines"] as? [[String: Any]])?.map { $0["stream"] as? String } == ["stderr"])
            #expect(try rest.json()["finished"] as? Bool == false)

            _ = try await client.ws("/ws") { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                try await outbound.write(.text(#"{"type":"auth","token":"\#(token)"}"#))
                #expect(Self.json(try await messages.next())["type"] as? String == "ready")
                try await outbound.write(.text(#"{"type":"subscribe","operation":"\#(operation)"}"#))
                #expect(Self.json(try await messages.next())["type"] as? String == "subscribed")
                var texts: [String] = []
                var finished = false
                try await log.append([("stdout", "line 3")], to: operation)
                try await log.finish(operation)
                while !finished, let message = try await messages.next() {
                    let object = Self.json(message)
                    guard object["type"] as? String == "log" else { continue }
                    texts += (object["lines"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
                    finished = object["finished"] as? Bool ?? false
                }
                #expect(texts == ["line 1", "line 2", "line 3"])
                try await outbound.close(.normalClosure, reason: nil)
            }
            try await TestRedis.deleteKeys(prefix: harness.configuration.keyPrefix, on: harness.redis)
        }
    }
}
