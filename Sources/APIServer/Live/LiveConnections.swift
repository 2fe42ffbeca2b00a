import Foundation
import NIOConcurrencyHelpers

/// The live-events sockets open on this server, counted by session, so that one session cannot
/// open them without bound (each holds a subscription to the activity feed and a task per
/// socket). The count is this process's: behind several API servers a session may hold this
/// many on each.
final class LiveConnections: Sendable {
    /// The most sockets of one session at once.
    let limit: Int
    private let counts = NIOLockedValueBox([UUID: Int]())

    init(limit: Int) {
        self.limit = limit
    }

    /// Counts a socket of `session` in; `false` (and nothing counted) when it has `limit` already.
    func open(_ session: UUID) -> Bool {
        counts.withLockedValue { counts in
            guard counts[session, default: 0] < limit else { return false }
            counts[session, default: 0] += 1
            return true
        }
    }

    /// Counts a socket of `session` out.
    func close(_ session: UUID) {
        counts.withLockedValue { counts in
            let left = counts[session, default: 1] - 1
            counts[session] = left > 0 ? left : nil
        }
    }
}
