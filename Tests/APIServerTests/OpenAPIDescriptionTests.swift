import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Prometheus
import Queue
import Store
import Testing

@testable import APIServer

/// The OpenAPI description in the repository is the one the server serves, and it names
/// exactly the routes the router has.
@Suite struct OpenAPIDescriptionTests {
    /// `METHOD /path` for every operation under `paths:`. The description keeps one path per
    /// line at two spaces and one method per line at four, which this reads; schemathesis (in
    /// `scripts/test`) checks the document as OpenAPI.
    static func describedRoutes(_ yaml: String) -> Set<String> {
        var routes: Set<String> = []
        var inPaths = false
        var path: String?
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix(" "), !line.isEmpty {
                inPaths = line == "paths:"
                continue
            }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                path = String(line.dropFirst(2).dropLast())
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let path {
                let key = line.dropFirst(4).prefix { $0 != ":" }
                if ["get", "put", "post", "patch", "delete", "head", "options"].contains(key) {
                    routes.insert("\(key.uppercased()) \(path)")
                }
            }
        }
        return routes
    }

    @Test func everyRouteIsDescribedAndEveryDescribedRouteExists() async throws {
        let database = PostgresClient(
            configuration: .init(host: "127.0.0.1", username: "nobody", password: nil, database: nil, tls: .disable))
        let redis = try TestRedis.makeClient()
        let router = buildRouter(
            APIConfiguration(),
            dependencies: APIDependencies(
                database: database, redis: redis, keyring: SecretKeyring(current: .generate()), metrics: PrometheusCollectorRegistry()),
            logger: TestRedis.logger("harrow.test.openapi"))
        // The web app's pages and assets are HTML and files, not API operations.
        let app = Router(context: APIContext.self)
        WebAppRoutes().addRoutes(to: app)
        let pages = Set(app.routes.map { "\($0.method) \($0.path)" })
        #expect(pages.contains("GET /") && pages.count == WebAppRoutes.pages.count + 1)
        let served = Set(router.routes.map { "\($0.method) \($0.path)" }).subtracting(pages)
        let described = Self.describedRoutes(String(decoding: PackageResources.openapi_yaml, as: UTF8.self))

        await redis.close()

        #expect(served.count > 100)
        #expect(served.subtracting(described).sorted() == [], "routes the description lacks")
        #expect(described.subtracting(served).sorted() == [], "described routes the router lacks")
    }

    @Test func theReaderFindsPathsAndMethodsOnly() {
        let yaml = """
            openapi: 3.1.0
            paths:
              /a/{id}:
                parameters:
                  - { $ref: "#/components/parameters/Id" }
                get:
                  responses: {}
                delete:
                  responses: {}
              /b:
                post:
                  requestBody:
                    content:
                      application/json:
                        schema:
                          properties:
                            get: { type: string }
            components:
              schemas:
                patch: {}
            """
        #expect(Self.describedRoutes(yaml) == ["GET /a/{id}", "DELETE /a/{id}", "POST /b"])
    }

    @Test func theServerServesTheDescriptionAndTurnsAwayPlainGetsOfTheWebSocket() async throws {
        try await APIHarness.with("openapi_served") { _, client in
            let description = try await client.execute(uri: "/openapi.yaml", method: .get)
            #expect(description.status == .ok)
            #expect(description.headers[.contentType] == "application/yaml")
            #expect(Array(description.body.readableBytesView) == PackageResources.openapi_yaml)

            let plain = try await client.execute(uri: "/ws", method: .get)
            #expect(plain.status.code == 426)
            #expect(plain.headers[.upgrade] == "websocket")
            #expect(plain.headers[.contentType] == "application/problem+json")
        }
    }
}
