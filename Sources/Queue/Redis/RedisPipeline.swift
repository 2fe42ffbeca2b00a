import NIOCore

/// Commands encoded back to back into one buffer, to send in one write.
///
/// Appending encodes straight into the shared buffer, without a buffer per command: a batch
/// enqueue of 1,000 jobs is 1,000 commands.
public struct RedisPipeline: Sendable {
    private(set) var buffer: ByteBuffer
    /// The names of the commands, in order.
    public private(set) var names: [String] = []
    /// Where each command starts in ``buffer``, and the key that routes it in a cluster.
    private var starts: [Int] = []
    private var routingKeys: [String?] = []

    public init(capacity: Int = 1024) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    public var isEmpty: Bool { names.isEmpty }
    public var count: Int { names.count }

    public mutating func append(_ command: RedisCommand) {
        starts.append(buffer.writerIndex)
        routingKeys.append(command.routingKey)
        buffer.writeImmutableBuffer(command.encoded)
        names.append(command.name)
    }

    /// Appends a command whose arguments the caller writes with `write`, `count` of them after
    /// the name: for hot paths that should not build an argument array. `key` is the command's
    /// (first) key, which routes it in a Redis Cluster.
    public mutating func append(_ name: String, key: String?, argumentCount count: Int, _ write: (inout RESPWriter) -> Void) {
        starts.append(buffer.writerIndex)
        routingKeys.append(key)
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

    /// The commands one by one, to send to the nodes of a cluster their keys belong to.
    var commands: [RedisCommand] {
        starts.indices.map { index in
            let end = index + 1 < starts.count ? starts[index + 1] : buffer.writerIndex
            let encoded = buffer.getSlice(at: starts[index], length: end - starts[index]) ?? ByteBuffer()
            return RedisCommand(name: names[index], encoded: encoded, routingKey: routingKeys[index])
        }
    }
}
