import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A small pool of pipelined connections to Redis for ordinary (non-blocking) commands.
///
/// Commands are spread over the pool's connections round-robin; many callers share one
/// connection at once, since replies are matched to commands in order. A connection that
/// drops is replaced on the next command; while the server stays unreachable, reconnects back
/// off exponentially (``RedisConfiguration/reconnectDelay`` doubling up to
/// ``RedisConfiguration/maxReconnectDelay``) and commands fail fast with `unreachable`
/// instead of piling up.
///
/// Given a Redis Cluster (``RedisConfiguration/clusterSeeds``), it keeps such a pool per master
/// and sends each command to the master serving its key's slot (see ``ClusterRouter``); a
/// pipeline then goes to every node concerned at once, and its replies come back in order.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    /// The event loops the client's connections run on.
    public let eventLoopGroup: any EventLoopGroup
    let logger: Logger
    private let slots: [ConnectionSlot]
    private let cluster: ClusterRouter?
    private let nextSlot = NIOLockedValueBox(0)
    /// Scripts' SHA1s as `SCRIPT LOAD` returned them, by source.
    private let scriptSHAs = NIOLockedValueBox([String: String]())

    public init(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.slots = (0..<configuration.poolSize).map { _ in ConnectionSlot(configuration: configuration) }
        self.cluster =
            configuration.isCluster ? ClusterRouter(configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger) : nil
    }

    /// Whether this client talks to a Redis Cluster.
    public var isCluster: Bool { cluster != nil }

    /// The master serving `key`'s slot in a cluster; `nil` for a single server.
    public func clusterNode(forKey key: String) async throws(RedisError) -> RedisConfiguration.Address? {
        try await cluster?.node(forKey: key)
    }

    /// Every master of the cluster (`[]` for a single server), for commands that concern the
    /// keys of every node, such as `SCAN` or `FLUSHALL`.
    public func clusterMasters() async throws(RedisError) -> [RedisConfiguration.Address] {
        try await cluster?.masters() ?? []
    }

    /// The masters (the server, when it is a single one) with no replica connected now: what
    /// a durable enqueue (`WAIT`) would wait for in vain.
    public func mastersWithoutReplicas() async throws(RedisError) -> [RedisConfiguration.Address] {
        let masters = try await clusterMasters()
        var lonely: [RedisConfiguration.Address] = []
        for node in masters.isEmpty ? [configuration.address] : masters {
            let info = try await send(RedisCommand("INFO", ["replication"]), toNode: node).string ?? ""
            let replicas =
                info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("connected_slaves:") }
                .flatMap { Int($0.dropFirst("connected_slaves:".count)) } ?? 0
            if replicas == 0 { lonely.append(node) }
        }
        return lonely
    }

    /// Reads a cluster's slot map again (nothing for a single server): after a `MOVED` on a
    /// connection of one's own.
    public func refreshClusterMap() async {
        _ = try? await cluster?.refresh()
    }

    /// Sends `command` to one node of the cluster (to the server, for a single one), whatever
    /// its keys: for `SCAN`, `FLUSHALL` or `INFO` on each node in turn.
    public func send(_ command: RedisCommand, toNode node: RedisConfiguration.Address) async throws(RedisError) -> RESPValue {
        guard let cluster else { return try await send(command) }
        return try await cluster.connection(to: node).send(command)
    }

    /// Sends one command; an error reply is thrown as a ``RedisError`` naming the command.
    @discardableResult
    public func send(_ command: RedisCommand) async throws(RedisError) -> RESPValue {
        guard cluster != nil else { return try await connection().send(command) }
        let reply = try await sendRaw(command)
        if case .error(let message) = reply { throw RedisError.server(message, command: command.name) }
        return reply
    }

    /// Convenience for `send(RedisCommand(name, arguments))`.
    @discardableResult
    public func send(_ name: String, _ arguments: [RESPArgument]) async throws(RedisError) -> RESPValue {
        try await send(RedisCommand(name, arguments))
    }

    /// Sends one command and returns its reply as is, error replies included.
    public func sendRaw(_ command: RedisCommand) async throws(RedisError) -> RESPValue {
        guard let cluster else { return try await connection().sendRaw(command) }
        return try await cluster.pipeline([.command(command)], client: self)[0]
    }

    /// Sends several commands in one round trip; replies come back in order, error replies
    /// included.
    public func pipeline(_ commands: [RedisCommand]) async throws(RedisError) -> [RESPValue] {
        guard let cluster else { return try await connection().pipeline(commands) }
        return try await cluster.pipeline(commands.map { .command($0) }, client: self)
    }

    /// Runs a Lua script by its SHA1 (loading it first on a connection that has not yet).
    @discardableResult
    public func run(_ script: RedisScript, keys: [String], arguments: [RESPArgument]) async throws(RedisError) -> RESPValue {
        let reply = try await pipeline([.script(RedisScript.Call(script, keys: keys, arguments: arguments))])[0]
        if case .error(let message) = reply {
            throw RedisError.server(message, command: "EVALSHA \(script.name)")
        }
        return reply
    }

    /// Sends the commands of `pipeline` in one round trip; replies come back in order, error
    /// replies included.
    public func pipeline(_ pipeline: RedisPipeline) async throws(RedisError) -> [RESPValue] {
        guard let cluster else { return try await connection().pipeline(pipeline) }
        return try await cluster.pipeline(pipeline.commands.map { .command($0) }, client: self)
    }

    /// Sends plain commands and script calls in one round trip, in order. Scripts this
    /// connection has not loaded yet are loaded (`SCRIPT LOAD`) at the front of the same round
    /// trip. Replies come back in order, error replies included.
    public func pipeline(_ items: [RedisPipelineItem]) async throws(RedisError) -> [RESPValue] {
        if let cluster { return try await cluster.pipeline(items, client: self) }
        return try await pipeline(items, on: connection())
    }

    /// ``pipeline(_:)-([RedisPipelineItem])`` on one given connection.
    func pipeline(_ items: [RedisPipelineItem], on connection: RedisConnection) async throws(RedisError) -> [RESPValue] {
        var toLoad: [RedisScript] = []
        for item in items {
            if case .script(let call) = item, !connection.hasLoaded(call.script),
                !toLoad.contains(where: { $0.source == call.script.source })
            {
                toLoad.append(call.script)
            }
        }
        let shas = scriptSHAs.withLockedValue { $0 }
        var commands = toLoad.map { RedisCommand("SCRIPT", ["LOAD", .string($0.source)]) }
        commands.reserveCapacity(toLoad.count + items.count)
        for item in items {
            switch item {
            case .command(let command): commands.append(command)
            case .script(let call): commands.append(shas[call.script.source].map(call.evalSHA) ?? call.eval)
            }
        }
        let all = try await connection.pipeline(commands)
        for (script, reply) in zip(toLoad, all) {
            guard let sha = reply.string else { continue }
            scriptSHAs.withLockedValue { $0[script.source] = sha }
            connection.markLoaded(script)
        }
        var replies = Array(all.dropFirst(toLoad.count))
        // Only a `SCRIPT FLUSH` while this connection was open gets here: run what failed again,
        // with its source (these calls come after the batch's other commands).
        let missing = replies.indices.filter {
            guard case .script = items[$0], case .error(let message) = replies[$0] else { return false }
            return message.hasPrefix("NOSCRIPT")
        }
        if !missing.isEmpty {
            connection.forgetLoadedScripts()
            let retried = try await connection.pipeline(missing.map { items[$0].command })
            for (index, reply) in zip(missing, retried) { replies[index] = reply }
        }
        return replies
    }

    /// Opens a connection of its own, for blocking commands. The caller closes it. In a
    /// cluster, it goes to the master serving `key`'s slot (any master without a key).
    public func makeDedicatedConnection(forKey key: String? = nil) async throws(RedisError) -> RedisConnection {
        guard let cluster else {
            return try await RedisConnection.connect(configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger)
        }
        let node = try await cluster.node(forKey: key)
        return try await RedisConnection.connect(
            configuration: configuration.aimed(at: node), eventLoopGroup: eventLoopGroup, logger: logger)
    }

    /// Opens a connection of its own to one node of the cluster (to the server, for a single
    /// one). The caller closes it.
    public func makeDedicatedConnection(toNode node: RedisConfiguration.Address) async throws(RedisError) -> RedisConnection {
        try await RedisConnection.connect(
            configuration: cluster == nil ? configuration : configuration.aimed(at: node), eventLoopGroup: eventLoopGroup, logger: logger)
    }

    /// Closes every pooled connection; later commands reconnect.
    public func close() async {
        for slot in slots {
            await slot.close()
        }
        await cluster?.close()
    }

    private func connection() async throws(RedisError) -> RedisConnection {
        let index = nextSlot.withLockedValue { value in
            value = (value + 1) % slots.count
            return value
        }
        return try await slots[index].connection(for: self)
    }
}
