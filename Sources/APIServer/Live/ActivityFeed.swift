import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO
import ServiceLifecycle
import Store

/// One activity as the feed announces it: what changed, in which project, and for operation
/// activities, which operation.
struct ActivityNotice: Sendable, Hashable {
    var id: Int64
    var name: String
    var projectID: UUID?
    var operationID: UUID?
}

/// Follows `NOTIFY harrow_activities` on one Postgres connection and hands every activity to
/// each subscriber (the WebSocket connections). Reconnects after a lost connection; a
/// subscriber that falls behind loses its oldest notices rather than hold the others up.
final class ActivityFeed: Service, Sendable {
    static let channel = "harrow_activities"

    private let database: PostgresClient
    private let logger: Logger
    private let subscribers = NIOLockedValueBox([UUID: AsyncStream<ActivityNotice>.Continuation]())

    init(database: PostgresClient, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// A stream of every activity from now on; call ``unsubscribe(_:)`` with the id when done.
    func subscribe() -> (id: UUID, notices: AsyncStream<ActivityNotice>) {
        let (stream, continuation) = AsyncStream.makeStream(of: ActivityNotice.self, bufferingPolicy: .bufferingNewest(256))
        let id = UUID()
        subscribers.withLockedValue { $0[id] = continuation }
        return (id, stream)
    }

    func unsubscribe(_ id: UUID) {
        subscribers.withLockedValue { $0.removeValue(forKey: id) }?.finish()
    }

    func run() async throws {
        // Listening is all it does: on graceful shutdown it simply stops.
        await cancelWhenGracefulShutdown { await self.listen() }
        let continuations = subscribers.withLockedValue { state in
            defer { state.removeAll() }
            return Array(state.values)
        }
        for continuation in continuations { continuation.finish() }
    }

    private func listen() async {
        await NotificationListener(client: database, channel: Self.channel, logger: logger).run { notification, connection in
            if let notice = try await notice(from: notification.payload, on: connection) { publish(notice) }
        }
    }

    private func publish(_ notice: ActivityNotice) {
        for continuation in subscribers.withLockedValue({ Array($0.values) }) { continuation.yield(notice) }
    }

    /// The notice of a notification's payload (`{"id", "name", "project_id"}`); for operation
    /// activities, the operation's id is read from the activity row.
    private func notice(from payload: String, on connection: PostgresConnection) async throws -> ActivityNotice? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) as? [String: Any],
            let id = (object["id"] as? NSNumber)?.int64Value, let name = object["name"] as? String
        else { return nil }
        var notice = ActivityNotice(
            id: id, name: name, projectID: (object["project_id"] as? String).flatMap(UUID.init(uuidString:)), operationID: nil)
        if name.hasPrefix("operation.") {
            let rows = try await connection.query("SELECT payload->>'operation_id' FROM activities WHERE id = \(id)", logger: logger)
            for try await operation in rows.decode(String?.self) { notice.operationID = operation.flatMap(UUID.init(uuidString:)) }
        }
        return notice
    }
}
