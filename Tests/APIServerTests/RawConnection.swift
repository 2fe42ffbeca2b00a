import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A plain TCP connection to a server on loopback, for what an HTTP client never sends: half a
/// request line, headers one byte at a time, nothing at all.
struct RawConnection: Sendable {
    let channel: any Channel
    private let received: NIOLockedValueBox<[UInt8]>

    static func open(port: Int) async throws -> RawConnection {
        let received = NIOLockedValueBox([UInt8]())
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(received: received)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawConnection(channel: channel, received: received)
    }

    /// Runs `body` with a way to open connections to `port`, and closes every one it opened
    /// afterwards, whatever happens: one left open would hold the server's shutdown.
    static func withConnections<T: Sendable>(
        port: Int, _ body: (_ open: @Sendable () async throws -> RawConnection) async throws -> T
    ) async throws -> T {
        let opened = NIOLockedValueBox([RawConnection]())
        let open: @Sendable () async throws -> RawConnection = {
            let connection = try await RawConnection.open(port: port)
            opened.withLockedValue { $0.append(connection) }
            return connection
        }
        do {
            let result = try await body(open)
            for connection in opened.withLockedValue({ $0 }) { await connection.close() }
            return result
        } catch {
            for connection in opened.withLockedValue({ $0 }) { await connection.close() }
            throw error
        }
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// What the server sent so far.
    var text: String { String(decoding: received.withLockedValue { $0 }, as: UTF8.self) }

    var isOpen: Bool { channel.isActive }

    /// Returns once the server (or we) closed the connection.
    func closed() async throws {
        try await channel.closeFuture.get()
    }

    func close() async {
        try? await channel.close()
    }

    /// Keeps every byte read; the event loop is its only caller.
    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let received: NIOLockedValueBox<[UInt8]>

        init(received: NIOLockedValueBox<[UInt8]>) { self.received = received }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            received.withLockedValue { $0 += buffer.readableBytesView }
        }
    }
}
