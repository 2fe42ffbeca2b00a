import NIOConcurrencyHelpers
import Queue

/// The entries this worker holds: those it is running or has prefetched, which every heartbeat
/// refreshes so they are not reclaimed, and every entry from dispatch until its outcome is
/// recorded in Redis. An entry pending for this worker in Redis but not held here is an orphan:
/// its delivery was lost with a connection, and the worker hands it back.
final class InFlightTable: Sendable {
    struct Entry: Sendable {
        var queue: String
        /// A unique job's key and id: heartbeats keep its lock alive while the job is held.
        var uniqueKey: String?
        var jobID: String
        /// How long the entry may go without a refresh before the reclaimer takes it.
        var visibility: Duration
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

    /// Every entry to refresh, and the unique locks of those that have one.
    func snapshot() -> (entries: [(queue: String, entryID: String)], locks: [UniqueLock]) {
        entries.withLockedValue { entries in
            var all: [(queue: String, entryID: String)] = []
            var locks: [UniqueLock] = []
            all.reserveCapacity(entries.count)
            for (id, entry) in entries {
                all.append((entry.queue, id))
                if let key = entry.uniqueKey {
                    locks.append(UniqueLock(queue: entry.queue, key: key, jobID: entry.jobID, ttl: entry.visibility * 2))
                }
            }
            return (all, locks)
        }
    }
}
