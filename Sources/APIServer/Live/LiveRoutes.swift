import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOConcurrencyHelpers
import NIOWebSocket
import OperationLogs
import Queue
import Store

/// `GET /ws`: live events for the web app. A browser cannot set headers on a WebSocket, so the
/// client authenticates with its first message, `{"type":"auth","token":"<bearer token>"}`
/// (or an `Authorization: Bearer` header). Then it subscribes:
/// `{"type":"subscribe","project":"<id>"}` or `{"type":"subscribe","operation":"<id>"}` (and
/// `unsubscribe` alike), each checked against the caller's role (`read`) when made and again
/// every recheck interval. The server sends `{"type":"changed","activity":{"id","name",
/// "project_id","operation_id"}}` for what the subscriptions cover. A revoked or expired
/// session is disconnected (close code 4001).
struct LiveRoutes: Sendable {
    let feed: ActivityFeed
    let sessions: SessionStore
    let operations: OperationStore
    let log: OperationLog
    let access: Access
    let recheckInterval: Duration

    /// Close codes: 4001 the session is not (or no longer) valid, 4000 a protocol error.
    static let sessionEnded = WebSocketErrorCode(codeNumber: 4001)
    static let protocolError = WebSocketErrorCode(codeNumber: 4000)

    struct ClientMessage: Decodable {
        var type: String
        var token: String?
        var project: UUID?
        var operation: UUID?
    }

    /// What a connection follows: projects, and operations with their projects.
    struct Subscriptions: Sendable {
        var projects: Set<UUID> = []
        var operations: [UUID: UUID] = [:]

        func covers(_ notice: ActivityNotice) -> Bool {
            if let project = notice.projectID, projects.contains(project) { return true }
            if let operation = notice.operationID, operations[operation] != nil { return true }
            return false
        }
    }

