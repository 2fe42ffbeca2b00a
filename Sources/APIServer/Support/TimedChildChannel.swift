import HummingbirdCore
import Logging
import NIOCore

/// A server's child channel (HTTP/1, with or without the WebSocket upgrade) with a
/// ``RequestHeadTimeoutHandler`` ahead of everything in each connection's pipeline, and, when
/// given, a cap on connections per client address.
struct TimedChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base
    let idleTimeout: TimeAmount
    let headerTimeout: TimeAmount
    let perAddress: ConnectionsPerAddress?

    /// Runs on the connection's event loop (NIO's child channel initializer). A connection it
    /// refuses is closed here: NIO's async server drops a channel whose setup failed without
    /// closing it, which would leave the client connected to nothing.
    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        if let perAddress, !perAddress.admit(channel) {
            logger.notice(
                "connection refused: its address holds too many", metadata: ["limit": "\(perAddress.limit)"])
            return Self.refuse(channel, TooManyConnectionsFromAddress())
        }
        do {
            try channel.pipeline.syncOperations.addHandler(
                RequestHeadTimeoutHandler(idleTimeout: idleTimeout, headerTimeout: headerTimeout), position: .first)
        } catch {
            return Self.refuse(channel, error)
        }
        return base.setup(channel: channel, logger: logger).flatMapError { error in Self.refuse(channel, error) }
    }

    private static func refuse(_ channel: any Channel, _ error: any Error) -> EventLoopFuture<Value> {
        channel.close(promise: nil)
        return channel.eventLoop.makeFailedFuture(error)
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// The child channels `make` builds, behind the request head's timeouts.
    static func timed<Base: ServerChildChannel>(
        idleTimeout: Duration, headerTimeout: Duration, perAddress: ConnectionsPerAddress? = nil,
        _ make: @escaping @Sendable (@escaping HTTPChannelHandler.Responder) -> Base
    ) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            TimedChildChannel(
                base: make(responder), idleTimeout: TimeAmount(idleTimeout), headerTimeout: TimeAmount(headerTimeout),
                perAddress: perAddress)
        }
    }
}
