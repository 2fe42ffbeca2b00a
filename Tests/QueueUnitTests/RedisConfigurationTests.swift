import Testing

@testable import Queue

@Suite("RedisConfiguration URLs")
struct RedisConfigurationTests {
    @Test func hostPortAndDatabase() throws {
        let configuration = try RedisConfiguration(url: "redis://cache.internal:6380/3")
        #expect(configuration.address == .tcp(host: "cache.internal", port: 6380))
        #expect(configuration.database == 3)
        #expect(configuration.username == nil)
        #expect(configuration.password == nil)
    }

    @Test func defaultsForPortAndDatabase() throws {
        let configuration = try RedisConfiguration(url: "redis://localhost")
        #expect(configuration.address == .tcp(host: "localhost", port: 6379))
        #expect(configuration.database == 0)
        let trailingSlash = try RedisConfiguration(url: "redis://localhost:7000/")
        #expect(trailingSlash.address == .tcp(host: "localhost", port: 7000))
        #expect(trailingSlash.database == 0)
    }

    @Test func userAndPassword() throws {
        let configuration = try RedisConfiguration(url: "redis://app:hunter2@db.example:6379/1")
        #expect(configuration.username == "app")
        #expect(configuration.password == "hunter2")
        #expect(configuration.address == .tcp(host: "db.example", port: 6379))
        #expect(configuration.database == 1)
    }

    @Test func passwordOnly() throws {
        let configuration = try RedisConfiguration(url: "redis://:hunter2@db.example")
        #expect(configuration.username == nil)
        #expect(configuration.password == "hunter2")
        #expect(configuration.address == .tcp(host: "db.example", port: 6379))
    }

    @Test func percentEscapesInUserAndPassword() throws {
        let configuration = try RedisConfiguration(url: "redis://us%65r%3Ax:p%40ss%3Aw%2Frd%20%25@h:1/2")
        #expect(configuration.username == "user:x")
        #expect(configuration.password == "p@ss:w/rd %")
        #expect(configuration.address == .tcp(host: "h", port: 1))
        #expect(configuration.database == 2)
    }

    @Test func unescapedAtAndColonInThePassword() throws {
        // The last "@" ends the credentials and the first ":" ends the user name.
        let configuration = try RedisConfiguration(url: "redis://u:a@b:c@host:6390")
        #expect(configuration.username == "u")
        #expect(configuration.password == "a@b:c")
        #expect(configuration.address == .tcp(host: "host", port: 6390))
    }

    /// A "%" that does not start a valid escape must not eat the characters after it: either
    /// the URL is rejected, or the text is kept as written. Silently dropping characters from a
    /// password makes AUTH fail with a password nobody typed.
    @Test(arguments: ["p%zzq", "ab%4", "100%"])
    func invalidPercentEscapeNeitherDropsCharacters(password: String) {
        do {
            let configuration = try RedisConfiguration(url: "redis://:\(password)@host")
            #expect(configuration.password == password)
        } catch {
            #expect(error.code == .invalidConfiguration)
        }
    }

    @Test func ipv6Address() throws {
        let configuration = try RedisConfiguration(url: "redis://[::1]:6380/4")
        #expect(configuration.address == .tcp(host: "::1", port: 6380))
        #expect(configuration.database == 4)
        let withoutPort = try RedisConfiguration(url: "redis://:pw@[2001:db8::7]")
        #expect(withoutPort.address == .tcp(host: "2001:db8::7", port: 6379))
        #expect(withoutPort.password == "pw")
    }

    @Test func unixSocket() throws {
        let configuration = try RedisConfiguration(url: "unix:///tmp/x.sock?db=2")
        #expect(configuration.address == .unixSocket(path: "/tmp/x.sock"))
        #expect(configuration.database == 2)
        let plain = try RedisConfiguration(url: "unix:///var/run/redis/redis.sock")
        #expect(plain.address == .unixSocket(path: "/var/run/redis/redis.sock"))
        #expect(plain.database == 0)
    }

    @Test(
        "invalid URLs are rejected",
        arguments: [
            "http://localhost:6379", "rediss://localhost", "localhost:6379", "", "redis:/localhost",
            "redis://localhost:0", "redis://localhost:65536", "redis://localhost:-1", "redis://localhost:abc",
            "redis://localhost:", "redis://", "redis://:6379", "redis://user:pw@", "redis://user:pw@:6379/1",
            "redis://localhost/abc", "redis://localhost/-1", "redis://[::1", "redis://[::1]:99999",
            "unix://relative.sock", "unix:///tmp/x.sock?db=abc", "unix:///tmp/x.sock?db=-2",
        ])
    func invalidURL(url: String) {
        let error = #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test func invalidURLErrorDoesNotRepeatThePassword() {
        let error = #expect(throws: RedisError.self) {
            try RedisConfiguration(url: "redis://:TopSecret99@localhost:notaport")
        }
        #expect(error.map { !"\($0)".contains("TopSecret99") } == true)
    }

    @Test func redactedDescriptionNeverContainsThePassword() throws {
        for url in [
            "redis://:TopSecret99@localhost:6379/0", "redis://admin:TopSecret99@[::1]:6380/5",
            "redis://admin:Top%53ecret99@h",
        ] {
            let configuration = try RedisConfiguration(url: url)
            #expect(configuration.password == "TopSecret99")
            #expect(!configuration.redactedDescription.contains("TopSecret99"), "\(url)")
            #expect(!configuration.redactedDescription.contains("Top%53ecret99"))
        }
        let configuration = try RedisConfiguration(url: "redis://admin:TopSecret99@cache:6380/5")
        #expect(configuration.redactedDescription == "redis://cache:6380/5")
        #expect(try RedisConfiguration(url: "unix:///tmp/r.sock?db=3").redactedDescription == "unix:///tmp/r.sock?db=3")
    }

    @Test func initializerKeepsAtLeastOnePooledConnection() {
        #expect(RedisConfiguration(poolSize: 0).poolSize == 1)
        #expect(RedisConfiguration(poolSize: 4).poolSize == 4)
    }
}
