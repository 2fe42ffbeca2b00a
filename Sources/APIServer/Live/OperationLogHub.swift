import Foundation
import Logging
import NIOConcurrencyHelpers
import OperationLogs
import Queue
import ServiceLifecycle

/// Follows the Redis streams of every operation log that live-events sockets subscribed to, for
/// the whole server on one dedicated connection (a blocking XREAD over all of them), and wakes
/// the sockets whose operations got lines. A socket then reads the lines itself, with XRANGE on
/// the shared pool, from its own cursor and at its own pace: a slow socket holds no other up,
/// and nothing piles up in memory for a socket that does not read.
///
/// The hub keeps, per operation, the id of the last entry it knows of and wakes the operation's
/// sockets each time that moves (and once when it starts following an operation), always after
/// the move: a socket that reads after a wake-up sees every line up to then.
final class OperationLogHub: Service, Sendable {
    /// One socket's end: its wake-ups and which of its operations changed.
    final class Watcher: Sendable {
        let id = UUID()
        /// Yields after changes; wake-ups not yet taken fold into one.
        let wakeups: AsyncStream<Void>
        fileprivate let continuation: AsyncStream<Void>.Continuation
        private let changed = NIOLockedValueBox(Set<UUID>())

        fileprivate init() {
            (wakeups, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        }

        /// The operations that may have new lines since the last call.
        func takeChanged() -> Set<UUID> {
            changed.withLockedValue { changed in
                defer { changed.removeAll() }
                return changed
            }
        }

        /// Wakes the socket without naming an operation (its subscriptions changed).
        func wake() {
            continuation.yield()
        }

        fileprivate func mark(_ operations: some Sequence<UUID>) {
            changed.withLockedValue { $0.formUnion(operations) }
            continuation.yield()
        }
    }

    private struct Followers {
        var watchers: [UUID: (watcher: Watcher, operations: Set<UUID>)] = [:]

        var operations: Set<UUID> { watchers.values.reduce(into: Set<UUID>()) { $0.formUnion($1.operations) } }
    }

    private let log: OperationLog
    private let logger: Logger
    private let followers = NIOLockedValueBox(Followers())
    /// Wakes the reader when the followed operations change.
    private let changes: AsyncStream<Void>
    private let changesContinuation: AsyncStream<Void>.Continuation
    /// How long one XREAD blocks: an operation followed for the first time waits at most this
    /// long for the reader to take it in (its socket reads what is there at once).
    private let block: Duration

    init(log: OperationLog, logger: Logger, block: Duration = .milliseconds(500)) {
        self.log = log
        self.logger = logger
        self.block = block
        (changes, changesContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func register() -> Watcher {
        let watcher = Watcher()
        followers.withLockedValue { $0.watchers[watcher.id] = (watcher, []) }
        return watcher
    }

    func unregister(_ watcher: Watcher) {
        followers.withLockedValue { _ = $0.watchers.removeValue(forKey: watcher.id) }
        watcher.continuation.finish()
        changesContinuation.yield()
    }

    /// Sets the operations `watcher` follows. Its socket reads what they hold already itself;
    /// the hub wakes it again once it took them in, for lines written in between.
    func follow(_ watcher: Watcher, operations: Set<UUID>) {
        let changed = followers.withLockedValue { followers -> Bool in
            guard let previous = followers.watchers[watcher.id]?.operations, previous != operations else { return false }
            followers.watchers[watcher.id] = (watcher, operations)
            return true
        }
        if changed { changesContinuation.yield() }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown { await self.read() }
        let watchers = followers.withLockedValue { followers in
            defer { followers.watchers.removeAll() }
            return followers.watchers.values.map(\.watcher)
        }
        for watcher in watchers { watcher.continuation.finish() }
    }

    private func read() async {
        var lastIDs: [UUID: String] = [:]
        let reader = BlockingReader(redis: log.redis)
        defer { reader.closeNow() }
        var changes = self.changes.makeAsyncIterator()
        while !Task.isCancelled {
            let followed = followers.withLockedValue { $0.operations }
            lastIDs = lastIDs.filter { followed.contains($0.key) }
            if followed.isEmpty {
                guard await changes.next() != nil else { return }
                continue
            }
            do {
                var moved: Set<UUID> = []
                for operation in followed where lastIDs[operation] == nil {
                    lastIDs[operation] = try await log.lastID(operation)
                    moved.insert(operation)
                }
                notify(moved)
                // One entry per stream is enough to learn it moved; where it ends now is read
                // apart, so a busy log costs two small replies per round, not its lines.
                let chunks = try await log.follow(lastIDs, block: block, count: 1, reader: reader)
                for operation in chunks.keys {
                    lastIDs[operation] = try await log.lastID(operation)
                }
                notify(Set(chunks.keys))
            } catch {
                if Task.isCancelled { return }
                logger.warning("could not follow operation logs", metadata: ["error": "\(error)"])
                reader.reset()
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Wakes the watchers of `operations`.
    private func notify(_ operations: Set<UUID>) {
        guard !operations.isEmpty else { return }
        let watchers = followers.withLockedValue { followers in
            followers.watchers.values.filter { !$0.operations.isDisjoint(with: operations) }
        }
        for (watcher, followed) in watchers { watcher.mark(followed.intersection(operations)) }
    }
}
