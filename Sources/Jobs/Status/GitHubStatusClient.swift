import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Posts commit statuses with GitHub's REST API (`POST /repos/{owner}/{repo}/statuses/{sha}`),
/// at `https://api.github.com` or a GitHub Enterprise server's `/api/v3`.
public struct GitHubStatusClient: Sendable {
    /// A commit status as GitHub takes it.
    public struct CommitStatus: Sendable, Hashable, Encodable {
        public enum State: String, Sendable, Hashable, Encodable {
            case pending, success, failure, error
        }

        public var state: State
        public var targetURL: String?
        public var description: String
        public var context: String

        enum CodingKeys: String, CodingKey {
            case state
            case targetURL = "target_url"
            case description, context
        }
    }

    /// What GitHub answered, when it was not a 201.
    public struct Refusal: Error, Sendable, CustomStringConvertible {
        public var status: Int
        /// GitHub's `message`, or the start of the body.
        public var message: String
        /// When the token may be used again, from `Retry-After` or, with no requests left,
        /// `X-RateLimit-Reset`; `nil` when the answer says nothing of it.
        public var retryAfter: Duration?

        public var description: String { "GitHub answered \(status): \(message)" }
    }

    let apiURL: String
    let httpClient: HTTPClient
    let timeout: TimeAmount

    /// - Parameters:
    ///   - apiURL: GitHub's API root, `GITHUB_API_URL` (default `https://api.github.com`).
    ///   - timeout: The deadline of a request, connecting included: the client retries a refused
    ///     connection until then.
    public init(apiURL: String = "https://api.github.com", httpClient: HTTPClient = .shared, timeout: TimeAmount = .seconds(20)) {
        self.apiURL = apiURL.hasSuffix("/") ? String(apiURL.dropLast()) : apiURL
        self.httpClient = httpClient
        self.timeout = timeout
    }

    /// Posts `status` for commit `sha` of `repository`; throws ``Refusal`` for any answer but
    /// 201, and the HTTP client's errors for network trouble.
    public func post(_ status: CommitStatus, repository: GitHubRepositoryName, sha: String, token: String) async throws {
        var request = HTTPClientRequest(url: "\(apiURL)/repos/\(repository.owner)/\(repository.name)/statuses/\(sha)")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Accept", value: "application/vnd.github+json")
        request.headers.add(name: "X-GitHub-Api-Version", value: "2022-11-28")
        request.headers.add(name: "User-Agent", value: "harrow")
        request.headers.add(name: "Content-Type", value: "application/json")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        request.body = .bytes(ByteBuffer(bytes: try encoder.encode(status)))
        let response = try await httpClient.execute(request, timeout: timeout)
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status != .created else { return }
        throw Refusal(
            status: Int(response.status.code), message: Self.message(Data(body.readableBytesView)),
            retryAfter: Self.retryAfter(response.headers))
    }

    static func message(_ body: Data) -> String {
        if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any], let message = object["message"] as? String {
            return String(message.prefix(500))
        }
        return String(decoding: body.prefix(500), as: UTF8.self)
    }

    /// `Retry-After` (seconds) first, else `X-RateLimit-Reset` (epoch seconds) when
    /// `X-RateLimit-Remaining` is 0, as GitHub documents for primary and secondary limits.
    static func retryAfter(_ headers: HTTPHeaders, now: Date = Date()) -> Duration? {
        if let text = headers.first(name: "Retry-After"), let seconds = Int(text.trimmingCharacters(in: .whitespaces)), seconds >= 0 {
            return .seconds(seconds)
        }
        if headers.first(name: "X-RateLimit-Remaining") == "0", let text = headers.first(name: "X-RateLimit-Reset"),
            let reset = Double(text)
        {
            let seconds = max(1, reset - now.timeIntervalSince1970)
            return .milliseconds(Int64((seconds * 1000).rounded(.up)))
        }
        return nil
    }
}
