import Foundation
import JobContracts
import Logging
import PostgresNIO
import Store
import WorkerPool

/// Runs `send-mail` jobs: renders the template, builds a `multipart/alternative` message whose
/// `Message-ID` comes from the job id, and sends it over SMTP. A 5xx reply or an invalid address
/// is permanent (the dead letter carries the server's reply); 4xx replies, timeouts and refused
/// connections retry. A mail already sent for this job id is not sent again.
public struct MailSender: Sendable {
    let client: SMTPClient
    let from: MailAddress
    let database: PostgresClient
    let links: MailLinks

    public init(client: SMTPClient, from: MailAddress, database: PostgresClient, links: MailLinks) {
        self.client = client
        self.from = from
        self.database = database
        self.links = links
    }

    /// Registers the handler for ``SendMail``.
    public func register(in registry: inout JobRegistry) throws {
        try registry.register(SendMail.self) { job, context in try await run(job, context: context) }
    }

    func run(_ job: SendMail, context: JobContext) async throws {
        let logger = context.logger
        let message = try await message(for: job, jobID: context.id)
        switch try await JobRuns.claim(context.id, type: SendMail.name, staleAfter: Self.claimLifetime, client: database, logger: logger) {
        case .done:
            logger.info("send-mail: this job's mail was sent already; not again")
            return
        case .busy:
            throw JobFailure.retry(after: .seconds(60), "send-mail: another delivery of this job is sending it")
        case .claimed:
            break
        }
        do {
            try await client.send(message, envelopeFrom: from, recipients: message.to)
        } catch {
            // Not sent: a retry may send it.
            try? await JobRuns.release(context.id, client: database, logger: logger)
            if let error = error as? SMTPError, error.isPermanent { throw JobFailure.permanent("send-mail: \(error)") }
            throw error
        }
        // Recorded after the server took it: a crash in between sends it again once the claim
        // is stale, with the same Message-ID, so receivers can tell.
        try await JobRuns.finish(context.id, outcome: "sent", client: database, logger: logger)
        logger.info("send-mail: sent", metadata: ["template": "\(job.template)", "message_id": "\(message.messageID)"])
    }

    /// How long a delivery's claim on a job holds off others: longer than a send may take.
    static let claimLifetime: Duration = .seconds(300)

    /// The message of `job`; what cannot become a valid message is permanent.
    func message(for job: SendMail, jobID: String) async throws -> MailMessage {
        let recipient: MailAddress
        do {
            recipient = try MailAddress(job.to.trimmingCharacters(in: .whitespaces))
        } catch {
            throw JobFailure.permanent("send-mail: the recipient is not a valid address: \(error)")
        }
        var data = job.data
        if let link = job.signedLink { data["link"] = try await links.url(for: link, recipient: job.to) }
        let rendered: MailTemplate.Rendered
        do {
            rendered = try MailTemplate.render(job.template, data: data)
        } catch {
            throw JobFailure.permanent("send-mail: \(error)")
        }
        return MailMessage(
            from: from, to: [recipient], subject: rendered.subject, textBody: rendered.text, htmlBody: rendered.html,
            messageID: Self.messageID(jobID: jobID, domain: from.domain))
    }

    /// `<job id>@<sender's domain>`: the same for every attempt of a job, different across jobs.
    static func messageID(jobID: String, domain: Substring) -> String {
        let safe = jobID.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") }
        return "\(String(String.UnicodeScalarView(safe)))@\(domain)"
    }
}
