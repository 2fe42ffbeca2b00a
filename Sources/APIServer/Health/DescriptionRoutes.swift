import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /openapi.yaml`, the API's OpenAPI 3.1 description (kept in the repository next to the
/// routes), and `GET /ws` without a WebSocket upgrade, which gets a 426 pointing at the upgrade.
struct DescriptionRoutes: Sendable {
    static let openAPIMediaType = "application/yaml"

    func addRoutes(to router: some RouterMethods<APIContext>) {
        router.get("openapi.yaml") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: Self.openAPIMediaType],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: PackageResources.openapi_yaml)))
        }
        router.get("ws") { _, _ -> HTTPResponse.Status in
            throw Problem(
                type: Problem.base + "upgrade-required", title: "Upgrade required", status: 426,
                detail: "GET /ws is a WebSocket: connect with an Upgrade: websocket request")
        }
    }
}
