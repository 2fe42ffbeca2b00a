import HTTPTypes
import Hummingbird
import NIOCore
import PostgresNIO
import Prometheus
import Queue

/// `/healthz` (the process answers), `/readyz` (Postgres and Redis answer) and `/metrics`
/// (Prometheus text format).
struct HealthRoutes: Sendable {
    let database: PostgresClient
    let redis: RedisClient
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
            router.get("metrics") { _, _ -> Response in
                var bytes: [UInt8] = []
                metrics.emit(into: &bytes)
                return Response(
                    status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
            }
        }
    }
}
