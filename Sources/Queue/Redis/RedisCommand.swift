import NIOCore

/// One argument of a Redis command: text, raw bytes or an integer.
public enum RESPArgument: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case string(String)
    case bytes(ByteBuffer)
    case int(Int)

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }

    func write(to buffer: inout ByteBuffer) {
        switch self {
        case .string(let value):
            buffer.writeStaticString("$")
            buffer.writeString(String(value.utf8.count))
            buffer.writeStaticString("\r\n")
            buffer.writeString(value)
        case .bytes(let value):
            buffer.writeStaticString("$")
            buffer.writeString(String(value.readableBytes))
            buffer.writeStaticString("\r\n")
            buffer.writeImmutableBuffer(value)
        case .int(let value):
            let digits = String(value)
            buffer.writeStaticString("$")
            buffer.writeString(String(digits.utf8.count))
            buffer.writeStaticString("\r\n")
            buffer.writeString(digits)
        }
        buffer.writeStaticString("\r\n")
    }
}

/// A command encoded as a RESP array, ready to be written.
///
/// `name` is kept apart so errors can say which command failed without echoing its arguments.
public struct RedisCommand: Sendable {
    public let name: String
    let encoded: ByteBuffer

    /// Encodes `name` followed by `arguments`, for example `RedisCommand("XACK", [.string(key), "workers", .string(id)])`.
    public init(_ name: String, _ arguments: [RESPArgument] = []) {
        self.name = name
        var buffer = ByteBufferAllocator().buffer(capacity: 16 + arguments.count * 16)
        buffer.writeStaticString("*")
        buffer.writeString(String(arguments.count + 1))
        buffer.writeStaticString("\r\n")
        RESPArgument.string(name).write(to: &buffer)
        for argument in arguments {
            argument.write(to: &buffer)
        }
        self.encoded = buffer
    }
}
