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
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    /// The event loops the client's connections run on.
    public let eventLoopGroup: any EventLoopGroup
    let logger: Logger
    private let slots: [ConnectionSlot]
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
    }

    /// Sends one command; an error reply is thrown as a ``RedisError`` naming the command.
    @discardableResult
    public func send(_ command: RedisCommand) async throws(RedisError) -> RESPValue {
        try await connection().send(command)
    }

    /// Convenience for `send(RedisCommand(name, arguments))`.
    @discardableResult
    public func send(_ name: String, _ arguments: [RESPArgument]) async throws(RedisError) -> RESPValue {
        try await connection().send(RedisCommand(name, arguments))
    }

    /// Sends one command and returns its reply as is, error replies included.
    public func sendRaw(_ command: RedisCommand) async throws(RedisError) -> RESPValue {
        try await connection().sendRaw(command)
    }

    /// Sends several commands in one round trip; replies come back in order, error replies
    /// included.
    public func pipeline(_ commands: [RedisCommand]) async throws(RedisError) -> [RESPValue] {
        try await connection().pipeline(commands)
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
        try await connection().pipeline(pipeline)
    }

    /// Sends plain commands and script calls in one round trip, in order. Scripts this
    /// connection has not loaded yet are loaded (`SCRIPT LOAD`) at the front of the same round
    /// trip. Replies come back in order, error replies included.
    public func pipeline(_ items: [RedisPipelineItem]) async throws(RedisError) -> [RESPValue] {
        let connection = try await connection()
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

    /// Opens a connection of its own, for blocking commands. The caller closes it.
    public func makeDedicatedConnection() async throws(RedisError) -> RedisConnection {
        try await RedisConnection.connect(configuration: configuration, eventLoopGroup: eventLoopGroup, logger: logger)
    }

    /// Closes every pooled connection; later commands reconnect.
    public func close() async {
        for slot in slots {
            await slot.close()
        }
    }

    private func connection() async throws(RedisError) -> RedisConnection {
        let index = nextSlot.withLockedValue { value in
            value = (value + 1) % slots.count
            return value
        }
        return try await slots[index].connection(for: self)
    }
}
