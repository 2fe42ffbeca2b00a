import HTTPTypes
import Hummingbird
import PostgresNIO
import Queue

/// `/healthz` (the process answers) and `/readyz` (Postgres and Redis answer). `/metrics` is
/// not here: it has a listener of its own (``MetricsRoutes``).
struct HealthRoutes: Sendable {
    let database: PostgresClient
    let redis: RedisClient

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
    }
}
