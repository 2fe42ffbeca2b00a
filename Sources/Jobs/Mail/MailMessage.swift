import Foundation

/// An email with a plain-text body and an optional HTML alternative, rendered as RFC 5322 bytes.
///
/// ``render()`` writes `Date`, `From`, `To`, `Subject`, `Message-ID`, the extra headers,
/// `MIME-Version: 1.0` and a body that is `multipart/alternative` (text/plain, then text/html) or,
/// without HTML, a single text/plain part. Bodies are UTF-8 in quoted-printable, with CRLF line
/// breaks and lines of at most 76 characters; header lines are folded to 78 where possible and
/// never pass 998.
///
/// Header injection: nothing from the caller can start a new header line.
/// - Subject and display names: control characters, CR and LF among them, are replaced by a space
///   (CRLF by one space); non-ASCII text, specials and anything else that could not be written
///   as plain words is written as RFC 2047 encoded-words.
/// - Addresses are validated by ``MailAddress``; the Message-ID must be printable ASCII.
/// - Extra headers are rejected (``MailFormatError/invalidHeader(name:reason:)``) when a value
///   has a control character, when a name is not a field name, or when a name is one this type
///   writes itself (or `Bcc`, which must never be sent).
public struct MailMessage: Sendable, Hashable {
    /// A header added after the standard ones, such as `Reply-To` or `List-Unsubscribe`.
    public struct Header: Sendable, Hashable {
        /// The field name, such as `Reply-To`: printable ASCII without `:` or spaces.
        public var name: String
        /// The value. Printable ASCII is written as it is (folded at spaces), so structured values
        /// keep their syntax; a value with non-ASCII text is written as encoded-words, which only
        /// suits unstructured fields. Control characters are rejected.
        public var value: String

        /// Makes a header; it is checked when the message is rendered.
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The author, written in `From`.
    public var from: MailAddress
    /// The recipients written in `To` (one or more). The SMTP envelope is separate: see
    /// ``SMTPClient/send(_:envelopeFrom:recipients:)``.
    public var to: [MailAddress]
    /// The subject, any text; see the type's notes on encoding.
    public var subject: String
    /// The text/plain body.
    public var textBody: String
    /// The text/html alternative, or `nil` for a text-only message.
    public var htmlBody: String?
    /// The Message-ID without angle brackets (`id@domain`). Set once when the message is made, so
    /// every attempt to send it (retries included) carries the same ID.
    public var messageID: String
    /// The origination date, written in UTC.
    public var date: Date
    /// Headers written after `Message-ID`, in order.
    public var extraHeaders: [Header]

    /// Makes a message; nothing is checked until ``render()``.
    ///
    /// - Parameters:
    ///   - messageID: `id@domain`, with or without angle brackets; by default a random UUID at the
    ///     sender's domain.
    ///   - date: by default, now.
    public init(
        from: MailAddress,
        to: [MailAddress],
        subject: String,
        textBody: String,
        htmlBody: String? = nil,
        messageID: String? = nil,
        date: Date = Date(),
        extraHeaders: [Header] = []
    ) {
        self.from = from
        self.to = to
        self.subject = subject
        self.textBody = textBody
        self.htmlBody = htmlBody
        self.messageID = messageID ?? "\(UUID().uuidString.lowercased())@\(from.domain)"
        self.date = date
        self.extraHeaders = extraHeaders
    }

    /// Headers this type writes itself, or that must never be sent; lowercased.
    static let reservedHeaderNames: Set<String> = [
        "date", "from", "to", "subject", "message-id", "mime-version",
        "content-type", "content-transfer-encoding", "bcc",
    ]

