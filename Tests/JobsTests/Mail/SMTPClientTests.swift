import Foundation
import HarrowTestSupport
import Testing

@testable import Jobs

/// `SMTPClient` against a real SMTP server (aiosmtpd) on loopback.
@Suite("SMTPClient against aiosmtpd")
struct SMTPClientTests {
    static let date = Date(timeIntervalSince1970: 1_767_225_600)  // Thu, 01 Jan 2026 00:00:00 +0000

    static func client(
        _ url: String, username: String? = nil, password: String? = nil, timeout: Duration = .seconds(10)
    )
        throws -> SMTPClient
    {
        SMTPClient(configuration: try SMTPConfiguration(url: url, username: username, password: password, timeout: timeout))
    }

    static func simpleMessage(subject: String = "Hello", fromName: String? = nil) throws -> MailMessage {
        MailMessage(
            from: try MailAddress("sender@example.com", displayName: fromName),
            to: [try MailAddress("rcpt@example.com")],
            subject: subject,
            textBody: "Hello in text",
            htmlBody: "<p>Hello in HTML</p>",
            date: date
        )
    }

    /// Sends and returns the error, failing the test if there is none or it is not an `SMTPError`.
    static func sendFailure(
        _ client: SMTPClient, to recipient: String, from sender: String = "bounce@example.com"
    )
        async throws -> SMTPError?
    {
        do {
            try await client.send(try simpleMessage(), envelopeFrom: MailAddress(sender), recipients: [MailAddress(recipient)])
            Issue.record("expected the send to \(recipient) to fail")
            return nil
        } catch let error as SMTPError {
            return error
        }
    }

