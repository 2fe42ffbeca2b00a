import NIOCore

/// Closes a connection whose first request head (request line and headers) does not arrive in
/// time: `idleTimeout` for its first byte, then `headerTimeout` for the rest. Hummingbird's own
/// idle timeout starts once a whole head was decoded, and with the WebSocket upgrade only after
/// the first one, so a client that stops halfway through its headers would hold the connection
/// for good. This sits first in the pipeline, on raw bytes, and leaves once it saw the blank line
/// that ends the head; from then on Hummingbird's idle timeout (or, after an upgrade, the
/// WebSocket's pings) takes over.
final class RequestHeadTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let idleTimeout: TimeAmount
    private let headerTimeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var started = false
    /// The last bytes read, for a blank line split across reads.
    private var tail: [UInt8] = []

    init(idleTimeout: TimeAmount, headerTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context, idleTimeout) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if timer == nil { arm(context, idleTimeout) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if !started, buffer.readableBytes > 0 {
            started = true
            arm(context, headerTimeout)
        }
        let ended = endsHead(buffer)
        context.fireChannelRead(data)
        if ended {
            disarm()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    /// Whether the bytes read so far hold the end of a head: an empty line (CRLF CRLF, or the
    /// bare LF LF a lenient parser takes; leaving early costs nothing, as the parser rejects what
    /// it does not take).
    private func endsHead(_ buffer: ByteBuffer) -> Bool {
        var previous = tail
        for byte in buffer.readableBytesView {
            previous.append(byte)
            if previous.count > 4 { previous.removeFirst(previous.count - 4) }
            if byte == UInt8(ascii: "\n"),
                previous.suffix(4).elementsEqual([13, 10, 13, 10]) || previous.suffix(2).elementsEqual([10, 10])
            {
                return true
            }
        }
        tail = previous
        return false
    }

    private func arm(_ context: ChannelHandlerContext, _ timeout: TimeAmount) {
        disarm()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            context.close(promise: nil)
        }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}
