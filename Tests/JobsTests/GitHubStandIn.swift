import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// A local HTTP server that speaks GitHub's commit-status endpoint
/// (`POST /repos/{owner}/{repo}/statuses/{sha}`): it records each request and answers with the
/// next scripted answer (201 when none is left). GitHub itself is out of reach here. With
/// another `route` it is a webhook receiver, for `post-webhook`.
actor GitHubStandIn {
    struct Recorded: Sendable {
        var path: String
        var headers: HTTPFields
        var body: [String: String]
        /// The body as received (what a signature covers).
        var raw: [UInt8]
        var receivedAt: Date
    }

    struct Answer: Sendable {
        var status: HTTPResponse.Status
        var headers: HTTPFields = [:]
        var body: String = "{}"
    }

    private(set) var requests: [Recorded] = []
    private var answers: [Answer] = []

    func script(_ answers: [Answer]) {
        self.answers = answers
    }

    func handle(path: String, headers: HTTPFields, body: ByteBuffer) -> Answer {
        let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
        requests.append(
            Recorded(
                path: path, headers: headers, body: object.compactMapValues { $0 as? String }, raw: Array(body.readableBytesView),
                receivedAt: Date()))
        return answers.isEmpty ? Answer(status: .created, body: #"{"id":1,"state":"pending"}"#) : answers.removeFirst()
    }

    /// Runs the stand-in on a free loopback port for the duration of `body`, which gets its URL.
    static func with<T: Sendable>(
        route: String = "repos/:owner/:repo/statuses/:sha", _ body: @Sendable (GitHubStandIn, String) async throws -> T
    ) async throws -> T {
        let standIn = GitHubStandIn()
        let router = Router()
        router.post(RouterPath(route)) { request, _ -> Response in
            let received = try await request.body.collect(upTo: 1 << 20)
            let answer = await standIn.handle(path: request.uri.path, headers: request.headers, body: received)
            var headers = answer.headers
            headers[.contentType] = "application/json"
            return Response(status: answer.status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: answer.body)))
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "harrow.test.github")
        logger.logLevel = .warning
        let app = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            defer { group.cancelAll() }
            return try await body(standIn, "http://127.0.0.1:\(port)")
        }
    }
}
