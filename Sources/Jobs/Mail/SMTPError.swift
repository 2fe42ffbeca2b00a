/// Why ``SMTPClient`` could not deliver a message, and whether trying again can help.
///
/// ``description`` is one line meant for logs and dead letters: the classification, the SMTP
/// reply code and the server's reply text when there was one, and libcurl's own message.
public struct SMTPError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, coarsely. ``isPermanent`` follows from it.
    public enum Kind: String, Sendable, Hashable {
        /// The server answered 5xx (to MAIL, RCPT, DATA or the end of data): it will not take this
        /// message. Permanent.
        case rejected
        /// The server answered 4xx: try again later. Transient.
        case deferred
        /// The server refused the credentials (libcurl's `CURLE_LOGIN_DENIED` without a 4xx
        /// reply). Permanent: retrying with the same password cannot work.
        case authenticationFailed
        /// The message could not be rendered, or there was no recipient (see ``MailFormatError``).
        /// Permanent.
        case invalidMessage
        /// The URL or options are unusable. Permanent.
        case invalidConfiguration
        /// The host name did not resolve or the connection was refused or unreachable. Transient.
        case connectionFailed
        /// The configured timeout passed. Transient.
        case timedOut
        /// The TLS handshake or certificate check failed. Transient, as mail servers treat it:
        /// it is fixed on the server, and then a retry goes through without a replay.
        case tls
        /// Anything else on the way (connection reset, garbled reply…). Transient.
        case transport
    }

    /// The classification.
    public let kind: Kind
    /// The last SMTP reply code the server sent (`CURLINFO_RESPONSE_CODE`), if there was one.
    public let replyCode: Int?
    /// The server's last reply with that code, all its lines joined by spaces, e.g.
    /// `550 5.1.1 <nobody@example.com>: Recipient address rejected`.
    public let serverReply: String?
    /// libcurl's result code (`CURLcode`), if the error came from a transfer.
    public let curlCode: Int?
    /// libcurl's message (its error buffer or `curl_easy_strerror`), or this library's.
    public let detail: String

    /// Makes an error; ``SMTPClient`` makes them, tests and wrappers may too.
    public init(kind: Kind, replyCode: Int? = nil, serverReply: String? = nil, curlCode: Int? = nil, detail: String) {
        self.kind = kind
        self.replyCode = replyCode
        self.serverReply = serverReply
        self.curlCode = curlCode
        self.detail = detail
    }

    /// `true` when sending the same message again cannot succeed (5xx replies to it, an invalid
    /// message): dead-letter it. `false` for 4xx replies, timeouts, DNS and connection failures,
    /// other transport trouble, and refused credentials or a bad configuration, which an operator
    /// fixes (a password rotation, say) without the mail being wrong: retry later.
    public var isPermanent: Bool {
        switch kind {
        case .rejected, .invalidMessage: true
        case .deferred, .connectionFailed, .timedOut, .tls, .transport, .authenticationFailed, .invalidConfiguration: false
        }
    }

    public var description: String {
        var text = "SMTP \(kind.rawValue) (\(isPermanent ? "permanent" : "transient"))"
        if let serverReply {
            text += ": server said \"\(serverReply)\""
        } else if let replyCode {
            text += ": server replied \(replyCode)"
        }
        text += ": \(detail)"
        if let curlCode { text += " [curl \(curlCode)]" }
        return text
    }
}
