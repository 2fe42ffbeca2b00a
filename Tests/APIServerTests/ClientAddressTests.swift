import Testing

@testable import APIServer

/// Which address a request counts against: `X-Forwarded-For` read only through trusted proxies,
/// ports some proxies append taken off, and IPv6 clients counted per /64.
@Suite struct ClientAddressTests {
    let proxies = try! TrustedProxies(["10.0.0.0/8", "fd00::/8"])

    @Test func theClientIsTheRightmostHopNoTrustedProxyAdded() {
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["198.51.100.1, 203.0.113.7, 10.0.0.9"]) == "203.0.113.7")
        // An untrusted peer's header is its own invention.
        #expect(proxies.clientAddress(peer: "203.0.113.9", forwardedFor: ["198.51.100.1"]) == "203.0.113.9")
        // Garbage where an address should be: the proxy is all that is known.
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["not-an-address"]) == "10.0.0.2")
    }

    @Test func portsThatProxiesAppendAreTakenOff() {
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["203.0.113.7:51234"]) == "203.0.113.7")
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["[2001:db8::7]:51234"]) == "2001:db8::7")
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: ["203.0.113.7:port"]) == "10.0.0.2")
        #expect(TrustedProxies.hopAddress("2001:db8::7") == "2001:db8::7")
        #expect(TrustedProxies.hopAddress("[2001:db8::7]x") == nil)
    }

    @Test func anIPv6ClientIsCountedPerSlash64() {
        let first = AddressBucket.of("2001:db8:aa:bb:1:2:3:4")
        #expect(first == "2001:db8:aa:bb::/64")
        #expect(AddressBucket.of("2001:db8:aa:bb:ffff::1") == first)
        #expect(AddressBucket.of("2001:db8:aa:bc::1") != first)
        #expect(AddressBucket.of("203.0.113.7") == "203.0.113.7")
        #expect(AddressBucket.of("::ffff:203.0.113.7") == "203.0.113.7")
        #expect(AddressBucket.of(nil) == "unknown")
    }
}
