/// Why an address, a header or a message cannot be turned into a valid RFC 5322 message.
///
/// These errors come from the caller's data, not from a server: retrying the same input can never
/// succeed, so a job that meets one should treat it as permanent (dead letter, no retry).
/// ``SMTPClient/send(_:envelopeFrom:recipients:)`` wraps one in an ``SMTPError`` of kind
/// ``SMTPError/Kind/invalidMessage``.
public enum MailFormatError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The text is not an addr-spec this library accepts (see ``MailAddress``).
    case invalidAddress(String, reason: String)
    /// An extra header has a name that is not a valid field name, is one the message writes
    /// itself, or has a value with a control character (such as CR or LF).
    case invalidHeader(name: String, reason: String)
    /// The Message-ID is not `local@domain` made of printable ASCII without spaces or `<>`.
    case invalidMessageID(String)
    /// A message needs at least one `To` address.
    case noRecipients
    /// A header line would be longer than the 998 characters RFC 5322 allows, even folded.
    case headerTooLong(name: String)

    public var description: String {
        // `debugDescription` escapes control characters, so a hostile value cannot forge log lines.
        switch self {
        case .invalidAddress(let text, let reason):
            "invalid email address \(text.debugDescription): \(reason)"
        case .invalidHeader(let name, let reason):
            "invalid header \(name.debugDescription): \(reason)"
        case .invalidMessageID(let id):
            "invalid Message-ID \(id.debugDescription): expected printable ASCII local@domain without spaces or angle brackets"
        case .noRecipients:
            "a message needs at least one To address"
        case .headerTooLong(let name):
            "header \(name.debugDescription) would be longer than 998 characters"
        }
    }
}
