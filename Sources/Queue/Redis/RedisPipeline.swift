import NIOCore

/// Commands encoded back to back into one buffer, to send in one write.
///
/// Appending encodes straight into the shared buffer, without a buffer per command: a batch
/// enqueue of 1,000 jobs is 1,000 commands.
public struct RedisPipeline: Sendable {
    private(set) var buffer: ByteBuffer
    /// The names of the commands, in order.
    public private(set) var names: [String] = []

    public init(capacity: Int = 1024) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    public var isEmpty: Bool { names.isEmpty }
    public var count: Int { names.count }

    public mutating func append(_ command: RedisCommand) {
        buffer.writeImmutableBuffer(command.encoded)
        names.append(command.name)
    }

    /// Appends a command whose arguments the caller writes with `write`, `count` of them after
    /// the name: for hot paths that should not build an argument array.
    public mutating func append(_ name: String, argumentCount count: Int, _ write: (inout RESPWriter) -> Void) {
        buffer.writeStaticString("*")
        buffer.writeString(String(count + 1))
        buffer.writeStaticString("\r\n")
        RESPArgument.string(name).write(to: &buffer)
        var writer = RESPWriter(buffer: buffer)
        buffer = ByteBuffer()
        write(&writer)
        buffer = writer.buffer
        names.append(name)
    }
}
