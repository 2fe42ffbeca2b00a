import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An IPv4 or IPv6 address as its bytes, and whether it is one of the public internet's.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 (IPv6), in network order.
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// The address of a `sockaddr_in` or `sockaddr_in6`.
    init?(_ socketAddress: UnsafeMutablePointer<sockaddr>?) {
        guard let socketAddress else { return nil }
        switch Int32(socketAddress.pointee.sa_family) {
        case AF_INET:
            let address = socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            self.init(bytes: withUnsafeBytes(of: address) { Array($0) })
        case AF_INET6:
            let address = socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            self.init(bytes: withUnsafeBytes(of: address) { Array($0) })
        default:
            return nil
        }
    }

    public var isIPv4: Bool { bytes.count == 4 }

    /// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or
    /// 6to4 (`2002:aabb:ccdd::`) IPv6 address: where a connection to it ends up.
    var embeddedIPv4: IPAddress? {
        guard bytes.count == 16 else { return nil }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
            return IPAddress(bytes: Array(bytes[12..<16]))
        }
        if bytes[0..<12] == [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] { return IPAddress(bytes: Array(bytes[12..<16])) }
        if bytes[0] == 0x20 && bytes[1] == 0x02 { return IPAddress(bytes: Array(bytes[2..<6])) }
        return nil
    }

    /// Whether the address is of the public internet: not private (RFC 1918, unique local),
    /// loopback, link-local, shared (CGNAT), unspecified, multicast, documentation, benchmarking
    /// or otherwise reserved.
    public var isPublic: Bool {
        if let embedded = embeddedIPv4 { return embedded.isPublic }
        let b = bytes
        if isIPv4 {
            switch (b[0], b[1], b[2]) {
            case (0, _, _), (10, _, _), (127, _, _): return false
            case (100, 64...127, _): return false
            case (169, 254, _): return false
            case (172, 16...31, _): return false
            case (192, 0, 0), (192, 0, 2), (192, 88, 99), (192, 168, _): return false
            case (198, 18...19, _), (198, 51, 100), (203, 0, 113): return false
            case (224...255, _, _): return false
            default: return true
            }
        }
        if b.allSatisfy({ $0 == 0 }) { return false }  // ::
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return false }  // ::1
        if b[0..<12].allSatisfy({ $0 == 0 }) { return false }  // IPv4-compatible, deprecated
        if b[0] & 0xfe == 0xfc { return false }  // fc00::/7 unique local
        if b[0] == 0xfe && b[1] & 0xc0 == 0x80 { return false }  // fe80::/10 link-local
        if b[0] == 0xfe && b[1] & 0xc0 == 0xc0 { return false }  // fec0::/10 site-local
        if b[0] == 0xff { return false }  // multicast
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8 { return false }  // 2001:db8::/32 documentation
        if b[0] == 0x01 && b[1] == 0x00 && b[2..<8].allSatisfy({ $0 == 0 }) { return false }  // 100::/64 discard
        if b[0..<6] == [0x00, 0x64, 0xff, 0x9b, 0x00, 0x01] { return false }  // 64:ff9b:1::/48 local-use NAT64
        if b[0..<8].allSatisfy({ $0 == 0 }) && b[8] == 0xff && b[9] == 0xff { return false }  // ::ffff:0:0:0/96 SIIT
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0 { return false }  // 2001::/32 Teredo
        if b[0] == 0x3f && b[1] & 0xf0 == 0xf0 { return false }  // 3fff::/20 documentation
        return true
    }

    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
        guard inet_ntop(AF_INET6, &address, &text, socklen_t(text.count)) != nil else { return "?" }
        return String(cString: text)
    }

    /// As the host of a URL: IPv6 in brackets.
    public var urlHost: String { isIPv4 ? description : "[\(description)]" }
}
