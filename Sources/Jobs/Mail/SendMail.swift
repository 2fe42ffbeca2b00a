import Foundation
import Store
import WorkerPool

/// `send-mail` (queue `mail`): renders a named template and sends it over SMTP. Payload:
/// `{"template": "<name>", "to": "<address>", "data": {"<key>": "<text>", …}}`; the templates
/// and their keys are ``MailTemplate/catalog``.
public struct SendMail: Job, Hashable {
    public static let name = "send-mail"
    public static let queue = "mail"
    /// A mail server that is down or deferring gets an hour and a half of retries.
    public static var retryPolicy: RetryPolicy {
        RetryPolicy(maxAttempts: 10, backoff: .exponential(base: .seconds(10), maximum: .seconds(1800)))
    }
    public static var timeout: Duration { .seconds(120) }

    public var template: String
    public var to: String
    public var data: [String: String]

    public init(template: String, to: String, data: [String: String]) {
        self.template = template
        self.to = to
        self.data = data
    }
}

extension SendMail {
    /// An outbox entry for this mail, to enqueue in the transaction of the change that asks for
    /// it; its id becomes the job id, from which the Message-ID derives.
    public func outboxJob() throws -> OutboxJob {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return OutboxJob(queue: Self.queue, type: Self.name, payload: String(decoding: try encoder.encode(self), as: UTF8.self))
    }
}
