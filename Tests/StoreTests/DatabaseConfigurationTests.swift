import Testing

@testable import Store

@Suite struct DatabaseConfigurationTests {
    @Test func parsesAFullURL() throws {
        let configuration = try DatabaseConfiguration(
            url: "postgres://app:s%40cret@db.internal:6543/harrow_prod?sslmode=require&pool_max=7")
        #expect(configuration.host == "db.internal")
        #expect(configuration.port == 6543)
        #expect(configuration.username == "app")
        #expect(configuration.password == "s@cret")
        #expect(configuration.database == "harrow_prod")
        #expect(configuration.tls == .require)
        #expect(configuration.maximumConnections == 7)
        #expect(!configuration.redactedDescription.contains("s@cret"))
    }

    @Test func defaultsAndVariants() throws {
        let short = try DatabaseConfiguration(url: "postgresql://harrow@127.0.0.1/")
        #expect(short.port == 5432 && short.password == nil && short.database == "harrow" && short.tls == .prefer)
        let ipv6 = try DatabaseConfiguration(url: "postgres://u@[::1]:5433/d?sslmode=disable")
        #expect(ipv6.host == "::1" && ipv6.port == 5433 && ipv6.tls == .disable)
        let socket = try DatabaseConfiguration(url: "postgres://u@/d?host=/var/run/postgresql")
        #expect(socket.unixSocketPath == "/var/run/postgresql")
    }

    @Test(arguments: [
        "mysql://u:p@h/d", "postgres://u:topsecret@h:notaport/d", "postgres://u:topsecret@h:70000/d",
        "postgres://u:topsecret@h/d?sslmode=sometimes", "postgres://u:topsecret@h/d?colour=blue", "postgres://u:top%zzsecret@h/d",
    ])
    func rejectsBadURLsWithoutRepeatingThePassword(url: String) {
        let error = #expect(throws: StoreError.self) { try DatabaseConfiguration(url: url) }
        #expect(error?.code == .invalid)
        #expect(error?.message.contains("topsecret") == false)
    }
}
