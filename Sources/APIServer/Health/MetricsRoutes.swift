import Hummingbird
import NIOCore
import Prometheus

/// `GET /metrics`: Prometheus text of the process's registry, with the queue depths brought up
/// to date (at most once per cache age). Served on the metrics listener only.
struct MetricsRoutes: Sendable {
    let registry: PrometheusCollectorRegistry
    let depths: QueueDepths

    func addRoutes(to router: some RouterMethods<BasicRequestContext>) {
        router.get("metrics") { _, context -> Response in
            await depths.refresh(logger: context.logger)
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }
}
