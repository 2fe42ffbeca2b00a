import NIOCore

/// A reply from Redis, as RESP2 describes it.
///
/// Error replies are values here, not thrown errors: in a pipeline one command may fail while
/// the others succeed. ``RedisConnection`` and ``RedisClient`` turn them into ``RedisError``s
/// that name the command.
public enum RESPValue: Sendable, Hashable {
    case simpleString(ByteBuffer)
    case bulkString(ByteBuffer)
    case integer(Int)
    case array([RESPValue])
    case null
    case error(String)

    /// The value as a UTF-8 string, for simple and bulk strings (and integers, spelled out).
    public var string: String? {
        switch self {
        case .simpleString(let buffer), .bulkString(let buffer):
            return String(buffer: buffer)
        case .integer(let value):
            return String(value)
        default:
            return nil
        }
    }

    /// The bytes of a simple or bulk string.
    public var bytes: ByteBuffer? {
        switch self {
        case .simpleString(let buffer), .bulkString(let buffer):
            return buffer
        default:
            return nil
        }
    }

    /// The value as an integer, for integer replies and strings that spell one.
    public var int: Int? {
        switch self {
        case .integer(let value):
            return value
        case .simpleString(let buffer), .bulkString(let buffer):
            return Int(String(buffer: buffer))
        default:
            return nil
        }
    }

    /// The elements of an array reply; `nil` for a null reply and for every other kind.
    public var array: [RESPValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}
