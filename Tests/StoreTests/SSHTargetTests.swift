import Testing

@testable import Store

@Suite struct SSHTargetTests {
    @Test func parsesUserHostAndPort() throws {
        let plain = try SSHTarget("ssh://deploy@build.example.com")
        #expect(plain.user == "deploy" && plain.host == "build.example.com" && plain.port == 22)
        let withPort = try SSHTarget("ssh://root@10.0.0.5:2222")
        #expect(withPort.host == "10.0.0.5" && withPort.port == 2222)
        let ipv6 = try SSHTarget("ssh://ci@[2001:db8::1]:2200")
        #expect(ipv6.host == "2001:db8::1" && ipv6.port == 2200)
        #expect(ipv6.description == "ssh://ci@[2001:db8::1]:2200")
        #expect(try SSHTarget("SSH://a@[::1]").port == 22)
    }

    @Test(arguments: [
        ("deploy@host", "ssh://"),
        ("ssh://host", "user is required"),
        ("ssh://@host", "user must be"),
        ("ssh://user:secret@host", "passwords"),
        ("ssh://user@host/path", "no path"),
        ("ssh://user@host?x=1", "no path"),
        ("ssh://user@host:0", "port"),
        ("ssh://user@host:65536", "port"),
        ("ssh://user@host:", "port"),
        ("ssh://user@host:22x", "port"),
        ("ssh://user@", "host is required"),
        ("ssh://user@999.1.1.1", "IPv4"),
        ("ssh://user@[::g]", "IPv6"),
        ("ssh://user@[::1", "']'"),
        ("ssh://user@bad_host", "host name"),
        ("ssh://user@-bad.example", "host name"),
        ("ssh://a@b@host", "'@'"),
        ("ssh://-oProxyCommand=x@host", "user must be"),
    ])
    func rejects(address: String, reason: String) {
        #expect {
            try SSHTarget(address)
        } throws: { error in
            let description = String(describing: error)
            return description.contains(reason) && !description.contains("secret")
        }
    }
}
