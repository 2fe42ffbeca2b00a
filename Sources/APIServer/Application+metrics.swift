import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Queue

/// `GET /metrics` on a listener of its own (``APIConfiguration/metricsHost`` and
/// ``APIConfiguration/metricsPort``, loopback by default), apart from the API's: a scrape reads
/// Redis and Postgres and names every queue, which is for the operator's Prometheus, not for
/// the API's clients. It answers nothing else, holds few connections (16), and has the API's
/// timeouts. Without `dependencies.metrics` it answers 404.
public func buildMetricsApplication(
    _ configuration: APIConfiguration, dependencies: APIDependencies, logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router()
    if let registry = dependencies.metrics {
        let jobQueue = JobQueue(redis: dependencies.redis, options: JobQueue.Options(keyPrefix: configuration.keyPrefix))
        let depths = QueueDepths(
            jobQueue: jobQueue, database: dependencies.database, registry: registry, maxAge: configuration.metricsCacheAge)
        MetricsRoutes(registry: registry, depths: depths).addRoutes(to: router)
    }
    let http1 = HTTP1Channel.Configuration(idleTimeout: TimeAmount(configuration.idleTimeout))
    return Application(
        router: router,
        server: .timed(idleTimeout: configuration.idleTimeout, headerTimeout: configuration.headerTimeout) { responder in
            HTTP1Channel(responder: responder, configuration: http1)
        },
        configuration: ApplicationConfiguration(
            address: .hostname(configuration.metricsHost, port: configuration.metricsPort), serverName: "harrow",
            availableConnectionsDelegate: .maximum(16, logger: logger)),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) }, logger: logger)
}
