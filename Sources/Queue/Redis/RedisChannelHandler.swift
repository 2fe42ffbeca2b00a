import NIOCore

/// What a caller hands to the channel: commands to write and where their replies go.
struct RedisRequest {
    enum Completion {
        case single(EventLoopPromise<RESPValue>)
        case pipeline(EventLoopPromise<[RESPValue]>)
    }

    /// The commands, RESP-encoded back to back.
    var encoded: ByteBuffer
    /// Their names, one per command: how many replies to expect, and what to name in errors.
    var names: [String]
    var completion: Completion
    var timeout: TimeAmount?

    init(_ command: RedisCommand, completion: Completion, timeout: TimeAmount?) {
        self.encoded = command.encoded
        self.names = [command.name]
        self.completion = completion
        self.timeout = timeout
    }

    init(_ pipeline: RedisPipeline, completion: Completion, timeout: TimeAmount?) {
        self.encoded = pipeline.buffer
        self.names = pipeline.names
        self.completion = completion
        self.timeout = timeout
    }
}

/// Writes commands and matches replies to them in order, so any number of commands can be in
/// flight on one connection (pipelining).
///
/// Replies are parsed with hiredis's reader. A reply that does not arrive within the command's
/// timeout, a protocol error, or the connection closing fails every pending command and closes
/// the channel: after any of these, which reply belongs to which command is no longer known.
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var completion: RedisRequest.Completion
        var names: [String]
        var deadline: NIODeadline?
    }

    private let parser: RESPReplyParser
    private var pending = CircularBuffer<Pending>(initialCapacity: 16)
    /// Replies received so far for the head of `pending`, when it is a pipeline.
    private var headReplies: [RESPValue] = []
    private var closedError: RedisError?
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    init(maxReplyBytes: Int) {
        self.parser = RESPReplyParser(maxBufferedBytes: maxReplyBytes)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if closedError != nil {
            let error = RedisError(
                code: .connectionClosed, command: request.names.first, message: "connection closed")
            fail(request.completion, error)
            promise?.fail(error)
            return
        }
        if request.names.isEmpty {
            if case .pipeline(let p) = request.completion { p.succeed([]) }
            promise?.succeed()
            return
        }
        let deadline = request.timeout.map { NIODeadline.now() + $0 }
        pending.append(
            Pending(
                completion: request.completion,
                names: request.names,
                deadline: deadline
            ))
        context.write(wrapOutboundOut(request.encoded), promise: promise)
        if let deadline { armTimer(context: context, deadline: deadline) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        do {
            try parser.feed(buffer)
            while let reply = try parser.next() {
                deliver(reply, context: context)
            }
        } catch {
            closeThenFailAll(error, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(closedError ?? RedisError(code: .connectionClosed, message: "connection closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(RedisError(code: .connectionClosed, message: "connection failed: \(error)"))
        context.close(promise: nil)
    }

    private func deliver(_ reply: RESPValue, context: ChannelHandlerContext) {
        guard !pending.isEmpty else {
            // A reply nobody asked for means we lost track of the stream of replies.
            closeThenFailAll(RedisError(code: .protocolError, message: "unsolicited reply"), context: context)
            return
        }
        let expected = pending[pending.startIndex].names.count
        if expected == 1 {
            let head = pending.removeFirst()
            switch head.completion {
            case .single(let promise): promise.succeed(reply)
            case .pipeline(let promise): promise.succeed([reply])
            }
            return
        }
        // The head's replies gather outside the ring buffer: appending through its subscript
        // copies the array each time (quadratic in the size of a pipeline).
        if headReplies.isEmpty { headReplies.reserveCapacity(expected) }
        headReplies.append(reply)
        if headReplies.count < expected { return }
        let head = pending.removeFirst()
        let replies = headReplies
        headReplies = []
        switch head.completion {
        case .single(let promise): promise.succeed(reply)
        case .pipeline(let promise): promise.succeed(replies)
        }
    }

    private func armTimer(context: ChannelHandlerContext, deadline: NIODeadline) {
        if let timerDeadline, timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.timerFired(context: context)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        timerDeadline = nil
        let now = NIODeadline.now()
        var next: NIODeadline?
        for entry in pending {
            guard let deadline = entry.deadline else { continue }
            if deadline <= now {
                let name = entry.names.first ?? "command"
                closeThenFailAll(
                    RedisError(code: .timeout, command: name, message: "no reply within the command timeout"), context: context)
                return
            }
            next = min(next ?? deadline, deadline)
        }
        if let next { armTimer(context: context, deadline: next) }
    }

    /// Closes first, so that whoever the failure wakes up already sees the connection inactive.
    private func closeThenFailAll(_ error: RedisError, context: ChannelHandlerContext) {
        if closedError == nil { closedError = error }
        context.close(promise: nil)
        failAll(error)
    }

    private func failAll(_ error: RedisError) {
        if closedError == nil { closedError = error }
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        headReplies = []
        while let entry = pending.popFirst() {
            fail(entry.completion, error)
        }
    }

    private func fail(_ completion: RedisRequest.Completion, _ error: RedisError) {
        switch completion {
        case .single(let promise): promise.fail(error)
        case .pipeline(let promise): promise.fail(error)
        }
    }
}
