import Foundation

/// `send-mail` (queue `mail`): renders a named template and sends it over SMTP. Payload:
/// `{"data": {"<key>": "<text>", …}, "signed_link": {"purpose", "user_id", "expires_at"}?,
/// "template": "<name>", "to": "<address>"}`; the worker's template catalog says which
/// templates exist and which keys each needs.
///
/// A mail with a link that signs someone in (verify an address, reset a password) carries
/// `signed_link`, never the link: the handler signs it when it sends, so the outbox, the
/// stream and a dead-letter listing hold nothing a reader could use.
public struct SendMail: JobContract, Hashable {
    public static let name = "send-mail"
    public static let queue = "mail"
    /// A mail server that is down or deferring gets an hour and a half of retries.
    public static let retries = Retries(maxAttempts: 10, backoff: .exponential(base: .seconds(10), maximum: .seconds(1800)))
    /// A slow server's whole SMTP conversation, with room to spare.
    public static let timeout: Duration = .seconds(120)
    public static let visibilityTimeout: Duration? = .seconds(60)

    /// A link the handler signs and puts into `data["link"]`.
    public struct SignedLink: Codable, Sendable, Hashable {
        /// `verify-email` or `reset-password`.
        public var purpose: String
        /// Whom the link signs in; the mail must go to this user's own address.
        public var userID: UUID
        /// Unix seconds.
        public var expiresAt: Int64

        /// A link for `purpose` to `userID`, valid until `expiresAt`.
        public init(purpose: String, userID: UUID, expiresAt: Int64) {
            self.purpose = purpose
            self.userID = userID
            self.expiresAt = expiresAt
        }

        enum CodingKeys: String, CodingKey {
            case purpose
            case userID = "user_id"
            case expiresAt = "expires_at"
        }

        /// The id in lowercase, as the store writes ids.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(purpose, forKey: .purpose)
            try container.encodeID(userID, forKey: .userID)
            try container.encode(expiresAt, forKey: .expiresAt)
        }
    }

    public var template: String
    public var to: String
    public var data: [String: String]
    public var signedLink: SignedLink?

    public init(template: String, to: String, data: [String: String], signedLink: SignedLink? = nil) {
        self.template = template
        self.to = to
        self.data = data
        self.signedLink = signedLink
    }

    enum CodingKeys: String, CodingKey {
        case template, to, data
        case signedLink = "signed_link"
    }
}