    func addRoutes(to router: Router<LiveContext>) {
        router.ws("ws") { inbound, outbound, context in
            var messages = inbound.messages(maxSize: 16 * 1024).makeAsyncIterator()
            let identified = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await Task.sleep(for: .seconds(10))
                    try await outbound.close(Self.sessionEnded, reason: "authenticate within 10 s")
                }
                defer { group.cancelAll() }
                return try await authenticate(context.request, &messages)
            }
            guard let (caller, tokenHash) = identified else {
                try await outbound.close(Self.sessionEnded, reason: "authenticate first with a valid token")
                return
            }
            let logger = context.logger
            try await send(["type": "ready", "user_id": caller.user.id.uuidString.lowercased()], outbound)
            let subscriptions = NIOLockedValueBox(Subscriptions())
            let (feedID, notices) = feed.subscribe()
            defer { feed.unsubscribe(feedID) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await notice in notices where subscriptions.withLockedValue({ $0.covers(notice) }) {
                        var activity: [String: Any] = ["id": notice.id, "name": notice.name]
                        activity["project_id"] = notice.projectID?.uuidString.lowercased()
                        activity["operation_id"] = notice.operationID?.uuidString.lowercased()
                        try await send(["type": "changed", "activity": activity], outbound)
                    }
                }
                group.addTask { try await followLogs(subscriptions, outbound) }
                group.addTask {
                    // The session and every subscription are checked again, so a revoked
                    // session or a lost membership ends what it allowed.
                    while true {
                        try await Task.sleep(for: recheckInterval)
                        guard let (_, user) = try await sessions.find(tokenHash: tokenHash) else {
                            try await outbound.close(Self.sessionEnded, reason: "the session ended")
                            return
                        }
                        let current = Caller(user: user, sessionID: caller.sessionID)
                        let followed = subscriptions.withLockedValue { $0 }
                        var kept = Subscriptions()
                        for project in followed.projects where (try? await access.require(.read, project: project, caller: current)) != nil
                        {
                            kept.projects.insert(project)
                        }
                        for (operation, project) in followed.operations
                        where (try? await access.require(.read, project: project, caller: current)) != nil {
                            kept.operations[operation] = project
                        }
                        subscriptions.withLockedValue { $0 = kept }
                    }
                }
                while let message = try await messages.next() {
                    guard case .text(let text) = message, let request = try? JSONDecoder().decode(ClientMessage.self, from: Data(text.utf8))
                    else {
                        try await send(["type": "error", "detail": "send JSON text messages"], outbound)
                        continue
                    }
                    try await handle(request, caller: caller, subscriptions: subscriptions, outbound: outbound, logger: logger)
                }
                group.cancelAll()
            }
        }
    }

    /// Sends the log lines of subscribed operations as they are written, from the start:
    /// `{"type":"log","operation","lines":[{"id","stream","text","t"}],"finished"}`.
    private func followLogs(_ subscriptions: NIOLockedValueBox<Subscriptions>, _ outbound: WebSocketOutboundWriter) async throws {
        var cursors: [UUID: String] = [:]
        var finished: Set<UUID> = []
        var connection: RedisConnection?
        defer { connection?.closeNow() }
        while !Task.isCancelled {
            let followed = Set(subscriptions.withLockedValue { $0.operations.keys }).subtracting(finished)
            cursors = cursors.filter { followed.contains($0.key) }
            for operation in followed where cursors[operation] == nil { cursors[operation] = "0" }
            if cursors.isEmpty {
                try await Task.sleep(for: .milliseconds(250))
                continue
            }
            let active: RedisConnection
            if let existing = connection, existing.isActive {
                active = existing
            } else {
                active = try await log.redis.makeDedicatedConnection()
                connection = active
            }
            // Short blocks, so a new subscription is picked up soon.
            let chunks = try await log.follow(cursors, block: .milliseconds(500), connection: active)
            for (operation, chunk) in chunks {
                cursors[operation] = chunk.next
                if chunk.finished { finished.insert(operation) }
                let lines = chunk.lines.map { ["id": $0.id, "stream": $0.stream, "text": $0.text, "t": $0.t] as [String: Any] }
                try await send(
                    ["type": "log", "operation": operation.uuidString.lowercased(), "lines": lines, "finished": chunk.finished], outbound)
            }
        }
    }

    private func handle(
        _ request: ClientMessage, caller: Caller, subscriptions: NIOLockedValueBox<Subscriptions>, outbound: WebSocketOutboundWriter,
        logger: Logger
    ) async throws {
        let subscribe = request.type == "subscribe"
        guard subscribe || request.type == "unsubscribe" else {
            try await send(["type": "error", "detail": "unknown message type \(request.type.prefix(40))"], outbound)
            return
        }
        do {
            if let project = request.project {
                if subscribe { try await access.require(.read, project: project, caller: caller) }
                subscriptions.withLockedValue { state in
                    if subscribe { state.projects.insert(project) } else { state.projects.remove(project) }
                }
                try await send(["type": subscribe ? "subscribed" : "unsubscribed", "project": project.uuidString.lowercased()], outbound)
            } else if let operation = request.operation {
                if subscribe {
                    let project = try await operations.find(operation).projectID
                    try await access.require(.read, project: project, caller: caller)
                    subscriptions.withLockedValue { $0.operations[operation] = project }
                } else {
                    subscriptions.withLockedValue { _ = $0.operations.removeValue(forKey: operation) }
                }
                try await send(
                    ["type": subscribe ? "subscribed" : "unsubscribed", "operation": operation.uuidString.lowercased()], outbound)
            } else {
                try await send(["type": "error", "detail": "name a project or an operation"], outbound)
            }
        } catch let problem as Problem {
            try await send(["type": "error", "status": problem.status, "detail": problem.detail], outbound)
        } catch let error as StoreError where error.code == .notFound {
            try await send(["type": "error", "status": 404, "detail": error.message], outbound)
        }
    }

    /// The caller, from the `Authorization` header or the first message (within 10 s).
    private func authenticate(
        _ request: Request, _ messages: inout WebSocketInboundMessageStream.AsyncIterator
    ) async throws -> (Caller, [UInt8])? {
        var token: String?
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            token = String(header.dropFirst("bearer ".count))
        } else if case .text(let text)? = try await messages.next(),
            let message = try? JSONDecoder().decode(ClientMessage.self, from: Data(text.utf8)), message.type == "auth"
        {
            token = message.token
        }
        guard let token, !token.isEmpty, token.count <= 200 else { return nil }
        let hash = SessionStore.tokenHash(token)
        guard let (session, user) = try await sessions.find(tokenHash: hash) else { return nil }
        return (Caller(user: user, sessionID: session.id), hash)
    }

    private func send(_ object: [String: Any], _ outbound: WebSocketOutboundWriter) async throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        try await outbound.write(.text(String(decoding: data, as: UTF8.self)))
    }
}
