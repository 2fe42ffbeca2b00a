import Foundation

/// Where and how ``SMTPClient`` delivers mail.
///
/// - `smtp://host:port` (port 587 or 25, default 25): plain connection upgraded with STARTTLS when
///   the server offers it. If the server does not offer STARTTLS the session goes on in clear
///   text, credentials included — use `smtps://` or a server that offers STARTTLS for anything
///   but loopback.
/// - `smtps://host:port` (default 465): TLS from the first byte.
///
/// Server certificates are always verified against the system's trust store.
/// An optional path names the EHLO domain (`smtp://relay.example.com:587/app.example.com`);
/// without one libcurl sends the machine's host name.
public struct SMTPConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// The server URL as given.
    public let url: String
    /// The user name for SMTP AUTH, or `nil` to send without authenticating.
    public let username: String?
    /// The password for SMTP AUTH; kept out of ``description``.
    public let password: String?
    /// The limit for one whole delivery: connect, TLS, AUTH, envelope and data.
    public let timeout: Duration

    /// Checks the URL and makes a configuration.
    ///
    /// - Throws: ``SMTPError`` of kind ``SMTPError/Kind/invalidConfiguration`` if the URL is not
    ///   `smtp://` or `smtps://` with a host, has a query, fragment or user info (credentials go
    ///   in `username` and `password`), contains control characters, or the timeout is not positive.
    public init(
        url: String, username: String? = nil, password: String? = nil, timeout: Duration = .seconds(60)
    )
        throws(SMTPError)
    {
        func fail(_ reason: String) -> SMTPError {
            // Never the URL itself: it may carry a password (which is one of the faults).
            SMTPError(kind: .invalidConfiguration, detail: "the SMTP URL is refused: \(reason)")
        }
        if url.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F }) {
            throw fail("it contains spaces or control characters")
        }
        guard let components = URLComponents(string: url) else { throw fail("it is not a URL") }
        guard let scheme = components.scheme?.lowercased(), scheme == "smtp" || scheme == "smtps" else {
            throw fail("the scheme must be smtp or smtps")
        }
        guard let host = components.host, !host.isEmpty else { throw fail("it has no host") }
        if components.user != nil || components.password != nil {
            throw fail("credentials belong in username and password, not in the URL")
        }
        if components.query != nil || components.fragment != nil {
            throw fail("it must not have a query or fragment")
        }
        if timeout <= .zero {
            throw SMTPError(kind: .invalidConfiguration, detail: "the SMTP timeout must be positive")
        }
        for (field, value) in [("username", username), ("password", password)] {
            // libcurl would send these inside AUTH lines; a CR or LF would end the line early.
            if let value, value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                throw SMTPError(kind: .invalidConfiguration, detail: "the SMTP \(field) contains a control character")
            }
        }
        self.url = url
        self.username = username
        self.password = password
        self.timeout = timeout
    }

    /// The URL, user name and timeout; never the password.
    public var description: String {
        "SMTPConfiguration(url: \(url), username: \(username ?? "nil"), password: \(password == nil ? "nil" : "<redacted>"), timeout: \(timeout))"
    }
}
