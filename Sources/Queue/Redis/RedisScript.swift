/// A Lua script, run by the SHA1 that `SCRIPT LOAD` returns for it (`EVALSHA`).
///
/// ``RedisClient`` loads each script once per connection, in the same round trip as its first
/// use there, so a batch mixing scripts and plain commands on a server that does not know the
/// scripts yet (first use, a restart) runs in order rather than failing with `NOSCRIPT` halfway.
public struct RedisScript: Sendable {
    /// A short name used in errors and logs.
    public let name: String
    public let source: String

    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }

    /// One invocation of a script, for ``RedisClient/pipeline(_:)-([RedisPipelineItem])``.
    public struct Call: Sendable {
        public var script: RedisScript
        public var keys: [String]
        public var arguments: [RESPArgument]

        public init(_ script: RedisScript, keys: [String], arguments: [RESPArgument]) {
            self.script = script
            self.keys = keys
            self.arguments = arguments
        }

        func evalSHA(_ sha: String) -> RedisCommand {
            RedisCommand("EVALSHA", [.string(sha), .int(keys.count)] + keys.map { .string($0) } + arguments)
        }

        var eval: RedisCommand {
            RedisCommand("EVAL", [.string(script.source), .int(keys.count)] + keys.map { .string($0) } + arguments)
        }
    }
}

/// One element of a mixed pipeline: a plain command or a script call.
public enum RedisPipelineItem: Sendable {
    case command(RedisCommand)
    case script(RedisScript.Call)

    /// The key whose slot routes the item in a Redis Cluster.
    var routingKey: String? {
        switch self {
        case .command(let command): return command.routingKey
        case .script(let call): return call.keys.first
        }
    }

    /// The command itself; a script call as `EVAL` with its source.
    var command: RedisCommand {
        switch self {
        case .command(let command): return command
        case .script(let call): return call.eval
        }
    }

    /// The name to use in errors.
    public var name: String {
        switch self {
        case .command(let command): return command.name
        case .script(let call): return "EVALSHA \(call.script.name)"
        }
    }
}
