import Foundation
import HarrowTestSupport
import JobContracts
import Queue
import Store
import Testing
import WorkerPool

@testable import Jobs

/// `send-mail` on a real worker, Postgres and Redis, to a real SMTP server on loopback.
@Suite struct MailSenderTests {
    static func with(_ name: String, smtpURL: String, _ body: (JobsHarness) async throws -> Void) async throws {
        try await JobsHarness.withPlatformJobs(
            name,
            configure: { configuration in
                configuration.smtp = try SMTPConfiguration(url: smtpURL, timeout: .seconds(10))
                configuration.mailFrom = try MailAddress("noreply@harrow.example.com", displayName: "Harrow")
            }, body)
    }

    static let verify = SendMail(
        template: "verify-email", to: "ada@example.com",
        data: ["name": "Ada <Lovelace>", "link": "https://harrow.example.com/verify-email?token=abc.def"])

    @Test func aMailArrivesWithItsEnvelopeHeadersPartsAndLinkOnce() async throws {
        try await SMTPSink.with { sink in
            try await Self.with("mail_sent", smtpURL: sink.url) { harness in
                var options = EnqueueOptions()
                options.id = JobID.make()
                let job = try await harness.jobQueue.enqueue(Self.verify, options: options)
                try await eventually("the mail arrives") { try sink.messages().count == 1 }
                let message = try sink.messages()[0]
                #expect(message.mailFrom == "noreply@harrow.example.com")
                #expect(message.rcptTos == ["ada@example.com"])
                #expect(message.header("From") == "Harrow <noreply@harrow.example.com>")
                #expect(message.header("To") == "ada@example.com")
                #expect(message.header("Subject") == "Verify your email address for Harrow")
                #expect(message.header("Message-ID") == "<\(job.id)@harrow.example.com>")
                #expect(message.contentType == "multipart/alternative")
                #expect(message.defects.isEmpty, "\(message.defects)")
                let text = try #require(message.parts.first { $0.contentType == "text/plain" }?.content)
                let html = try #require(message.parts.first { $0.contentType == "text/html" }?.content)
                #expect(text.contains("Hello Ada <Lovelace>,"))
                #expect(text.contains("https://harrow.example.com/verify-email?token=abc.def"))
                #expect(html.contains("Hello Ada &lt;Lovelace&gt;,"))
                #expect(html.contains(#"<a href="https://harrow.example.com/verify-email?token=abc.def">"#))
                try await eventually("the send is recorded") {
                    try await JobRuns.outcome(of: job.id, client: harness.database, logger: harness.logger) == "sent"
                }

                // The same job delivered again is not sent again.
                _ = try await harness.jobQueue.enqueue(Self.verify, options: options)
                let marker = try await harness.jobQueue.enqueue(
                    SendMail(
                        template: "invitation", to: "bob@example.com",
                        data: ["inviter": "Ada", "role": "member", "link": "https://x.example/i"]))
                try await eventually("the next mail arrives") { try sink.messages().count == 2 }
                try await eventually("the queue is empty") {
                    let stats = try await harness.jobQueue.stats(queues: ["mail"])[0]
                    return stats.ready == 0 && stats.pending == 0
                }
                #expect(try sink.messages().map(\.rcptTos) == [["ada@example.com"], ["bob@example.com"]])
                #expect(try sink.messages()[1].header("Subject") == "You are invited to Harrow")
                _ = marker
            }
        }
    }

    @Test func a550IsDeadLetteredWithTheServersReplyAndBadInputNeverReachesTheServer() async throws {
        try await SMTPSink.with { sink in
            try await Self.with("mail_550", smtpURL: sink.url) { harness in
                _ = try await harness.jobQueue.enqueue(
                    SendMail(template: "password-reset", to: "reject550@example.com", data: ["name": "R", "link": "https://x.example/r"]))
                _ = try await harness.jobQueue.enqueue(
                    SendMail(template: "password-reset", to: "not an address", data: ["name": "R", "link": "l"]))
                _ = try await harness.jobQueue.enqueue(SendMail(template: "no-such-template", to: "ada@example.com", data: [:]))
                _ = try await harness.jobQueue.enqueue(SendMail(template: "password-reset", to: "ada@example.com", data: ["name": "R"]))
                var dead: [DeadLetter] = []
                try await eventually("all four are dead") {
                    dead = try await harness.jobQueue.deadLetters(queue: "mail")
                    return dead.count == 4
                }
                let errors = dead.map(\.error)
                #expect(errors.contains { $0.contains("550") && $0.contains("recipient refused") }, "\(errors)")
                #expect(errors.contains { $0.contains("not a valid address") }, "\(errors)")
                #expect(errors.contains { $0.contains("no mail template \"no-such-template\"") }, "\(errors)")
                #expect(errors.contains { $0.contains("needs link") }, "\(errors)")
                #expect(try sink.messages().isEmpty)
            }
        }
    }

