import HarrowTestSupport
import Logging
import ServiceLifecycle
import Testing

@testable import Queue

/// `RedisClient` as a service: the group that runs it closes its connections when it ends,
/// gracefully or because another service failed.
@Suite("Redis client service")
struct RedisClientServiceTests {
    struct Failure: Error {}

    /// Fails once the client has connected.
    struct FailingService: Service {
        let client: RedisClient
        func run() async throws {
            for _ in 0..<4 { try await client.send("PING", []) }
            throw Failure()
        }
    }

    static func connectedClients(_ observer: RedisClient) async throws -> Int {
        let info = try await observer.send("INFO", ["clients"]).string ?? ""
        let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("connected_clients:") }
        return Int(line?.dropFirst("connected_clients:".count) ?? "") ?? -1
    }

    @Test func theGroupClosesTheClientWhenAnotherServiceThrows() async throws {
        try await RedisServerProcess.withServer { server in
            let observer = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            let client = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            let alone = try await Self.connectedClients(observer)
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: [.init(service: client), .init(service: FailingService(client: client))], logger: TestRedis.logger()))
            await #expect(throws: Failure.self) { try await group.run() }
            try await eventually("the client's connections are closed") { try await Self.connectedClients(observer) == alone }
            await observer.close()
        }
    }
}
