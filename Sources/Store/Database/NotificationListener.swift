import Logging
import PostgresNIO

/// Follows a Postgres notification channel (`LISTEN`) on a connection of its own until its task
/// is cancelled, reconnecting with backoff after a lost connection. Notifications sent while it
/// reconnects are lost: an owner that must not miss work covers them another way (the outbox
/// relay sweeps).
public struct NotificationListener: Sendable {
    /// The database; the listener holds one of its connections while it runs.
    public let client: PostgresClient
    /// The channel to `LISTEN` on.
    public let channel: String
    let logger: Logger

    public init(client: PostgresClient, channel: String, logger: Logger) {
        self.client = client
        self.channel = channel
        self.logger = logger
    }

    /// Calls `handle` with every notification, and the connection it came on (for queries that
    /// must see what the notifying transaction committed). An error `handle` throws ends that
    /// connection's turn like a lost connection. `onListening` runs each time it listens again
    /// after (re)connecting: notifications sent meanwhile were lost, so an owner may look for
    /// work then.
    public func run(
        onListening: @Sendable () -> Void = {},
        _ handle: (_ notification: PostgresNotification, _ connection: PostgresConnection) async throws -> Void
    ) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: channel) { notifications in
                        // Listening again: the next loss is a new outage, worth a warning.
                        failures = 0
                        onListening()
                        for try await notification in notifications {
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
