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
/// session is disconnected (close code 4001). A socket holds at most `subscriptionLimit`
/// subscriptions (more are refused with an error of status 429), and a session at most
/// `connections.limit` sockets (more are closed with 4029).
struct LiveRoutes: Sendable {
    let feed: ActivityFeed
    let sessions: SessionStore
    let operations: OperationStore
    let log: OperationLog
    let logs: OperationLogHub
    let access: Access
    let connections: LiveConnections
    let subscriptionLimit: Int
    let recheckInterval: Duration
    /// The web app's session cookie, for its sockets.
    let cookie: SessionCookie

    /// Close codes: 4001 the session is not (or no longer) valid, 4000 a protocol error, 4029
    /// the session has as many sockets open as it may.
    static let sessionEnded = WebSocketErrorCode(codeNumber: 4001)
    static let protocolError = WebSocketErrorCode(codeNumber: 4000)
    static let tooManyConnections = WebSocketErrorCode(codeNumber: 4029)

    struct ClientMessage: Decodable {
        var type: String
        var token: String?
        var project: UUID?
        var operation: UUID?
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
            guard connections.open(caller.sessionID) else {
                try await outbound.close(
                    Self.tooManyConnections,
                    reason: "this session has \(connections.limit) live connections open already, the most it may")
                return
            }
            defer { connections.close(caller.sessionID) }
            let logger = context.logger
            try await send(["type": "ready", "user_id": caller.user.id.uuidString.lowercased()], outbound)
            let watcher = logs.register()
            defer { logs.unregister(watcher) }
            let subscriptions = LiveSubscriptions(limit: subscriptionLimit) { watcher.wake() }
            let (feedID, notices) = feed.subscribe()
            defer { feed.unsubscribe(feedID) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await notice in notices where subscriptions.covers(notice) {
                        var activity: [String: Any] = ["id": notice.id, "name": notice.name]
                        activity["project_id"] = notice.projectID?.uuidString.lowercased()
                        activity["operation_id"] = notice.operationID?.uuidString.lowercased()
                        try await send(["type": "changed", "activity": activity], outbound)
                    }
                }
                group.addTask { try await sendLogs(subscriptions, watcher, outbound) }
                group.addTask {
                    // The session and every subscription are checked again, so a revoked
                    // session or a lost membership ends what it allowed. Checks the database
                    // could not answer fail closed: a few in a row end the socket (the client
                    // connects again), or a user removed during an outage would keep reading.
                    var unanswered = 0
                    while true {
                        try await Task.sleep(for: recheckInterval)
                        do {
                            guard let (_, user) = try await sessions.find(tokenHash: tokenHash) else {
                                try await outbound.close(Self.sessionEnded, reason: "the session ended")
                                return
                            }
                            let answered = try await recheck(
                                subscriptions, caller: Caller(user: user, sessionID: caller.sessionID), logger: logger)
                            unanswered = answered ? 0 : unanswered + 1
                        } catch is CancellationError {
                            throw CancellationError()
                        } catch {
                            logger.warning("could not recheck a live session", metadata: ["error": "\(error)"])
                            unanswered += 1
                        }
                        if unanswered >= Self.uncheckedRechecksAllowed {
                            try await outbound.close(.unexpectedServerError, reason: "the session could not be checked")
                            return
                        }
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

    /// How many rechecks in a row the database may leave unanswered before the socket ends.
    static let uncheckedRechecksAllowed = 3

    /// Drops the subscriptions the caller may no longer read. Only those: the check awaits
    /// the database, and what the client subscribed or dropped meanwhile is its own to keep.
    /// Returns whether every check was answered (a subscription whose check was not is kept
    /// until one is).
    private func recheck(_ subscriptions: LiveSubscriptions, caller: Caller, logger: Logger) async throws -> Bool {
        var answered = true
        var readable: [UUID: Bool] = [:]
        var lost: [LiveSubscriptions.Target: LiveSubscriptions.Entry] = [:]
        for (target, entry) in subscriptions.snapshot() {
            if readable[entry.project] == nil {
                do {
                    try await access.require(.read, project: entry.project, caller: caller)
                    readable[entry.project] = true
                } catch is Problem {
                    readable[entry.project] = false
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    // The database did not answer: keep it until a check says otherwise.
                    logger.warning("could not recheck a live subscription", metadata: ["error": "\(error)"])
                    readable[entry.project] = true
                    answered = false
                }
            }
            if readable[entry.project] == false { lost[target] = entry }
        }
        subscriptions.drop(lost)
        return answered
    }

    /// Sends the log lines of subscribed operations as they are written, from the start:
    /// `{"type":"log","operation","lines":[{"id","stream","text","t"}],"finished"}`. It reads
    /// what a newly subscribed operation holds at once, and then whenever the hub says the
    /// operation moved, from this socket's cursor; a subscription made again starts over. It
    /// alone tells the hub what this socket follows, so the hub never gets an older set after a
    /// newer one.
    private func sendLogs(
        _ subscriptions: LiveSubscriptions, _ watcher: OperationLogHub.Watcher, _ outbound: WebSocketOutboundWriter
    ) async throws {
        struct Cursor {
            var generation: UInt64
            var after = "0"
            var finished = false
        }
        let page = 1000
        var cursors: [UUID: Cursor] = [:]
        for await _ in watcher.wakeups {
            let followed = subscriptions.operations
            var changed = watcher.takeChanged()
            cursors = cursors.filter { followed[$0.key] == $0.value.generation }
            for (operation, generation) in followed where cursors[operation] == nil {
                cursors[operation] = Cursor(generation: generation)
                changed.insert(operation)
            }
            for operation in changed {
                while var cursor = cursors[operation], !cursor.finished {
                    let chunk = try await log.read(operation, after: cursor.after, limit: page)
                    guard chunk.next != cursor.after else { break }
                    cursor.after = chunk.next
                    cursor.finished = chunk.finished
                    cursors[operation] = cursor
                    let lines = chunk.lines.map { ["id": $0.id, "stream": $0.stream, "text": $0.text, "t": $0.t] as [String: Any] }
                    try await send(
                        ["type": "log", "operation": operation.uuidString.lowercased(), "lines": lines, "finished": chunk.finished],
                        outbound)
                }
            }
            // A finished log has nothing more to wait for.
            logs.follow(watcher, operations: Set(cursors.filter { !$0.value.finished }.keys))
        }
    }

    private func handle(
        _ request: ClientMessage, caller: Caller, subscriptions: LiveSubscriptions, outbound: WebSocketOutboundWriter,
        logger: Logger
    ) async throws {
        let subscribe = request.type == "subscribe"
        guard subscribe || request.type == "unsubscribe" else {
            try await send(["type": "error", "detail": "unknown message type \(request.type.prefix(40))"], outbound)
            return
        }
        let target: LiveSubscriptions.Target
        let field: String
        if let project = request.project {
            (target, field) = (.project(project), "project")
        } else if let operation = request.operation {
            (target, field) = (.operation(operation), "operation")
        } else {
            try await send(["type": "error", "detail": "name a project or an operation"], outbound)
            return
        }
        let id: UUID
        switch target {
        case .project(let project): id = project
        case .operation(let operation): id = operation
        }
        guard subscribe else {
            subscriptions.remove(target)
            try await send(["type": "unsubscribed", field: id.uuidString.lowercased()], outbound)
            return
        }
        guard subscriptions.hasRoom(for: target) else {
            try await send(
                [
                    "type": "error", "status": 429, field: id.uuidString.lowercased(),
                    "detail": "this connection has \(subscriptions.limit) subscriptions, the most it may hold: unsubscribe from one first",
                ], outbound)
            return
        }
        do {
            let project: UUID
            switch target {
            case .project(let id): project = id
            case .operation(let id): project = try await operations.find(id).projectID
            }
            try await access.require(.read, project: project, caller: caller)
            // Acknowledged before it takes effect, so that the operation's log comes after
            // `subscribed`. Only the recheck runs beside this, and it only removes: there is room.
            try await send(["type": "subscribed", field: id.uuidString.lowercased()], outbound)
            subscriptions.add(target, project: project)
        } catch let problem as Problem {
            try await send(["type": "error", "status": problem.status, "detail": problem.detail], outbound)
        } catch let error as StoreError where error.code == .notFound {
            try await send(["type": "error", "status": 404, "detail": error.message], outbound)
        }
    }
    /// The caller, from the `Authorization` header, the session cookie (from this server's own
    /// pages), or the first message (within 10 s).
    private func authenticate(
        _ request: Request, _ messages: inout WebSocketInboundMessageStream.AsyncIterator
    ) async throws -> (Caller, [UInt8])? {
        var token: String?
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            token = String(header.dropFirst("bearer ".count))
        } else if let cookieToken = cookie.token(in: request.headers), cookie.comesFromOwnPages(request.head) {
            // The web app's socket: its session cookie, from its own pages only.
            token = cookieToken
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
