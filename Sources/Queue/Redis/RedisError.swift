/// A failure talking to Redis.
///
/// The description names what failed and, for replies, the command; it never carries command
/// arguments, so payloads and passwords stay out of logs.
public struct RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }

        /// The server could not be reached (refused, unresolvable, connect timeout).
        public static let unreachable = Code(name: "unreachable")
        /// AUTH was refused.
        public static let authenticationFailed = Code(name: "authenticationFailed")
        /// The server answered with an error reply (`-ERR`, `-WRONGTYPE`, `-NOSCRIPT`, …).
        public static let serverError = Code(name: "serverError")
        /// The bytes from the server are not valid RESP, or exceed the reply size limit.
        public static let protocolError = Code(name: "protocolError")
        /// The connection closed while the command was in flight or before it was sent.
        public static let connectionClosed = Code(name: "connectionClosed")
        /// The server did not answer within the command timeout.
        public static let timeout = Code(name: "timeout")
        /// A reply had a shape the caller did not expect.
        public static let unexpectedReply = Code(name: "unexpectedReply")
        /// The configuration (for example `REDIS_URL`) is not valid.
        public static let invalidConfiguration = Code(name: "invalidConfiguration")
    }

    public var code: Code
    /// The command that failed, when there was one (`XADD`, `EVALSHA`, …).
    public var command: String?
    /// A human-readable explanation; for server errors, the server's message.
    public var message: String

    public init(code: Code, command: String? = nil, message: String) {
        self.code = code
        self.command = command
        self.message = message
    }

    /// The first word of a server error reply: `ERR`, `WRONGTYPE`, `NOSCRIPT`, `BUSYGROUP`, ….
    public var serverErrorPrefix: String? {
        guard code == .serverError else { return nil }
        return message.split(separator: " ", maxSplits: 1).first.map(String.init)
    }

    public var description: String {
        if let command {
            return "redis \(code) in \(command): \(message)"
        }
        return "redis \(code): \(message)"
    }

    static func server(_ message: String, command: String) -> RedisError {
        var message = message
        if let echo = message.firstRange(of: ", with args beginning with:") { message = String(message[..<echo.lowerBound]) }
        return RedisError(code: .serverError, command: command, message: message)
    }

    static func unexpected(_ value: RESPValue, command: String) -> RedisError {
        RedisError(code: .unexpectedReply, command: command, message: "unexpected reply \(value.kindName)")
    }
}

extension RESPValue {
    var kindName: String {
        switch self {
        case .simpleString: return "simple string"
        case .bulkString: return "bulk string"
        case .integer: return "integer"
        case .array: return "array"
        case .null: return "null"
        case .error: return "error"
        }
    }
}
