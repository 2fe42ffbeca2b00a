/// `send-mail` (queue `mail`): renders a named template and sends it over SMTP. Payload:
/// `{"data": {"<key>": "<text>", …}, "template": "<name>", "to": "<address>"}`; the worker's
/// template catalog says which templates exist and which keys each needs.
public struct SendMail: JobContract, Hashable {
    public static let name = "send-mail"
    public static let queue = "mail"
    /// A mail server that is down or deferring gets an hour and a half of retries.
    public static let retries = Retries(maxAttempts: 10, backoff: .exponential(base: .seconds(10), maximum: .seconds(1800)))
    /// A slow server's whole SMTP conversation, with room to spare.
    public static let timeout: Duration = .seconds(120)
    public static let visibilityTimeout: Duration? = .seconds(60)

    public var template: String
    public var to: String
    public var data: [String: String]

    public init(template: String, to: String, data: [String: String]) {
        self.template = template
        self.to = to
        self.data = data
    }
}
