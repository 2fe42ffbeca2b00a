import NIOConcurrencyHelpers

/// The entries this worker is running, so heartbeats can keep them from being reclaimed.
final class InFlightTable: Sendable {
    struct Entry: Sendable {
        var queue: String
        /// Refresh the entry before this many milliseconds of idleness: a third of its
        /// visibility timeout, so two heartbeats can be missed before it is reclaimed.
        var refreshEvery: Duration
        var lastRefresh: ContinuousClock.Instant
        /// Past this, the handler overran its timeout and ignores cancellation: stop refreshing,
        /// so the reclaimer hands the job to another worker.
        var refreshUntil: ContinuousClock.Instant
    }

    private let entries = NIOLockedValueBox([String: Entry]())

    func insert(entryID: String, _ entry: Entry) {
        entries.withLockedValue { $0[entryID] = entry }
    }

    func remove(entryID: String) {
        entries.withLockedValue { _ = $0.removeValue(forKey: entryID) }
    }

    /// Entries that need a heartbeat before `horizon`, marked as refreshed now.
    func due(within horizon: Duration, now: ContinuousClock.Instant = .now) -> [(queue: String, entryID: String)] {
        entries.withLockedValue { entries in
            var due: [(queue: String, entryID: String)] = []
            for (id, entry) in entries where now < entry.refreshUntil && entry.lastRefresh + entry.refreshEvery <= now + horizon {
                due.append((entry.queue, id))
                entries[id]?.lastRefresh = now
            }
            return due
        }
    }
}
