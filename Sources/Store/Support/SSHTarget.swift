import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where to run: `ssh://user@host[:port]`, validated.
///
/// Only a user, a host (name, IPv4 or bracketed IPv6) and an optional port: no password, path,
/// query or fragment, so that nothing but these three reaches the connection.
public struct SSHTarget: Sendable, Hashable, CustomStringConvertible {
    /// The account to log in as.
    public let user: String
    /// The host name or address; an IPv6 address without its brackets.
    public let host: String
    /// The TCP port, 22 unless given.
    public let port: Int

    /// Why an `ssh://` address was rejected.
    public struct ParseError: Error, Hashable, CustomStringConvertible {
        public let description: String
    }

    /// Parses and validates `ssh://user@host[:port]`.
    public init(_ address: String) throws {
        func fail(_ reason: String) -> ParseError {
            ParseError(description: "invalid SSH target: \(reason); expected ssh://user@host[:port]")
        }
        guard address.lowercased().hasPrefix("ssh://") else { throw fail("it must start with ssh://") }
        let rest = address.dropFirst("ssh://".count)
        if let bad = rest.first(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            throw fail("'\(bad)' is not allowed: no path, query or fragment")
        }
        guard let at = rest.firstIndex(of: "@") else { throw fail("a user is required (user@host)") }
        let userPart = rest[..<at]
        let hostPart = rest[rest.index(after: at)...]
        if userPart.contains(":") { throw fail("passwords are not accepted in the address; log in with a key") }
        if hostPart.contains("@") { throw fail("more than one '@'") }
        guard Self.isValidUser(userPart) else {
            throw fail("user must be 1–32 characters of letters, digits, '.', '_' or '-', not starting with '-'")
        }

        var hostText: Substring
        var portText: Substring?
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { throw fail("missing ']' after an IPv6 address") }
            hostText = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
            let after = hostPart[hostPart.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected text after ']'") }
                portText = after.dropFirst()
            }
            guard Self.isIPv6(String(hostText)) else { throw fail("'\(hostText)' is not an IPv6 address") }
        } else {
            if let colon = hostPart.firstIndex(of: ":") {
                hostText = hostPart[..<colon]
                portText = hostPart[hostPart.index(after: colon)...]
            } else {
                hostText = hostPart
            }
            guard !hostText.isEmpty else { throw fail("a host is required") }
            if hostText.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) {
                guard Self.isIPv4(String(hostText)) else { throw fail("'\(hostText)' is not an IPv4 address") }
            } else if !Self.isHostName(hostText) {
                throw fail("'\(hostText)' is not a valid host name")
            }
        }

        var port = 22
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = Int(portText), (1...65535).contains(value)
            else {
                throw fail("port must be a number from 1 to 65535")
            }
            port = value
        }
        self.user = String(userPart)
        self.host = String(hostText).lowercased()
        self.port = port
    }

    /// The address in canonical form, e.g. `ssh://deploy@[::1]:2222`.
    public var description: String {
        let hostText = host.contains(":") ? "[\(host)]" : host
        return port == 22 ? "ssh://\(user)@\(hostText)" : "ssh://\(user)@\(hostText):\(port)"
    }

    private static func isValidUser(_ user: Substring) -> Bool {
        guard (1...32).contains(user.count), user.first != "-" else { return false }
        return user.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
    }

    private static func isHostName(_ name: Substring) -> Bool {
        guard name.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }

    private static func isIPv4(_ text: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, text, &address) == 1
    }

    private static func isIPv6(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }
}
