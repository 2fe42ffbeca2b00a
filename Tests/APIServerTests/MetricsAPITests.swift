import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import NIOCore
import Prometheus
import Queue
import Store
import Testing

@testable import APIServer

/// `/metrics`: its own listener, and queue depths read at most once per cache age.
@Suite struct MetricsAPITests {
    static func gauge(_ text: String, queue: String, state: String) -> Double? {
        let prefix = #"harrow_queue_jobs{queue="\#(queue)",state="\#(state)"} "#
        return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.dropFirst(prefix.count)) }
    }

    /// Runs the metrics listener of `harness`'s configuration, on a free port, for `body`.
    static func withMetricsListener(
        _ harness: APIHarness, registry: PrometheusCollectorRegistry, _ body: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        var configuration = harness.configuration
        configuration.metricsPort = 0
        let app = buildMetricsApplication(
            configuration,
            dependencies: APIDependencies(database: harness.database, redis: harness.redis, keyring: harness.keyring, metrics: registry),
            logger: harness.logger)
        try await app.test(.live) { client in try await body(client) }
    }

    /// `/metrics` on its own listener: the API's request metrics and the queue depths.
    @Test func theMetricsListenerServesRequestsAndQueueDepths() async throws {
        #expect(APIConfiguration().metricsHost == "127.0.0.1", "private by default")
        let registry = PrometheusCollectorRegistry()
        try await APIHarness.with("api_metrics", metrics: registry) { harness, client in
            let queue = JobQueue(redis: harness.redis, options: JobQueue.Options(keyPrefix: harness.configuration.keyPrefix))
            _ = try await queue.enqueue(type: "noop", queue: "work", payload: ByteBuffer(string: "{}"))
            #expect(try await client.send(.get, "/healthz").status == .ok)
            #expect(try await client.send(.get, "/v1/me").status == .unauthorized)
            try await Self.withMetricsListener(harness, registry: registry) { metrics in
                let response = try await metrics.send(.get, "/metrics")
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                #expect(Self.gauge(text, queue: "work", state: "ready") == 1, "\(text.prefix(2000))")
                #expect(text.contains("harrow_outbox_jobs 0"))
                #expect(text.contains("hb_requests") && text.contains(#"http_route="/healthz""#))
                #expect(try await metrics.send(.get, "/healthz").status == .notFound, "the metrics listener serves /metrics only")
            }
            try await TestRedis.deleteKeys(prefix: harness.configuration.keyPrefix, on: harness.redis)
        }
    }

    /// A burst of scrapes reads Redis and Postgres once: a job enqueued after the first scrape
    /// is not counted until the cache's age has passed.
    @Test func scrapesWithinTheCacheAgeReuseTheQueueDepths() async throws {
        let registry = PrometheusCollectorRegistry()
        try await APIHarness.with("api_metrics_cache", configure: { $0.metricsCacheAge = .seconds(3600) }, metrics: registry) {
            harness, _ in
            try await Self.withMetricsListener(harness, registry: registry) { client in
                let queue = JobQueue(redis: harness.redis, options: JobQueue.Options(keyPrefix: harness.configuration.keyPrefix))
                _ = try await queue.enqueue(type: "noop", queue: "work", payload: ByteBuffer(string: "{}"))
                let first = try await client.send(.get, "/metrics")
                #expect(first.status == .ok)
                #expect(Self.gauge(String(buffer: first.body), queue: "work", state: "ready") == 1)

                _ = try await queue.enqueue(type: "noop", queue: "work", payload: ByteBuffer(string: "{}"))
                for _ in 0..<3 {
                    let again = try await client.send(.get, "/metrics")
                    #expect(Self.gauge(String(buffer: again.body), queue: "work", state: "ready") == 1, "read again within the cache age")
                }
                try await TestRedis.deleteKeys(prefix: harness.configuration.keyPrefix, on: harness.redis)
            }
        }
    }

    /// The API's listener does not answer `/metrics`, even with a registry to serve.
    @Test func theAPIListenerDoesNotServeMetrics() async throws {
        try await APIHarness.with("api_metrics_private", metrics: PrometheusCollectorRegistry()) { _, client in
            let response = try await client.send(.get, "/metrics")
            #expect(response.status == .notFound)
        }
    }
}
