import Foundation
import Store

/// The payload of a `send-mail` job (queue `mail`): a named template, the recipient and the
/// template's values. The worker's handler renders and sends it.
struct MailJob: Codable, Sendable {
    static let type = "send-mail"
    static let queue = "mail"

    var template: String
    var to: String
    var data: [String: String]

    /// An outbox entry for this mail; its id is the job id, from which the Message-ID derives.
    func outboxJob() throws -> OutboxJob {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return OutboxJob(queue: Self.queue, type: Self.type, payload: String(decoding: try encoder.encode(self), as: UTF8.self))
    }
}
