/// The part of a client's address that rate limits count against. An IPv4 address is one
/// client; an IPv6 client is usually given a whole /64 and can pick a fresh address in it for
/// each request, so its counters are kept per /64, or the per-address limits would not hold.
enum AddressBucket {
    /// `address`'s bucket: the IPv4 address itself (also when written IPv4-mapped), `<first four groups>::/64` for IPv6,
    /// `unknown` when there is no address, and the text as given when it is none of those.
    static func of(_ address: String?) -> String {
        guard let address, !address.isEmpty else { return "unknown" }
        guard let bytes = TrustedProxies.addressBytes(address) else { return address }
        // An IPv4-mapped IPv6 address is the IPv4 client it maps.
        guard bytes.count == 16 else { return bytes.map(String.init).joined(separator: ".") }
        let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
        return groups.joined(separator: ":") + "::/64"
    }
}
