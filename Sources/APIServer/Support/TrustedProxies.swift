import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The reverse proxies whose `X-Forwarded-For` the server believes (`--trusted-proxies`): a
/// request from one of them is from the address the proxies name, read right to left past the
/// trusted hops; a request from anywhere else is from its peer, whatever it claims. Without any,
/// the header is ignored, so nobody can choose their own address for the rate limits.
public struct TrustedProxies: Sendable {
    /// An address range, `10.0.0.0/8`, `fd00::/8` or a single address.
    struct Network: Sendable, Hashable {
        var bytes: [UInt8]
        var prefixLength: Int

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var remaining = prefixLength
            for (index, byte) in bytes.enumerated() where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                guard byte & mask == address[index] & mask else { return false }
                remaining -= bits
            }
            return true
        }
    }

    let networks: [Network]

    /// No proxy is trusted: `X-Forwarded-For` is ignored.
    public static let none = TrustedProxies(networks: [])

    init(networks: [Network]) {
        self.networks = networks
    }

    /// Proxies from specs like `127.0.0.1`, `10.0.0.0/8`, `::1`; throws for anything else.
    public init(_ specs: [String]) throws(TrustedProxyError) {
        var networks: [Network] = []
        for spec in specs.flatMap({ $0.split(separator: ",") }).map({ $0.trimmingCharacters(in: .whitespaces) }) where !spec.isEmpty {
            let parts = spec.split(separator: "/", maxSplits: 1)
            guard let bytes = Self.addressBytes(String(parts[0])) else { throw TrustedProxyError(spec: spec) }
            var length = bytes.count * 8
            if parts.count == 2 {
                guard let given = Int(parts[1]), (0...length).contains(given) else { throw TrustedProxyError(spec: spec) }
                length = given
            }
            networks.append(Network(bytes: bytes, prefixLength: length))
        }
        self.networks = networks
    }

    /// Whether any proxy is trusted.
    public var isEmpty: Bool { networks.isEmpty }

    /// The client's address for a request from `peer` carrying `forwardedFor` (the
    /// `X-Forwarded-For` values in order).
    public func clientAddress(peer: String?, forwardedFor: [String]) -> String? {
        guard let peer, isTrusted(peer) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() {
            guard let address = Self.hopAddress(hop) else { return peer }
            if !isTrusted(address) { return address }
        }
        return hops.first.flatMap(Self.hopAddress) ?? peer
    }

    /// A hop's address without the port some proxies append (`203.0.113.7:51234`,
    /// `[2001:db8::7]:51234`); `nil` when it is no address.
    static func hopAddress(_ hop: String) -> String? {
        if addressBytes(hop) != nil { return hop }
        var host = Substring(hop)
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            guard host[host.index(after: close)...].hasPrefix(":") || host.index(after: close) == host.endIndex else { return nil }
            host = host[host.index(after: host.startIndex)..<close]
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
            guard host[host.index(after: colon)...].allSatisfy(\.isASCII), UInt16(host[host.index(after: colon)...]) != nil else {
                return nil
            }
            host = host[..<colon]
        } else {
            return nil
        }
        return addressBytes(String(host)) != nil ? String(host) : nil
    }

    func isTrusted(_ address: String) -> Bool {
        guard let bytes = Self.addressBytes(address) else { return false }
        return networks.contains { $0.contains(bytes) }
    }

    /// The address's 4 or 16 bytes; an IPv4-mapped IPv6 address as its IPv4 bytes.
    static func addressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF { return Array(bytes[12...]) }
        return bytes
    }
}

/// A `--trusted-proxies` entry that is no address or range.
public struct TrustedProxyError: Error, Sendable, CustomStringConvertible {
    public var spec: String
    public var description: String { "not an IP address or CIDR range: \(spec)" }
}
