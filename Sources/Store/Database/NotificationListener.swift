import Logging
import PostgresNIO

/// Follows a Postgres notification channel (`LISTEN`) on a connection of its own until its task
/// is cancelled, reconnecting with backoff after a lost connection. Notifications sent while it
/// reconnects are lost: a listener's owner covers them another way (the outbox relay sweeps,
/// the activity feed's clients reload).
public struct NotificationListener: Sendable {
    public let client: PostgresClient
    public let channel: String
    let logger: Logger

    public init(client: PostgresClient, channel: String, logger: Logger) {
        self.client = client
        self.channel = channel
        self.logger = logger
    }

    /// Calls `handle` with every notification, and the connection it came on (for queries that
    /// must see what the notifying transaction committed). An error `handle` throws ends that
    /// connection's turn like a lost connection.
    public func run(_ handle: (_ notification: PostgresNotification, _ connection: PostgresConnection) async throws -> Void) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: channel) { notifications in
                        for try await notification in notifications {
                            failures = 0
                            try await handle(notification, connection)
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                failures += 1
                if failures == 1 {
                    logger.warning(
                        "lost the connection listening for notifications; reconnecting",
                        metadata: ["channel": "\(channel)", "error": "\(error)"])
                }
            }
            // 200 ms doubling to 5 s while the database is away.
            try? await Task.sleep(for: .milliseconds(min(5000, 100 << min(failures, 6))))
        }
    }
}