    /// A server that is down: the job retries, and the mail is delivered once the server is up.
    @Test func aMailWaitsForADownServer() async throws {
        let port = try await SMTPSink.with { sink in sink.port }
        try await Self.with("mail_down", smtpURL: "smtp://127.0.0.1:\(port)") { harness in
            _ = try await harness.jobQueue.enqueue(Self.verify)
            try await eventually("the job waits for a retry") {
                try await !harness.jobQueue.delayedJobs(queue: "mail", limit: 10).isEmpty
            }
            #expect(try await harness.jobQueue.deadLetters(queue: "mail").isEmpty)
            try await SMTPSink.with(["--port", "\(port)"]) { sink in
                try await eventually("delivered once the server is up", timeout: .seconds(90)) { try sink.messages().count == 1 }
            }
        }
    }
}

/// The templates themselves.
@Suite struct MailTemplateTests {
    @Test func everyTemplateRendersItsData() throws {
        let data = [
            "name": "Ada", "link": "https://x.example/l?a=1&b=2", "inviter": "Bob", "role": "manager", "job": "deploy", "project": "Web",
            "exit_status": "2", "log_tail": "step 1\nerror: <boom>",
        ]
        for name in MailTemplate.catalog.keys {
            let mail = try MailTemplate.render(name, data: data)
            #expect(!mail.subject.isEmpty && !mail.subject.contains("\n"), "\(name)")
            #expect(mail.text.contains("https://x.example/l?a=1&b=2"), "\(name) text keeps the link as it is")
            #expect(mail.html.contains("https://x.example/l?a=1&amp;b=2"), "\(name) html escapes the link")
        }
        let failed = try MailTemplate.render("operation-failed", data: data)
        #expect(failed.text.contains("step 1\nerror: <boom>"))
        #expect(failed.html.contains("<pre>step 1\nerror: &lt;boom&gt;</pre>"))
        #expect(failed.subject == "✗ deploy failed in Web")
    }

    @Test func aSubjectStaysOneLineAndMissingDataIsAnError() throws {
        let mail = try MailTemplate.render(
            "operation-succeeded", data: ["job": "Eve\r\nBcc: victim@example.com", "link": "https://x.example/o"])
        #expect(!mail.subject.contains("\n") && !mail.subject.contains("\r"))
        #expect(throws: MailTemplate.RenderingError.missingData(template: "verify-email", keys: ["link"])) {
            try MailTemplate.render("verify-email", data: ["name": "Ada"])
        }
    }

    /// A name chosen by whoever invites (or names a job) reaches strangers' mailboxes: links and
    /// bidirectional controls are taken out of it, and invitations keep names out of subjects.
    @Test func namesInMailsCarryNoLinksOrBidiControls() throws {
        let spam = "Cheap pills at https://spam.example/buy or www.spam.example, spam.biz/x, mail sales@spam.example"
        let mail = try MailTemplate.render("invitation", data: ["inviter": spam, "role": "guest", "link": "https://harrow.example/i"])
        #expect(mail.subject == "You are invited to Harrow")
        for part in [mail.text, mail.html] {
            #expect(part.contains("Cheap pills at or mail invited you"), "\(part)")
            #expect(!part.contains("spam."), "\(part)")
        }
        #expect(MailNames.plain("Ada \u{202E}ecilA") == "Ada ecilA")
        #expect(MailNames.plain("Dr. J. Smith v1.2") == "Dr. J. Smith v1.2")
        #expect(MailNames.plain("https://x.example") == "someone")
        // Punctuation around a domain name, and dots or letters in other forms, still read as links.
        for disguised in ["spam.com.", "(spam.com)", "spam.com,", "spam\u{3002}com", "ｓｐａｍ．ｃｏｍ", "\"spam.com\"!"] {
            #expect(MailNames.plain("Ada \(disguised)") == "Ada", "\(disguised)")
        }
    }
}
