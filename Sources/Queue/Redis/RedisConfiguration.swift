import NIOCore

/// How to reach Redis and how patient to be with it.
public struct RedisConfiguration: Sendable, Hashable {
    /// Where the server listens.
    public enum Address: Sendable, Hashable, CustomStringConvertible {
        case tcp(host: String, port: Int)
        case unixSocket(path: String)

        /// `host:port` (`[v6]:port`) or the socket's path.
        public var description: String {
            switch self {
            case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unixSocket(let path): return path
            }
        }
    }

    public var address: Address
    /// Seed nodes of a Redis Cluster (`redis+cluster://`): when not empty, ``RedisClient`` reads
    /// the cluster's slot map from one of them and sends each command to the master serving
    /// its key's slot. ``address`` is then the first seed.
    public var clusterSeeds: [Address] = []
    /// ACL user name for `AUTH`; `nil` authenticates as the default user.
    public var username: String?
    /// Password for `AUTH`; `nil` skips `AUTH`.
    public var password: String?
    /// Logical database selected with `SELECT` on every new connection.
    public var database: Int
    /// How long establishing a connection (including AUTH and SELECT) may take.
    public var connectTimeout: TimeAmount
    /// How long a command may wait for its reply before the connection is declared dead.
    public var commandTimeout: TimeAmount
    /// How many pipelined connections ``RedisClient`` keeps for ordinary commands.
    public var poolSize: Int
    /// The largest reply accepted; anything bigger is a protocol error.
    public var maxReplyBytes: Int
    /// First delay before reconnecting after a failed connect; doubles up to ``maxReconnectDelay``.
    public var reconnectDelay: TimeAmount
    public var maxReconnectDelay: TimeAmount

    public init(
        address: Address = .tcp(host: "127.0.0.1", port: 6379),
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: TimeAmount = .seconds(5),
        commandTimeout: TimeAmount = .seconds(10),
        poolSize: Int = 2,
        maxReplyBytes: Int = 512 * 1024 * 1024,
        reconnectDelay: TimeAmount = .milliseconds(100),
        maxReconnectDelay: TimeAmount = .seconds(5)
    ) {
        self.address = address
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.poolSize = max(1, poolSize)
        self.maxReplyBytes = maxReplyBytes
        self.reconnectDelay = reconnectDelay
        self.maxReconnectDelay = maxReconnectDelay
    }

    /// Whether this names a Redis Cluster rather than one server.
    public var isCluster: Bool { !clusterSeeds.isEmpty }

    /// This configuration aimed at one node of the cluster.
    func aimed(at node: Address) -> RedisConfiguration {
        var copy = self
        copy.address = node
        copy.clusterSeeds = []
        return copy
    }

    /// Parses `redis://[user:password@]host[:port][/db]`, `unix:///path/to/socket[?db=N]` or
    /// `redis+cluster://[user:password@]host[:port][,host[:port]…]` (seed nodes of a Redis
    /// Cluster, which has only database 0).
    ///
    /// `redis://:secret@host` gives a password without a user name. Percent-escapes in the user
    /// name and password are decoded.
    public init(url: String) throws(RedisError) {
        self.init()
        func invalid(_ why: String) -> RedisError {
            RedisError(
                code: .invalidConfiguration,
                message:
                    "invalid Redis URL (\(why)); expected redis://[user:password@]host:port/db, unix:///path or redis+cluster://host:port[,host:port…]"
            )
        }
        if url.hasPrefix("unix://") {
            var rest = Substring(url.dropFirst("unix://".count))
            if let query = rest.firstIndex(of: "?") {
                let parameters = rest[rest.index(after: query)...]
                rest = rest[..<query]
                for parameter in parameters.split(separator: "&") {
                    let pair = parameter.split(separator: "=", maxSplits: 1)
                    if pair.count == 2, pair[0] == "db" {
                        guard let db = Int(pair[1]), db >= 0 else { throw invalid("bad database number") }
                        database = db
                    }
                }
            }
            guard rest.hasPrefix("/") else { throw invalid("socket path must be absolute") }
            address = .unixSocket(path: String(rest))
            return
        }
        let isCluster = url.hasPrefix("redis+cluster://")
        guard url.hasPrefix("redis://") || isCluster else { throw invalid("unknown scheme") }
        var rest = Substring(url.dropFirst(isCluster ? "redis+cluster://".count : "redis://".count))
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = String(credentials[..<colon])
                username = user.isEmpty ? nil : Self.percentDecoded(user)
                password = Self.percentDecoded(String(credentials[credentials.index(after: colon)...]))
            } else if !credentials.isEmpty {
                password = Self.percentDecoded(String(credentials))
            }
        }
        var hostPort = rest
        if let slash = rest.firstIndex(of: "/") {
            hostPort = rest[..<slash]
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let number = Int(db), number >= 0 else { throw invalid("bad database number") }
                database = number
            }
        }
        if isCluster {
            guard database == 0 else { throw invalid("a Redis Cluster has only database 0") }
            clusterSeeds = try hostPort.split(separator: ",", omittingEmptySubsequences: false).map { seed throws(RedisError) in
                try Self.tcpAddress(seed, invalid: invalid)
            }
            address = clusterSeeds[0]
            return
        }
        address = try Self.tcpAddress(hostPort, invalid: invalid)
    }

    /// `host[:port]` or `[v6]:port`, port 6379 unless given.
    private static func tcpAddress(_ hostPort: Substring, invalid: (String) -> RedisError) throws(RedisError) -> Address {
        var host = String(hostPort)
        var port = 6379
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw invalid("unterminated IPv6 address") }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw invalid("bad port") }
                port = p
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            guard let p = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(p) else {
                throw invalid("bad port")
            }
            port = p
        }
        guard !host.isEmpty else { throw invalid("missing host") }
        return .tcp(host: host, port: port)
    }

    /// The address without credentials, for logs and error messages.
    public var redactedDescription: String {
        if isCluster {
            return "redis+cluster://" + clusterSeeds.map(\.description).joined(separator: ",")
        }
        switch address {
        case .tcp(let host, let port):
            return "redis://\(host):\(port)/\(database)"
        case .unixSocket(let path):
            return "unix://\(path)?db=\(database)"
        }
    }

    private static func percentDecoded(_ text: String) -> String {
        var bytes: [UInt8] = []
        let input = Array(text.utf8)
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var index = 0
        while index < input.count {
            if input[index] == UInt8(ascii: "%"), index + 2 < input.count,
                let high = hex(input[index + 1]), let low = hex(input[index + 2])
            {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(input[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
