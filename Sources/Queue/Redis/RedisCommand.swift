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
    /// The key whose slot decides which Redis Cluster node runs the command; `nil` for commands
    /// without keys, which any node runs.
    let routingKey: String?

    init(name: String, encoded: ByteBuffer, routingKey: String?) {
        self.name = name
        self.encoded = encoded
        self.routingKey = routingKey
    }

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
        self.routingKey = Self.routingKey(name: name, arguments: arguments)
    }

    /// Encodes a command that names no key but must run where `key` lives in a Redis
    /// Cluster: `WAIT` after writes to that key, on the same connection.
    public init(_ name: String, _ arguments: [RESPArgument], routedLike key: String) {
        let command = RedisCommand(name, arguments)
        self.init(name: command.name, encoded: command.encoded, routingKey: key)
    }

    /// Commands that name no key (or only keys of every node, such as `SCAN`).
    private static let keyless: Set<String> = [
        "ACL", "ASKING", "AUTH", "BGSAVE", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DBSIZE", "DEBUG", "DISCARD", "ECHO",
        "EXEC", "FLUSHALL", "FLUSHDB", "FUNCTION", "HELLO", "INFO", "KEYS", "LASTSAVE", "LATENCY", "MEMORY", "MULTI",
        "PING", "PUBLISH", "RANDOMKEY", "READONLY", "READWRITE", "ROLE", "SAVE", "SCAN", "SCRIPT", "SELECT", "SLOWLOG",
        "TIME", "WAIT",
    ]

    /// Where a command's first key sits among its arguments, for the commands this package
    /// sends (and any whose first argument is its key).
    static func routingKey(name: String, arguments: [RESPArgument]) -> String? {
        func text(_ index: Int) -> String? {
            guard index >= 0, index < arguments.count else { return nil }
            switch arguments[index] {
            case .string(let value): return value
            case .bytes(let value): return String(buffer: value)
            case .int(let value): return String(value)
            }
        }
        let name = name.utf8.contains { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") } ? name.uppercased() : name
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard let count = text(1).flatMap({ Int($0) }), count > 0 else { return nil }
            return text(2)
        case "XREAD", "XREADGROUP":
            guard let streams = arguments.firstIndex(where: { $0 == .string("STREAMS") || $0 == .string("streams") }) else {
                return nil
            }
            return text(streams + 1)
        case "XGROUP", "XINFO", "OBJECT":
            return text(1)
        default:
            return keyless.contains(name) ? nil : text(0)
        }
    }
}
