import HTTPTypes
import Hummingbird
import NIOCore
import PostgresNIO
import Prometheus
import Queue
import Store

/// `/healthz` (the process answers), `/readyz` (Postgres and Redis answer) and `/metrics`
/// (Prometheus text format).
struct HealthRoutes: Sendable {
    let database: PostgresClient
    let redis: RedisClient
    let jobQueue: JobQueue
    let metrics: PrometheusCollectorRegistry?

    func addRoutes(to router: some RouterMethods<APIContext>) {
        router.get("healthz") { _, _ -> String in "ok\n" }
        router.get("readyz") { _, context -> String in
            var failing: [String] = []
            do {
                try await database.query("SELECT 1")
            } catch {
                context.logger.warning("readiness: Postgres does not answer", metadata: ["error": "\(error)"])
                failing.append("postgres")
            }
            do {
                _ = try await redis.send("PING", [])
            } catch {
                context.logger.warning("readiness: Redis does not answer", metadata: ["error": "\(error)"])
                failing.append("redis")
            }
            guard failing.isEmpty else { throw Problem.unavailable("not ready: \(failing.joined(separator: ", ")) unreachable") }
            return "ready\n"
        }
        if let metrics {
            router.get("metrics") { _, context -> Response in
                await recordQueueDepths(into: metrics, context: context)
                var bytes: [UInt8] = []
                metrics.emit(into: &bytes)
                return Response(
                    status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
            }
        }
    }

    /// `harrow_queue_jobs{queue,state}`
    static var queueJobs: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "harrow", metricName: "queue", unitName: "jobs", helpText: "Jobs in a queue, by state")
    }

    /// `harrow_outbox_jobs`
    static var outboxJobs: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "harrow", metricName: "outbox", unitName: "jobs", helpText: "Jobs waiting in the Postgres outbox")
    }

    /// Queue depths as gauges, read from Redis at each scrape (`harrow_queue_jobs{queue,state}`
    /// and the outbox's `harrow_outbox_jobs`). A failure leaves the last values and is logged.
    private func recordQueueDepths(into registry: PrometheusCollectorRegistry, context: APIContext) async {
        do {
            for stats in try await jobQueue.stats(queues: try await jobQueue.knownQueues()) {
                for (state, value) in [
                    ("ready", stats.ready), ("pending", stats.pending), ("delayed", stats.delayed), ("dead", stats.dead),
                ] {
                    registry.makeGauge(descriptor: Self.queueJobs, labels: [("queue", stats.queue), ("state", state)]).set(Double(value))
                }
            }
            let outbox = try await Outbox.stats(client: database, logger: context.logger)
            registry.makeGauge(descriptor: Self.outboxJobs).set(Double(outbox.depth))
        } catch {
            context.logger.warning("could not read queue depths for /metrics", metadata: ["error": "\(error)"])
        }
    }
}
