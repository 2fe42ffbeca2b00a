import Foundation
import Testing

@testable import Jobs

@Suite("MailMessage rendering")
struct MailMessageTests {
    static func message(
        extraHeaders: [MailMessage.Header] = [], messageID: String? = "id-1@example.com"
    ) throws
        -> MailMessage
    {
        MailMessage(
            from: try MailAddress("sender@example.com", displayName: "Sender"),
            to: [try MailAddress("rcpt@example.com")],
            subject: "Subject",
            textBody: "text",
            htmlBody: "<p>html</p>",
            messageID: messageID,
            date: Date(timeIntervalSince1970: 0),
            extraHeaders: extraHeaders
        )
    }

    static func rendered(_ message: MailMessage) throws -> String {
        String(decoding: try message.render(), as: UTF8.self)
    }

    @Test("headers in order, CRLF everywhere, boundary only at delimiters")
    func structure() throws {
        let text = try Self.rendered(Self.message())
        let (head, body) = try #require(text.range(of: "\r\n\r\n").map { (text[..<$0.lowerBound], text[$0.upperBound...]) })
        let headerLines = head.components(separatedBy: "\r\n")
        #expect(headerLines.allSatisfy { $0.utf8.count <= 78 })
        #expect(
            headerLines.prefix(6) == [
                "Date: Thu, 01 Jan 1970 00:00:00 +0000",
                "From: Sender <sender@example.com>",
                "To: rcpt@example.com",
                "Subject: Subject",
                "Message-ID: <id-1@example.com>",
                "MIME-Version: 1.0",
            ])
        let contentType = headerLines.suffix(2).joined(separator: "\r\n")
        #expect(contentType.hasPrefix("Content-Type: multipart/alternative;\r\n boundary=\"=_harrow_"))
        let boundary = String(contentType.split(separator: "\"")[1])
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\r"))
        #expect(body.components(separatedBy: boundary).count == 4)  // two delimiters and the closing one
        #expect(body.hasSuffix("--\(boundary)--\r\n"))
    }

    @Test("the generated Message-ID is at the sender's domain and stays the same across renders")
    func messageID() throws {
        let message = try Self.message(messageID: nil)
        #expect(message.messageID.hasSuffix("@example.com"))
        let first = try Self.rendered(message)
        let second = try Self.rendered(message)
        #expect(first.contains("Message-ID: <\(message.messageID)>\r\n"))
        #expect(second.contains("Message-ID: <\(message.messageID)>\r\n"))
        #expect(try Self.rendered(Self.message(messageID: "<bracketed@example.com>")).contains("Message-ID: <bracketed@example.com>\r\n"))
    }

    @Test("invalid Message-IDs are refused", arguments: ["", "no-at", "a@b@c", "a b@c", "a@b\r\nX: y", "<a@b", "@b", "a@"])
    func invalidMessageID(_ id: String) throws {
        #expect(throws: MailFormatError.invalidMessageID(id)) { try Self.message(messageID: id).render() }
    }

    @Test(
        "extra headers that could inject or override headers are refused",
        arguments: [
            MailMessage.Header("X-Tag", "a\r\nBcc: victim@example.net"),
            MailMessage.Header("X-Tag", "a\nb"),
            MailMessage.Header("X-Tag", "a\0b"),
            MailMessage.Header("X-Tag\r\nBcc", "victim@example.net"),
            MailMessage.Header("X Tag", "v"),
            MailMessage.Header("X:Tag", "v"),
            MailMessage.Header("", "v"),
            MailMessage.Header("Bcc", "victim@example.net"),
            MailMessage.Header("subject", "second subject"),
            MailMessage.Header("Content-Type", "text/html"),
        ])
    func refusedExtraHeaders(_ header: MailMessage.Header) throws {
        #expect(throws: MailFormatError.self) { try Self.message(extraHeaders: [header]).render() }
    }

    @Test("extra headers: ASCII as given, non-ASCII encoded")
    func extraHeaders() throws {
        let text = try Self.rendered(
            Self.message(extraHeaders: [
                .init("List-Unsubscribe", "<https://example.com/u?t=1>"),
                .init("X-Note", "Grüße"),
            ]))
        #expect(text.contains("\r\nList-Unsubscribe: <https://example.com/u?t=1>\r\n"))
        #expect(text.contains("\r\nX-Note: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"))
    }

    @Test("a message needs a To address")
    func noRecipients() throws {
        var message = try Self.message()
        message.to = []
        #expect(throws: MailFormatError.noRecipients) { try message.render() }
    }

    @Test("many recipients fold after commas")
    func manyRecipients() throws {
        var message = try Self.message()
        message.to = try (0..<10).map { try MailAddress("recipient\($0)@example.com", displayName: "Person \($0)") }
        let text = try Self.rendered(message)
        let to = try #require(text.components(separatedBy: "\r\nSubject:").first?.components(separatedBy: "\r\nTo: ").last)
        let lines = to.components(separatedBy: "\r\n")
        #expect(lines.count > 1)
        #expect(lines.allSatisfy { $0.utf8.count <= 78 })
        let expected = (0..<10).map { "Person \($0) <recipient\($0)@example.com>" }.joined(separator: ", ")
        #expect(to.replacingOccurrences(of: "\r\n", with: "") == expected)
    }
}
