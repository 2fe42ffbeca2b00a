import Foundation
import NIOSSL
import PostgresNIO

/// How to reach Postgres, parsed from a `DATABASE_URL`:
/// `postgres://user:password@host:port/database?sslmode=disable|prefer|require`, or a Unix
/// socket with `postgres://user@/database?host=/var/run/postgresql`.
public struct DatabaseConfiguration: Sendable, Hashable {
    public enum TLSMode: String, Sendable, Hashable {
        case disable, prefer, require
    }

    public var host: String
    public var port: Int
    /// A directory holding the server's socket, or the socket file itself; replaces host/port.
    public var unixSocketPath: String?
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    /// Most connections the pool opens.
    public var maximumConnections: Int

    public init(
        host: String = "127.0.0.1", port: Int = 5432, unixSocketPath: String? = nil, username: String = "postgres",
        password: String? = nil, database: String = "harrow", tls: TLSMode = .prefer, maximumConnections: Int = 20
    ) {
        self.host = host
        self.port = port
        self.unixSocketPath = unixSocketPath
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.maximumConnections = maximumConnections
    }

    /// Parses a `postgres://` or `postgresql://` URL. Percent-escapes in the user, password and
    /// database are decoded. Errors never repeat the password.
    public init(url: String) throws {
        func invalid(_ reason: String) -> StoreError {
            StoreError(.invalid, "invalid DATABASE_URL \(Self.redact(url)): \(reason)")
        }
        var rest = Substring(url)
        if rest.hasPrefix("postgres://") {
            rest = rest.dropFirst("postgres://".count)
        } else if rest.hasPrefix("postgresql://") {
            rest = rest.dropFirst("postgresql://".count)
        } else {
            throw invalid("the scheme must be postgres:// or postgresql://")
        }
        var query = Substring("")
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path = Substring("")
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        self.init()
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                username = try Self.decode(credentials[..<colon], invalid("bad escape in the user"))
                password = try Self.decode(credentials[credentials.index(after: colon)...], invalid("bad escape in the password"))
            } else {
                username = try Self.decode(credentials, invalid("bad escape in the user"))
            }
        }
        if !rest.isEmpty {
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]") else { throw invalid("unclosed [ in the host") }
                host = String(rest[rest.index(after: rest.startIndex)..<close])
                rest = rest[rest.index(after: close)...]
                if rest.hasPrefix(":") {
                    guard let value = Int(rest.dropFirst()) else { throw invalid("the port is not a number") }
                    port = value
                }
            } else if let colon = rest.lastIndex(of: ":") {
                host = String(rest[..<colon])
                guard let value = Int(rest[rest.index(after: colon)...]) else { throw invalid("the port is not a number") }
                port = value
            } else {
                host = String(rest)
            }
        }
        guard (1...65535).contains(port) else { throw invalid("the port must be 1-65535") }
        if !path.isEmpty { database = try Self.decode(path, invalid("bad escape in the database")) }
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1)
            let key = String(parts[0])
            let value = parts.count > 1 ? try Self.decode(parts[1], invalid("bad escape in \(key)")) : ""
            switch key {
            case "sslmode":
                switch value {
                case "disable": tls = .disable
                case "allow", "prefer": tls = .prefer
                case "require", "verify-ca", "verify-full": tls = .require
                default: throw invalid("unknown sslmode \(value) (disable, prefer or require)")
                }
            case "host":
                unixSocketPath = value
            case "pool_max", "max_connections":
                guard let count = Int(value), count >= 1 else { throw invalid("\(key) must be a positive number") }
                maximumConnections = count
            default:
                throw invalid("unknown parameter \(key)")
            }
        }
    }

    /// The URL with its password replaced, for logs and errors.
    public var redactedDescription: String {
        let user = password == nil ? username : "\(username):***"
        let location = unixSocketPath.map { "?host=\($0)" } ?? ""
        return "postgres://\(user)@\(unixSocketPath == nil ? "\(host):\(port)" : "")/\(database)\(location)"
    }

    /// postgres-nio's configuration for a pooled client.
    public func clientConfiguration() -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let unixSocketPath {
            let socket = unixSocketPath.hasSuffix(".s.PGSQL.\(port)") ? unixSocketPath : "\(unixSocketPath)/.s.PGSQL.\(port)"
            configuration = .init(unixSocketPath: socket, username: username, password: password, database: database)
        } else {
            let tlsConfiguration = TLSConfiguration.makeClientConfiguration()
            let tls: PostgresClient.Configuration.TLS =
                switch self.tls {
                case .disable: .disable
                case .prefer: .prefer(tlsConfiguration)
                case .require: .require(tlsConfiguration)
                }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    private static func decode(_ text: Substring, _ error: @autoclosure () -> StoreError) throws -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%") {
                guard utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) else { throw error() }
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func redact(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].lastIndex(of: "@") else { return url }
        let credentials = url[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}
