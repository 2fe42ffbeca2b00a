import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// One connection to Redis over a SwiftNIO channel, on which any number of commands may be in
/// flight at once (their replies come back in order).
///
/// Use ``RedisClient`` for ordinary commands; open a connection of your own only for blocking
/// commands such as `XREADGROUP … BLOCK`, which hold the connection until they return.
public final class RedisConnection: Sendable {
    let channel: any Channel
    let configuration: RedisConfiguration
    /// Sources of the scripts loaded on this connection: a new connection (after a restart, say)
    /// loads them again before it uses them.
    private let loadedScripts = NIOLockedValueBox(Set<String>())

    private init(channel: any Channel, configuration: RedisConfiguration) {
        self.channel = channel
        self.configuration = configuration
    }

    func hasLoaded(_ script: RedisScript) -> Bool {
        loadedScripts.withLockedValue { $0.contains(script.source) }
    }

    func markLoaded(_ script: RedisScript) {
        loadedScripts.withLockedValue { _ = $0.insert(script.source) }
    }

    func forgetLoadedScripts() {
        loadedScripts.withLockedValue { $0.removeAll() }
    }

    /// Connects, authenticates and selects the configured database.
    public static func connect(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) async throws(RedisError) -> RedisConnection {
        let bootstrap = ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        RedisChannelHandler(maxReplyBytes: configuration.maxReplyBytes))
                }
            }
        let channel: any Channel
        do {
            switch configuration.address {
            case .tcp(let host, let port):
                channel = try await bootstrap.channelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .connect(host: host, port: port).get()
            case .unixSocket(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch {
            throw RedisError(
                code: .unreachable,
                message: "cannot connect to \(configuration.redactedDescription): \(error)")
        }
        let connection = RedisConnection(channel: channel, configuration: configuration)
        do {
            try await connection.handshake()
        } catch {
            await connection.close()
            throw error
        }
        logger.debug("redis connected", metadata: ["redis": "\(configuration.redactedDescription)"])
        return connection
    }

    private func handshake() async throws(RedisError) {
        if let password = configuration.password {
            var arguments: [RESPArgument] = []
            if let user = configuration.username { arguments.append(.string(user)) }
            arguments.append(.string(password))
            do {
                _ = try await send(RedisCommand("AUTH", arguments), timeout: configuration.connectTimeout)
            } catch  where error.code == .serverError {
                throw RedisError(code: .authenticationFailed, command: "AUTH", message: error.message)
            }
        }
        if configuration.database != 0 {
            _ = try await send(
                RedisCommand("SELECT", [.int(configuration.database)]), timeout: configuration.connectTimeout)
        }
    }

    /// Whether the channel is still open.
    public var isActive: Bool { channel.isActive }

    /// Sends one command; an error reply is thrown as a ``RedisError`` naming the command.
    @discardableResult
    public func send(_ command: RedisCommand, timeout: TimeAmount? = nil) async throws(RedisError) -> RESPValue {
        let reply = try await sendRaw(command, timeout: timeout)
        if case .error(let message) = reply {
            throw RedisError.server(message, command: command.name)
        }
        return reply
    }

    /// Sends one command and returns its reply as is, error replies included.
    public func sendRaw(_ command: RedisCommand, timeout: TimeAmount? = nil) async throws(RedisError) -> RESPValue {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        let request = RedisRequest(command, completion: .single(promise), timeout: timeout ?? configuration.commandTimeout)
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            promise.fail(RedisError(code: .connectionClosed, command: command.name, message: "\(error)"))
        }
        channel.writeAndFlush(request, promise: written)
        do {
            return try await promise.futureResult.get()
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError(code: .connectionClosed, command: command.name, message: "\(error)")
        }
    }

    /// Sends several commands in one write and returns their replies in order, error replies
    /// included (one failed command does not fail the others).
    public func pipeline(_ commands: [RedisCommand], timeout: TimeAmount? = nil) async throws(RedisError) -> [RESPValue] {
        var pipeline = RedisPipeline(capacity: commands.reduce(0) { $0 + $1.encoded.readableBytes })
        for command in commands { pipeline.append(command) }
        return try await self.pipeline(pipeline, timeout: timeout)
    }

    /// Sends the commands of `pipeline` in one write and returns their replies in order, error
    /// replies included.
    public func pipeline(_ pipeline: RedisPipeline, timeout: TimeAmount? = nil) async throws(RedisError) -> [RESPValue] {
        let promise = channel.eventLoop.makePromise(of: [RESPValue].self)
        let request = RedisRequest(pipeline, completion: .pipeline(promise), timeout: timeout ?? configuration.commandTimeout)
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            promise.fail(RedisError(code: .connectionClosed, command: pipeline.names.first, message: "\(error)"))
        }
        channel.writeAndFlush(request, promise: written)
        do {
            return try await promise.futureResult.get()
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError(code: .connectionClosed, command: pipeline.names.first, message: "\(error)")
        }
    }

    /// Closes the connection; commands still in flight fail with `connectionClosed`.
    public func close() async {
        try? await channel.close().get()
    }

    /// Closes the connection without waiting, for example to interrupt a blocking read.
    public func closeNow() {
        channel.close(promise: nil)
    }
}
