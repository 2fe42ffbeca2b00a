import NIOConcurrencyHelpers
import NIOCore

/// The connections a worker blocks on while its queues are empty
/// (``JobQueue/waitForEntries(after:block:reader:)``).
///
/// On a single Redis one connection waits on every queue at once. A Redis Cluster refuses a
/// command whose keys lie in different slots, and each queue has a slot of its own, so there
/// it keeps a connection per queue, to the master that serves the queue.
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
    func connection(for stream: String) async throws -> Held {
        let name = redis.isCluster ? stream : ""
        if let held = state.withLockedValue({ $0.connections[name] }), held.connection.isActive { return held }
        let held: Held
        if redis.isCluster {
            let node = try await redis.clusterNode(forKey: stream)
            let connection = try await redis.makeDedicatedConnection(forKey: stream)
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
    func unblock(_ held: Held) async {
        guard let id = held.clientID, let node = held.node else { return }
        _ = try? await redis.send(RedisCommand("CLIENT", ["UNBLOCK", .int(id)]), toNode: node)
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

    /// Whether ``closeNow()`` was called.
    public var isClosed: Bool { state.withLockedValue { $0.closed } }
}
