import Foundation
import HTTPTypes
import HarrowTestSupport
import Hummingbird
import HummingbirdTesting
import Store
import Testing

@testable import APIServer

/// Ids are written in one casing, lowercase, in every answer: records, views, pages, and the
/// ids inside payloads alike.
@Suite struct IDCasingAPITests {
    @Test func everyIDInAnswersIsLowercase() async throws {
        try await APIHarness.with("api_id_casing") { harness, client in
            let (base, job, token) = try await AutomationAPITests.project(harness, client)
            let operation = try await client.send(.post, "\(base)/jobs/\(job)/operations", token: token)
            #expect(operation.status == .created)
            let repository = try await client.send(
                .post, "\(base)/repositories", token: token, json: #"{"url":"git@example.com:acme/app.git"}"#)
            let webhook = try await client.send(.post, "\(base)/webhooks", token: token, json: #"{"job_id":"\#(job)","name":"deploy"}"#)
            var answers = [operation, repository, webhook]
            for path in [
                "/v1/me", "/v1/sessions", "/v1/organizations", base, "\(base)/members", "\(base)/environments", "\(base)/tasks",
                "\(base)/jobs", "\(base)/operations", "\(base)/repositories", "\(base)/webhooks", "\(base)/activities?limit=100",
            ] {
                let answer = try await client.send(.get, path, token: token)
                #expect(answer.status == .ok, "\(path): \(answer.status)")
                answers.append(answer)
            }
            var ids = 0
            for answer in answers {
                let document = try JSONSerialization.jsonObject(with: Data(answer.body.readableBytesView))
                Self.visitStrings(document) { text in
                    guard UUID(uuidString: text) != nil else { return }
                    ids += 1
                    #expect(text == text.lowercased(), "an id in uppercase: \(text)")
                }
            }
            #expect(ids > 30, "the answers carry ids")
        }
    }

    static func visitStrings(_ value: Any, _ visit: (String) -> Void) {
        switch value {
        case let text as String: visit(text)
        case let array as [Any]: for element in array { visitStrings(element, visit) }
        case let object as [String: Any]: for element in object.values { visitStrings(element, visit) }
        default: break
        }
    }
}
