import CHiredis
import NIOCore

/// Turns bytes from Redis into ``RESPValue``s with hiredis's reply reader.
///
/// Not thread-safe and not `Sendable`: it owns a C `redisReader` and lives inside one
/// ``RedisChannelHandler``, so it is only ever touched on that channel's event loop.
final class RESPReplyParser {
    private let reader: UnsafeMutablePointer<redisReader>
    /// Bytes buffered for a reply that is not complete yet; more than this is a protocol error,
    /// so a stream claiming a gigantic bulk string cannot exhaust memory.
    let maxBufferedBytes: Int
    private var failed: RedisError?
    private let allocator = ByteBufferAllocator()

    init(maxBufferedBytes: Int = 512 * 1024 * 1024) {
        guard let reader = redisReaderCreate() else {
            fatalError("hiredis could not allocate a reply reader (out of memory)")
        }
        self.reader = reader
        self.maxBufferedBytes = maxBufferedBytes
    }

    deinit {
        redisReaderFree(reader)
    }

    /// Appends bytes read from the socket.
    func feed(_ buffer: ByteBuffer) throws(RedisError) {
        if let failed { throw failed }
        let status = buffer.withUnsafeReadableBytes { bytes -> Int32 in
            guard let base = bytes.baseAddress, bytes.count > 0 else { return REDIS_OK }
            return redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count)
        }
        if status != REDIS_OK {
            throw fail(readerError() ?? "reader refused input")
        }
    }

    /// The next complete reply, or `nil` when more bytes are needed.
    func next() throws(RedisError) -> RESPValue? {
        if let failed { throw failed }
        var raw: UnsafeMutableRawPointer?
        if redisReaderGetReply(reader, &raw) != REDIS_OK {
            throw fail(readerError() ?? "malformed reply")
        }
        guard let raw else {
            if reader.pointee.len - reader.pointee.pos > maxBufferedBytes {
                throw fail("reply exceeds \(maxBufferedBytes) bytes")
            }
            return nil
        }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return convert(reply)
    }

    private func fail(_ message: String) -> RedisError {
        let error = RedisError(code: .protocolError, message: message)
        failed = error
        return error
    }

    private func readerError() -> String? {
        guard reader.pointee.err != 0 else { return nil }
        return withUnsafeBytes(of: reader.pointee.errstr) { bytes in
            let chars = bytes.bindMemory(to: UInt8.self)
            let end = chars.firstIndex(of: 0) ?? chars.endIndex
            return String(decoding: chars[..<end], as: UTF8.self)
        }
    }

    private func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .bulkString(bytes(r.str, r.len))
        case REDIS_REPLY_STATUS:
            return .simpleString(bytes(r.str, r.len))
        case REDIS_REPLY_ERROR:
            return .error(String(buffer: bytes(r.str, r.len)))
        case REDIS_REPLY_INTEGER:
            return .integer(Int(r.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ARRAY:
            var values: [RESPValue] = []
            values.reserveCapacity(Int(r.elements))
            for index in 0..<Int(r.elements) {
                if let element = r.element[index] {
                    values.append(convert(element))
                } else {
                    values.append(.null)
                }
            }
            return .array(values)
        default:
            return .null
        }
    }

    private func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> ByteBuffer {
        guard let pointer, length > 0 else { return allocator.buffer(capacity: 0) }
        return allocator.buffer(bytes: UnsafeRawBufferPointer(start: pointer, count: length))
    }
}
