import NIOConcurrencyHelpers

/// The entries this worker holds: those it is running, which heartbeats keep from being
/// reclaimed, and every entry from dispatch until its outcome is recorded in Redis. An entry
/// pending for this worker in Redis but not held here is an orphan: its delivery was lost with a
/// connection, and the worker hands it back.
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
    private let held = NIOLockedValueBox(Set<String>())

    /// Marks an entry as this worker's until ``settle(_:)``.
    func hold(_ entryID: String) {
        held.withLockedValue { _ = $0.insert(entryID) }
    }

    /// The entry's outcome is recorded (or could not be, and it is up for recovery).
    func settle(_ entryIDs: some Sequence<String>) {
        held.withLockedValue { $0.subtract(entryIDs) }
    }

    func isHeld(_ entryID: String) -> Bool {
        held.withLockedValue { $0.contains(entryID) }
    }

    func insert(entryID: String, _ entry: Entry) {
        entries.withLockedValue { $0[entryID] = entry }
    }

    func remove(entryID: String) {
        entries.withLockedValue { _ = $0.removeValue(forKey: entryID) }
    }

    /// Every entry that is still refreshed, marked as refreshed now: after a gap in heartbeats.
    func all(now: ContinuousClock.Instant = .now) -> [(queue: String, entryID: String)] {
        entries.withLockedValue { entries in
            var all: [(queue: String, entryID: String)] = []
            for (id, entry) in entries where now < entry.refreshUntil {
                all.append((entry.queue, id))
                entries[id]?.lastRefresh = now
            }
            return all
        }
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