    @Test("a message arrives with its envelope, headers and both parts intact")
    func deliversMessage() async throws {
        let text =
            "Grüße aus Köln!\nSecond line with = sign and trailing spaces   \n.leading dot\nFrom the top\n"
            + String(repeating: "long line ", count: 20) + "\nend"
        let html = "<html><body><p>Grüße — “quotes” & <b>bold</b> ✓</p>\n<p>=_not a boundary=</p></body></html>"
        let subject = "Grüße — a subject long enough that its encoded words must be folded over several lines ✓"
        let message = MailMessage(
            from: try MailAddress("sender@example.com", displayName: "Zoë Sender"),
            to: [
                try MailAddress("jane@example.com", displayName: "Doe, Jane"),
                try MailAddress("plain@example.org"),
            ],
            subject: subject,
            textBody: text,
            htmlBody: html,
            messageID: "order-42.7f3a@example.com",
            date: Self.date,
            extraHeaders: [.init("Reply-To", "support@example.com"), .init("X-Campaign", "Frühling 2026")]
        )
        try await SMTPSink.with { sink in
            try await Self.client(sink.url).send(
                message,
                envelopeFrom: MailAddress("bounces+42@example.com"),
                recipients: [
                    MailAddress("jane@example.com"), MailAddress("plain@example.org"), MailAddress("hidden@example.net"),
                ]
            )
            let received = try #require(try sink.messages().first)
            #expect(try sink.messages().count == 1)

            #expect(received.mailFrom == "bounces+42@example.com")
            #expect(received.rcptTos == ["jane@example.com", "plain@example.org", "hidden@example.net"])
            #expect(received.defects == [])
            #expect(received.maxLineLength <= 78, "\(received.raw.components(separatedBy: "\r\n").filter { $0.utf8.count > 78 })")
            #expect(received.bareLineBreaks == 0)

            #expect(
                received.headerNames == [
                    "Date", "From", "To", "Subject", "Message-ID", "Reply-To", "X-Campaign", "MIME-Version", "Content-Type",
                ])
            #expect(received.rawHeader("Date") == "Thu, 01 Jan 2026 00:00:00 +0000")
            #expect(received.header("From") == "Zoë Sender <sender@example.com>")
            #expect(received.header("To") == "\"Doe, Jane\" <jane@example.com>, plain@example.org")
            #expect(received.header("Subject") == subject)
            #expect(try #require(received.rawHeader("Subject")).hasPrefix("=?UTF-8?B?"))
            #expect(try #require(received.rawHeader("Subject")).contains("\r\n "), "a long subject is folded")
            #expect(received.rawHeader("Message-ID") == "<order-42.7f3a@example.com>")
            #expect(received.header("Reply-To") == "support@example.com")
            #expect(received.header("X-Campaign") == "Frühling 2026")
            #expect(received.rawHeader("MIME-Version") == "1.0")
            #expect(received.contentType == "multipart/alternative")
            #expect(!received.raw.contains("hidden@example.net"), "envelope-only recipients stay out of the headers")

            #expect(received.parts.map(\.contentType) == ["text/plain", "text/html"])
            #expect(received.parts.map(\.charset) == ["utf-8", "utf-8"])
            #expect(received.parts.map(\.transferEncoding) == ["quoted-printable", "quoted-printable"])
            // Line breaks travel as CRLF; compare the text, not the line-ending convention.
            #expect(received.parts.first.map { Self.lf($0.content) } == text)
            #expect(received.parts.last.map { Self.lf($0.content) } == html)
        }
    }

    @Test("a text-only message arrives as a single text/plain part")
    func deliversTextOnly() async throws {
        var message = try Self.simpleMessage()
        message.htmlBody = nil
        try await SMTPSink.with { sink in
            try await Self.client(sink.url).send(message, envelopeFrom: message.from, recipients: message.to)
            let received = try #require(try sink.messages().first)
            #expect(received.contentType == "text/plain")
            // SMTP data ends in CRLF, so a single part always ends with a line break.
            #expect(received.parts.map { Self.lf($0.content) } == ["Hello in text\n"])
            #expect(received.defects == [])
        }
    }

    @Test("a 550 to RCPT is permanent and carries the code and the server's text")
    func rcpt550IsPermanent() async throws {
        try await SMTPSink.with { sink in
            let error = try #require(try await Self.sendFailure(Self.client(sink.url), to: "reject550@example.com"))
            #expect(error.isPermanent)
            #expect(error.kind == .rejected)
            #expect(error.replyCode == 550)
            #expect(error.serverReply == "550 5.7.1 <reject550@example.com>: recipient refused by smtp_sink")
            #expect(error.description.contains("550"))
            #expect(error.description.contains("recipient refused"))
            #expect(try sink.messages().isEmpty)
        }
    }

    @Test("a 451 to RCPT is transient")
    func rcpt451IsTransient() async throws {
        try await SMTPSink.with { sink in
            let error = try #require(try await Self.sendFailure(Self.client(sink.url), to: "defer451@example.com"))
            #expect(!error.isPermanent)
            #expect(error.kind == .deferred)
            #expect(error.replyCode == 451)
            #expect(error.serverReply?.hasPrefix("451 ") == true)
        }
    }

    @Test(
        "replies to MAIL FROM and to the end of DATA are classified by their code",
        arguments: [
            ("bounce@example.com", "data554@example.com", 554, true),
            ("bounce@example.com", "data452@example.com", 452, false),
            ("mail553@example.com", "rcpt@example.com", 553, true),
            ("mail421@example.com", "rcpt@example.com", 421, false),
        ])
    func mailAndDataReplies(sender: String, recipient: String, code: Int, permanent: Bool) async throws {
        try await SMTPSink.with { sink in
            let error = try #require(
                try await Self.sendFailure(Self.client(sink.url), to: recipient, from: sender))
            #expect(error.replyCode == code)
            #expect(error.isPermanent == permanent)
            #expect(error.kind == (permanent ? .rejected : .deferred))
            #expect(error.serverReply?.hasPrefix("\(code) ") == true)
            #expect(try sink.messages().isEmpty)
        }
    }

    @Test("a closed port is a transient connection failure")
    func closedPortIsTransient() async throws {
        // A port the sink just held and released: nothing listens there now.
        let sink = try await SMTPSink.start()
        let url = sink.url
        await sink.stop()
        let error = try #require(try await Self.sendFailure(Self.client(url), to: "rcpt@example.com"))
        #expect(!error.isPermanent)
        #expect(error.kind == .connectionFailed)
        #expect(error.replyCode == nil)
        #expect(error.curlCode == 7)  // CURLE_COULDNT_CONNECT
    }

    @Test("a server that never answers times out, transiently")
    func silentServerTimesOut() async throws {
        try await SMTPSink.with(["--blackhole"]) { sink in
            let started = ContinuousClock.now
            let error = try #require(
                try await Self.sendFailure(Self.client(sink.url, timeout: .seconds(1)), to: "rcpt@example.com"))
            #expect(error.kind == .timedOut)
            #expect(!error.isPermanent)
            // Far from "hangs": a bound a loaded 2-core machine cannot miss (it once took 6.7 s).
            #expect(ContinuousClock.now - started < .seconds(30))
        }
    }

    @Test("cancelling the task abandons a transfer that is waiting on the server")
    func cancellationStopsTransfer() async throws {
        try await SMTPSink.with(["--blackhole"]) { sink in
            let client = try Self.client(sink.url, timeout: .seconds(60))
            let message = try Self.simpleMessage()
            let started = ContinuousClock.now
            let task = Task {
                try await client.send(message, envelopeFrom: message.from, recipients: message.to)
            }
            try await Task.sleep(for: .milliseconds(300))
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            // Well before the 60 s timeout, with room for a loaded machine.
            #expect(ContinuousClock.now - started < .seconds(30))
        }
    }

    @Test("AUTH: right credentials deliver, wrong ones are a permanent authentication failure")
    func authentication() async throws {
        try await SMTPSink.with(["--auth", "mailer:s3cret"]) { sink in
            let message = try Self.simpleMessage()
            try await Self.client(sink.url, username: "mailer", password: "s3cret")
                .send(message, envelopeFrom: message.from, recipients: message.to)
            #expect(try sink.messages().count == 1)

            let error = try #require(
                try await Self.sendFailure(Self.client(sink.url, username: "mailer", password: "wrong"), to: "rcpt@example.com"))
            #expect(error.kind == .authenticationFailed)
            #expect(!error.isPermanent, "an operator fixes credentials; the mail waits")
            #expect(error.replyCode == 535)
            #expect(error.curlCode == 67)  // CURLE_LOGIN_DENIED
        }
    }

    @Test("CR/LF in the subject or a display name never adds a header")
    func headerInjection() async throws {
        let message = MailMessage(
            from: try MailAddress("sender@example.com", displayName: "Mallory\r\nBcc: victim1@example.net"),
            to: [try MailAddress("rcpt@example.com", displayName: "Bob\nX-Injected: yes")],
            subject: "Hello\r\nBcc: victim2@example.net\r\n\r\nbody text",
            textBody: "Hi",
            htmlBody: "<p>Hi</p>",
            date: Self.date
        )
        try await SMTPSink.with { sink in
            try await Self.client(sink.url).send(message, envelopeFrom: message.from, recipients: message.to)
            let received = try #require(try sink.messages().first)
            #expect(
                received.headerNames == [
                    "Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type",
                ])
            #expect(received.rcptTos == ["rcpt@example.com"])
            #expect(received.header("Subject") == "Hello Bcc: victim2@example.net  body text")
            #expect(received.header("From") == "\"Mallory Bcc: victim1@example.net\" <sender@example.com>")
            #expect(received.header("To") == "\"Bob X-Injected: yes\" <rcpt@example.com>")
            #expect(received.parts.map { Self.lf($0.content) } == ["Hi", "<p>Hi</p>"])
            #expect(received.defects == [])
        }
    }

    @Test("an extra header with CR/LF is refused before connecting, as a permanent error")
    func extraHeaderInjectionIsRefused() async throws {
        var message = try Self.simpleMessage()
        message.extraHeaders = [.init("X-Tag", "a\r\nBcc: victim@example.net")]
        // Nothing listens at this URL: the error must come from rendering, not from connecting.
        let client = try Self.client("smtp://127.0.0.1:9")
        do {
            try await client.send(message, envelopeFrom: message.from, recipients: message.to)
            Issue.record("expected the send to fail")
        } catch let error as SMTPError {
            #expect(error.kind == .invalidMessage)
            #expect(error.isPermanent)
            #expect(error.description.contains("X-Tag"))
        }
    }

    static func lf(_ text: String) -> String {
        text.replacingOccurrences(of: "\r\n", with: "\n")
    }
}
