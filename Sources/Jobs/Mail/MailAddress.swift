/// A mailbox: an addr-spec (`local@domain`) with an optional display name.
///
/// The address is validated when the value is made, so a `MailAddress` can always be written into
/// an SMTP command or a header as it is. Accepted:
/// - ASCII only: a local part in RFC 5322 dot-atom form (letters, digits and
///   ``!#$%&'*+-/=?^_`{|}~``, dots between them), at most 64 octets (RFC 5321 §4.5.3.1.1);
/// - a domain of dot-separated labels of letters, digits and hyphens, each 1–63 octets and not
///   starting or ending with a hyphen, at most 253 octets in all (internationalized domains must
///   be given in their `xn--` form);
/// - at most 254 octets in all, so `<address>` fits RFC 5321's 256-octet path.
///
/// Rejected: quoted local parts, address literals (`user@[192.0.2.1]`), and anything with
/// spaces, control characters (CR, LF, NUL…), angle brackets, commas or other specials — which
/// also rules out smuggling extra SMTP commands or recipients through an address.
///
/// The display name may be any text. It is written as plain words when it is ASCII words without
/// specials, otherwise as RFC 2047 encoded-words; control characters in it (CR and LF among them)
/// become spaces when the header is written, so a name can never start a new header line.
public struct MailAddress: Sendable, Hashable, CustomStringConvertible {
    /// The addr-spec, `local@domain`, exactly as given.
    public let address: String
    /// The display name shown by mail readers, or `nil` for a bare address.
    public let displayName: String?

    /// Validates `address` and makes a mailbox.
    ///
    /// - Parameters:
    ///   - address: an addr-spec such as `alice@example.com`, without angle brackets.
    ///   - displayName: an optional name such as `Alice Doe`; an empty name counts as none.
    /// - Throws: ``MailFormatError/invalidAddress(_:reason:)`` saying what is wrong.
    public init(_ address: String, displayName: String? = nil) throws(MailFormatError) {
        try Self.validate(address)
        self.address = address
        self.displayName = (displayName?.isEmpty ?? true) ? nil : displayName
    }

    /// The part before the last `@`.
    public var localPart: Substring {
        address[..<address.lastIndex(of: "@")!]
    }

    /// The part after the last `@`.
    public var domain: Substring {
        address[address.index(after: address.lastIndex(of: "@")!)...]
    }

    /// `Name <local@domain>` or `local@domain`, for logs; the header form is rendered by ``MailMessage``.
    public var description: String {
        guard let displayName else { return address }
        return "\(displayName.debugDescription) <\(address)>"
    }

    // MARK: - Validation

    /// RFC 5321 §4.5.3.1: local part 64 octets; path (with `<>`) 256 octets, so 254 for the address.
    static let maxLocalPartLength = 64
    static let maxDomainLength = 253
    static let maxAddressLength = 254

    static func validate(_ address: String) throws(MailFormatError) {
        func fail(_ reason: String) -> MailFormatError {
            .invalidAddress(address, reason: reason)
        }
        let bytes = Array(address.utf8)
        if bytes.isEmpty { throw fail("it is empty") }
        // Checked first so that the messages below can assume printable ASCII.
        if let bad = bytes.first(where: { $0 < 0x21 || $0 > 0x7E }) {
            throw fail(
                bad < 0x20 || bad == 0x7F
                    ? "it contains a control character"
                    : bad == 0x20 ? "it contains a space" : "it contains a non-ASCII character"
            )
        }
        if bytes.count > maxAddressLength { throw fail("it is longer than \(maxAddressLength) characters") }
        guard let at = bytes.lastIndex(of: UInt8(ascii: "@")) else { throw fail("it has no @") }
        let local = bytes[..<at]
        let domain = bytes[(at + 1)...]

        if local.isEmpty { throw fail("the part before @ is empty") }
        if local.count > maxLocalPartLength { throw fail("the part before @ is longer than \(maxLocalPartLength) characters") }
        if let bad = local.first(where: { !isAtext($0) && $0 != UInt8(ascii: ".") }) {
            throw fail("the part before @ contains \(Character(Unicode.Scalar(bad)).debugDescription)")
        }
        if local.first == UInt8(ascii: ".") || local.last == UInt8(ascii: ".")
            || zip(local, local.dropFirst()).contains(where: { $0 == UInt8(ascii: ".") && $1 == UInt8(ascii: ".") })
        {
            throw fail("the part before @ has a dot at its start or end, or two dots in a row")
        }

        if domain.isEmpty { throw fail("the domain is empty") }
        if domain.count > maxDomainLength { throw fail("the domain is longer than \(maxDomainLength) characters") }
        for label in domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            if label.isEmpty { throw fail("the domain has an empty label") }
            if label.count > 63 { throw fail("a domain label is longer than 63 characters") }
            if !label.allSatisfy({ isLetterOrDigit($0) || $0 == UInt8(ascii: "-") }) {
                throw fail("the domain may only contain letters, digits, hyphens and dots")
            }
            if label.first == UInt8(ascii: "-") || label.last == UInt8(ascii: "-") {
                throw fail("a domain label starts or ends with a hyphen")
            }
        }
    }

    /// RFC 5322 atext: the characters an atom (and a dot-atom between dots) may hold.
    static func isAtext(_ byte: UInt8) -> Bool {
        isLetterOrDigit(byte) || "!#$%&'*+-/=?^_`{|}~".utf8.contains(byte)
    }

    private static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            false
        }
    }
}