    /// The message as RFC 5322 bytes with CRLF line endings, ready for SMTP `DATA`.
    ///
    /// Dot-stuffing is left to the SMTP client (libcurl does it). Each call picks a new random
    /// MIME boundary, so the bytes differ between calls in the boundary only.
    ///
    /// - Throws: ``MailFormatError`` if there is no `To` address, the Message-ID or an extra
    ///   header is invalid, or a header line cannot be kept within 998 characters.
    public func render() throws(MailFormatError) -> [UInt8] {
        if to.isEmpty { throw .noRecipients }
        let messageID = try Self.validatedMessageID(messageID)

        var head = ""
        head += try MIMEEncoding.header("Date", [MIMEEncoding.rfc5322Date(date)])
        head += try MIMEEncoding.header("From", Self.mailboxTokens(from))
        // Commas go on the token before the break, so folding happens after them.
        var toTokens: [String] = []
        for (index, address) in to.enumerated() {
            var tokens = Self.mailboxTokens(address)
            if index < to.count - 1 { tokens[tokens.count - 1] += "," }
            toTokens += tokens
        }
        head += try MIMEEncoding.header("To", toTokens)
        head += try MIMEEncoding.header("Subject", MIMEEncoding.unstructuredTokens(MIMEEncoding.singleLine(subject)))
        head += try MIMEEncoding.header("Message-ID", ["<\(messageID)>"])
        for header in extraHeaders {
            head += try Self.render(header)
        }
        head += "MIME-Version: 1.0\r\n"

        let text = MIMEEncoding.quotedPrintable(textBody)
        guard let htmlBody else {
            head += "Content-Type: text/plain; charset=utf-8\r\n"
            head += "Content-Transfer-Encoding: quoted-printable\r\n"
            // SMTP data always ends in CRLF, so a single part's text always arrives with a final
            // line break; writing it here keeps the bytes what the recipient will see.
            return Array((head + "\r\n" + text + "\r\n").utf8)
        }
        let html = MIMEEncoding.quotedPrintable(htmlBody)

        // Quoted-printable writes every "=" as "=3D", so no encoded body line can contain "=_";
        // a boundary that does can never collide with content. The random part is for readers.
        let boundary = "=_harrow_" + (0..<4).map { _ in String(UInt32.random(in: .min ... .max), radix: 16) }.joined()
        // Folded: on one line, type and boundary would pass 78 characters.
        head += "Content-Type: multipart/alternative;\r\n boundary=\"\(boundary)\"\r\n"

        var body = "\r\n"
        for (contentType, content) in [("text/plain", text), ("text/html", html)] {
            body += "--\(boundary)\r\n"
            body += "Content-Type: \(contentType); charset=utf-8\r\n"
            body += "Content-Transfer-Encoding: quoted-printable\r\n"
            body += "\r\n"
            body += content + "\r\n"
        }
        body += "--\(boundary)--\r\n"
        return Array((head + body).utf8)
    }

    /// The display name's tokens (if any) followed by `<address>`, or the bare address.
    static func mailboxTokens(_ mailbox: MailAddress) -> [String] {
        let name = mailbox.displayName.map(MIMEEncoding.singleLine) ?? ""
        let nameTokens = MIMEEncoding.phraseTokens(name)
        return nameTokens.isEmpty ? [mailbox.address] : nameTokens + ["<\(mailbox.address)>"]
    }

    /// `id` without angle brackets, if it is `left@right` of printable ASCII without specials.
    static func validatedMessageID(_ id: String) throws(MailFormatError) -> String {
        var bare = Substring(id)
        if bare.hasPrefix("<") && bare.hasSuffix(">") && bare.count >= 2 {
            bare = bare.dropFirst().dropLast()
        }
        let parts = bare.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, bare.utf8.count <= 250,
            parts.allSatisfy({ part in
                !part.isEmpty && part.utf8.allSatisfy { MailAddress.isAtext($0) || $0 == UInt8(ascii: ".") }
            })
        else { throw .invalidMessageID(id) }
        return String(bare)
    }

    /// One extra header, checked and folded.
    static func render(_ header: Header) throws(MailFormatError) -> String {
        let name = header.name
        func fail(_ reason: String) -> MailFormatError { .invalidHeader(name: name, reason: reason) }
        // RFC 5322 §3.6.8 field name: printable ASCII except ":".
        if name.isEmpty || !name.utf8.allSatisfy({ (0x21...0x7E).contains($0) && $0 != UInt8(ascii: ":") }) {
            throw fail("a header name must be printable ASCII without spaces or ':'")
        }
        if reservedHeaderNames.contains(name.lowercased()) {
            throw fail("this header is written by MailMessage itself or must not be sent")
        }
        if header.value.unicodeScalars.contains(where: { MIMEEncoding.isControl($0) && $0 != "\t" }) {
            throw fail("the value contains a control character such as CR or LF")
        }
        let value = header.value
        if value.unicodeScalars.allSatisfy(\.isASCII) {
            // Folding only at single spaces keeps runs of whitespace exactly as given.
            let foldable = !value.hasPrefix(" ") && !value.hasSuffix(" ") && !value.contains("  ") && !value.contains("\t")
            return try MIMEEncoding.header(name, foldable ? value.split(separator: " ").map(String.init) : [value])
        }
        return try MIMEEncoding.header(name, MIMEEncoding.encodedWords(value))
    }
}
