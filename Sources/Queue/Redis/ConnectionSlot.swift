import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One pooled connection: ``ConnectionSlotState`` behind a lock, and the I/O it asks for.
final class ConnectionSlot: Sendable {
    private let state: NIOLockedValueBox<ConnectionSlotState<RedisConnection, EventLoopFuture<RedisConnection>>>

    init(configuration: RedisConfiguration) {
        state = NIOLockedValueBox(
            ConnectionSlotState(reconnectDelay: configuration.reconnectDelay, maxReconnectDelay: configuration.maxReconnectDelay))
    }

    func connection(for client: RedisClient) async throws(RedisError) -> RedisConnection {
        try await connection(configuration: client.configuration, eventLoopGroup: client.eventLoopGroup, logger: client.logger)
    }

    /// The slot's connection to the server `configuration` names, connecting when it has none.
    func connection(
        configuration: RedisConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger
    ) async throws(RedisError) -> RedisConnection {
        enum Step {
            case use(RedisConnection)
            case wait(EventLoopFuture<RedisConnection>)
            case failFast(RedisError)
        }
        let step: Step = state.withLockedValue { state in
            switch state.acquire(now: .now(), isActive: \.isActive) {
            case .use(let connection): return .use(connection)
            case .wait(let attempt): return .wait(attempt)
            case .failFast(let error): return .failFast(error)
            case .connect: break
            }
            let eventLoop = eventLoopGroup.any()
            let attempt = eventLoop.makeFutureWithTask { () async throws -> RedisConnection in
                try await RedisConnection.connect(configuration: configuration, eventLoopGroup: eventLoop, logger: logger)
            }
            state.connecting(attempt)
            attempt.whenComplete { [self] result in
                self.state.withLockedValue { state in
                    switch result {
                    case .success(let connection): state.connected(connection)?.closeNow()
                    case .failure(let error): state.connectFailed(error as? RedisError, now: .now())
                    }
                }
                if case .failure(let error) = result {
                    logger.warning(
                        "redis connect failed", metadata: ["redis": "\(configuration.redactedDescription)", "error": "\(error)"])
                }
            }
            return .wait(attempt)
        }
        switch step {
        case .use(let connection):
            return connection
        case .failFast(let error):
            throw error
        case .wait(let attempt):
            do {
                return try await attempt.get()
            } catch let error as RedisError {
                throw error
            } catch {
                throw RedisError(code: .unreachable, message: "\(error)")
            }
        }
    }

    func close() async {
        await state.withLockedValue { $0.close() }?.close()
    }
}
