import NIOConcurrencyHelpers
import NIOCore

/// Blocking reads of several streams (`XREAD … BLOCK`), on connections of their own: what a
/// worker waits on while its queues are empty (``JobQueue/waitForEntries(after:block:reader:)``),
/// and what follows live operation logs.
///
/// On a single Redis one connection reads every stream at once. A Redis Cluster refuses a
/// command whose keys lie in different slots (each queue, each log has a slot of its own), so
/// there it keeps a connection per stream, to the master that serves it, reads them all at
/// once, and ends the others (`CLIENT UNBLOCK`) when one sees entries.
public final class BlockingReader: Sendable {
    let redis: RedisClient
    private let state = NIOLockedValueBox(State())

    private struct State {
        /// By stream key on a cluster; under "" on a single server.
        var connections: [String: Held] = [:]
        var closed = false
    }

    struct Held: Sendable {
        let connection: RedisConnection
        /// `CLIENT ID`, to interrupt the read with `CLIENT UNBLOCK` (cluster only).
        let clientID: Int?
        let node: RedisConfiguration.Address?
    }

    public init(redis: RedisClient) {
        self.redis = redis
    }

    /// The connection to block on `stream` with, opened when there is none (or it died).
    private func connection(for stream: String) async throws -> Held {
        let name = redis.isCluster ? stream : ""
        if let held = state.withLockedValue({ $0.connections[name] }), held.connection.isActive { return held }
        let held: Held
        if redis.isCluster {
            // One lookup, so the connection and the node its UNBLOCK goes to agree.
            guard let node = try await redis.clusterNode(forKey: stream) else { throw CancellationError() }
            let connection = try await redis.makeDedicatedConnection(toNode: node)
            do {
                let id = try await connection.send(RedisCommand("CLIENT", ["ID"])).int
                held = Held(connection: connection, clientID: id, node: node)
            } catch {
                await connection.close()
                throw error
            }
        } else {
            held = Held(connection: try await redis.makeDedicatedConnection(), clientID: nil, node: nil)
        }
        let kept = state.withLockedValue { state -> Bool in
            guard !state.closed else { return false }
            state.connections[name]?.connection.closeNow()
            state.connections[name] = held
            return true
        }
        guard kept else {
            await held.connection.close()
            throw CancellationError()
        }
        return held
    }

    /// Ends a read under way at once (`CLIENT UNBLOCK`): it returns as if it had timed out.
    private func unblock(_ held: Held) async {
        guard let id = held.clientID, let node = held.node else { return }
        _ = try? await redis.send(RedisCommand("CLIENT", ["UNBLOCK", .int(id)]), toNode: node)
    }

    /// Reads up to `count` entries after the given ids (`XREAD COUNT … BLOCK … STREAMS`),
    /// waiting up to `block` for the first; returns the entries (`[id, [field, value, …]]`) of
    /// the streams that have some, by key.
    public func read(after positions: [(stream: String, id: String)], count: Int, block: Duration) async throws -> [String: [RESPValue]] {
        guard !positions.isEmpty else { return [:] }
        guard redis.isCluster, positions.count > 1 else {
            return try await read(positions, count: count, block: block, on: connection(for: positions[0].stream))
        }
        closeConnections(except: Set(positions.map(\.stream)))
        // Each stream on its own: a master that is down fails its streams' reads only, and the
        // others wait as usual (they may hold jobs to run meanwhile).
        return try await withThrowingTaskGroup(of: (held: Held?, found: [String: [RESPValue]], error: (any Error)?).self) { group in
            for position in positions {
                group.addTask {
                    do {
                        let held = try await self.connection(for: position.stream)
                        return (held, try await self.read([position], count: count, block: block, on: held), nil)
                    } catch {
                        return (nil, [:], error)
                    }
                }
            }
            var found: [String: [RESPValue]] = [:]
            var failures: [any Error] = []
            var unblocking: Task<Void, Never>?
            for try await outcome in group {
                if let error = outcome.error {
                    failures.append(error)
                    continue
                }
                guard !outcome.found.isEmpty else { continue }
                found.merge(outcome.found) { _, new in new }
                guard unblocking == nil else { continue }
                // Until every read has returned: one still on its way to Redis when the first
                // UNBLOCK came would otherwise wait its full time.
                let held = heldConnections()
                unblocking = Task {
                    while !Task.isCancelled {
                        for each in held where !Task.isCancelled { await self.unblock(each) }
                        try? await Task.sleep(for: .milliseconds(5))
                    }
                }
            }
            // Every UNBLOCK sent before the next read starts: a late one would end that read,
            // and with it the wait for its stream.
            unblocking?.cancel()
            await unblocking?.value
            if found.isEmpty, failures.count == positions.count, let first = failures.first { throw first }
            return found
        }
    }

    private func heldConnections() -> [Held] {
        state.withLockedValue { Array($0.connections.values) }
    }

    /// Closes the connections of streams no longer read (an operation log no longer followed),
    /// so they do not pile up.
    private func closeConnections(except streams: Set<String>) {
        let stale = state.withLockedValue { state -> [Held] in
            let names = state.connections.keys.filter { !streams.contains($0) }
            return names.compactMap { state.connections.removeValue(forKey: $0) }
        }
        for held in stale { held.connection.closeNow() }
    }

    private func read(
        _ positions: [(stream: String, id: String)], count: Int, block: Duration, on held: Held
    ) async throws -> [String: [RESPValue]] {
        let milliseconds = max(1, Int(JobQueue.milliseconds(block)))
        let command = RedisCommand(
            "XREAD",
            ["COUNT", .int(max(1, count)), "BLOCK", .int(milliseconds), "STREAMS"] + positions.map { .string($0.stream) }
                + positions.map { .string($0.id) })
        let reply = try await held.connection.sendRaw(
            command, timeout: .milliseconds(Int64(milliseconds)) + held.connection.configuration.commandTimeout)
        if case .error(let message) = reply {
            if message.hasPrefix("MOVED") || message.hasPrefix("ASK") {
                // The stream's slot moved (a failover, or resharding): read the map again, and
                // reach the new master with a new connection next time.
                await redis.refreshClusterMap()
                reset()
            }
            throw RedisError.server(message, command: "XREAD")
        }
        var found: [String: [RESPValue]] = [:]
        for stream in reply.array ?? [] {
            guard let pair = stream.array, pair.count == 2, let key = pair[0].string, let entries = pair[1].array,
                !entries.isEmpty
            else { continue }
            found[key] = entries
        }
        return found
    }

    /// Closes the connections (interrupting reads under way); later reads open new ones.
    /// After a failure, whose connection may be the one at fault.
    public func reset() {
        let held = state.withLockedValue { state in
            defer { state.connections.removeAll() }
            return Array(state.connections.values)
        }
        for each in held { each.connection.closeNow() }
    }

    /// Closes the connections for good: reads under way end, later ones throw.
    public func closeNow() {
        state.withLockedValue { $0.closed = true }
        reset()
    }

}
