import Crypto
import Foundation

/// Host keys pinned in OpenSSH `known_hosts` format.
///
/// Supports plain and hashed (`|1|salt|hash`) host names, `[host]:port` for ports other than 22,
/// comma-separated patterns with `*`, `?` and `!` negation, and the `@revoked` marker.
/// `@cert-authority` lines are parsed and ignored: host certificates are not supported, so a
/// host is trusted only through a key pinned for it directly.
public struct KnownHosts: Sendable, Hashable {
    /// What `known_hosts` says about a key a host presented.
    public enum Verdict: Sendable, Hashable {
        /// A line for the host pins exactly this key.
        case trusted
        /// The host is listed, but with other keys only: possibly a man-in-the-middle.
        case mismatch
        /// No line names the host.
        case unknown
        /// The key is marked `@revoked` for the host: refuse it whatever else is listed.
        case revoked
    }

    /// Why a `known_hosts` text was rejected, with the 1-based line it was found on.
    public struct ValidationError: Error, Hashable, CustomStringConvertible {
        public let line: Int
        public let reason: String

        public var description: String { "known_hosts line \(line): \(reason)" }
    }

    fileprivate enum Marker: Hashable {
        case none, revoked, certificateAuthority
    }

    fileprivate enum HostMatcher: Hashable {
        case patterns([String])
        case hashed(salt: [UInt8], hash: [UInt8])
    }

    fileprivate struct Entry: Hashable {
        var marker: Marker
        var hosts: HostMatcher
        var keyType: String
        var key: [UInt8]
    }

    private var entries: [Entry]

    /// Parses `known_hosts` text; throws ``ValidationError`` for the first malformed line.
    public init(_ text: String) throws {
        entries = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if let entry = try Self.parseLine(Substring(rawLine), number: index + 1) {
                entries.append(entry)
            }
        }
    }

    private init(entries: [Entry]) {
        self.entries = entries
    }

    /// Throws ``ValidationError`` if `text` is not valid `known_hosts` content.
    public static func validate(_ text: String) throws {
        _ = try KnownHosts(text)
    }

    /// The entries of both, as if the two files were concatenated.
    public func merging(_ other: KnownHosts) -> KnownHosts {
        KnownHosts(entries: entries + other.entries)
    }

    /// True when no line pins a key (comments and blank lines only).
    public var isEmpty: Bool { entries.isEmpty }

    /// Decides whether `key`, presented by `host` on `port`, is the pinned one.
    ///
    /// - Parameters:
    ///   - host: the host name or address as the connection was addressed (IPv6 without brackets).
    ///   - keyType: the key's algorithm name, e.g. `ssh-ed25519`.
    ///   - key: the public key blob in SSH wire format (what `known_hosts` holds in base64).
    public func verify(host: String, port: Int, keyType: String, key: [UInt8]) -> Verdict {
        let name = Self.lookupName(host: host, port: port)
        let forHost = entries.filter { $0.marker != .certificateAuthority && Self.matches($0.hosts, name: name) }
        if forHost.contains(where: { $0.marker == .revoked && $0.key == key }) {
            return .revoked
        }
        let pinned = forHost.filter { $0.marker == .none }
        if pinned.contains(where: { $0.keyType == keyType && $0.key == key }) {
            return .trusted
        }
        return pinned.isEmpty ? .unknown : .mismatch
    }

    /// The key types pinned for a host, so a client can ask the server for one of them first.
    public func keyTypes(host: String, port: Int) -> [String] {
        let name = Self.lookupName(host: host, port: port)
        var seen: [String] = []
        for entry in entries where entry.marker == .none && Self.matches(entry.hosts, name: name) {
            if !seen.contains(entry.keyType) { seen.append(entry.keyType) }
        }
        return seen
    }
    /// Why the key `host`:`port` presented is refused, in words an operator can act on; `nil`
    /// when a line pins exactly that key. Shared by git checkouts and remote targets, so both
    /// refuse a host the same way.
    public func rejection(host: String, port: Int, keyType: String, key: [UInt8]) -> String? {
        let fingerprint = Self.fingerprint(of: key)
        let name = Self.lookupName(host: host, port: port)
        switch verify(host: host, port: port, keyType: keyType, key: key) {
        case .trusted:
            return nil
        case .mismatch:
            return "host key verification failed for \(name): it presented a \(keyType) key with fingerprint "
                + "\(fingerprint), which does not match the key pinned in known_hosts. Refusing to connect: "
                + "the host key changed or someone is intercepting the connection."
        case .unknown:
            return "host \(name) is not in known_hosts; refusing to connect. It presented a \(keyType) key with "
                + "fingerprint \(fingerprint); after checking that fingerprint with the host's administrator, "
                + "add this line to known_hosts: \(name) \(keyType) \(Data(key).base64EncodedString())"
        case .revoked:
            return "host \(name) presented a \(keyType) key (\(fingerprint)) that known_hosts marks @revoked; refusing to connect"
        }
    }

    /// OpenSSH's fingerprint of a key blob: `SHA256:` and unpadded base64 of its SHA-256 digest.
    public static func fingerprint(of key: [UInt8]) -> String {
        let digest = Data(SHA256.hash(data: key)).base64EncodedString()
        return "SHA256:" + digest.replacingOccurrences(of: "=", with: "")
    }

    // OpenSSH names a host on port 22 by itself and otherwise as `[host]:port`.
    public static func lookupName(host: String, port: Int) -> String {
        let lowered = host.lowercased()
        return port == 22 ? lowered : "[\(lowered)]:\(port)"
    }

    private static func matches(_ hosts: HostMatcher, name: String) -> Bool {
        switch hosts {
        case .hashed(let salt, let hash):
            let code = HMAC<Insecure.SHA1>.authenticationCode(for: Array(name.utf8), using: SymmetricKey(data: salt))
            return Array(code) == hash
        case .patterns(let patterns):
            var matched = false
            for pattern in patterns {
                if pattern.hasPrefix("!") {
                    // A matching negation excludes the host even if another pattern includes it.
                    if globMatches(Array(pattern.dropFirst().utf8), Array(name.utf8)) { return false }
                } else if globMatches(Array(pattern.utf8), Array(name.utf8)) {
                    matched = true
                }
            }
            return matched
        }
    }

    private static func globMatches(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
        var p = 0
        var t = 0
        var starPattern = -1
        var starText = 0
        while t < text.count {
            if p < pattern.count && (pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t]) {
                p += 1
                t += 1
            } else if p < pattern.count && pattern[p] == UInt8(ascii: "*") {
                starPattern = p
                starText = t
                p += 1
            } else if starPattern >= 0 {
                p = starPattern + 1
                starText += 1
                t = starText
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }

    private static func parseLine(_ rawLine: Substring, number: Int) throws -> Entry? {
        let line = rawLine.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
        if line.isEmpty || line.hasPrefix("#") { return nil }
        var fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        func fail(_ reason: String) -> ValidationError { ValidationError(line: number, reason: reason) }

        var marker = Marker.none
        if let first = fields.first, first.hasPrefix("@") {
            switch first {
            case "@revoked": marker = .revoked
            case "@cert-authority": marker = .certificateAuthority
            default: throw fail("unknown marker \(first) (expected @revoked or @cert-authority)")
            }
            fields.removeFirst()
        }
        guard fields.count >= 3 else {
            throw fail("expected 'hostpatterns keytype base64-key [comment]'")
        }
        let hosts = try parseHosts(fields[0], fail: fail)
        let keyType = fields[1]
        guard let blob = Data(base64Encoded: fields[2]).map(Array.init) else {
            throw fail("the key is not valid base64")
        }
        guard let embeddedType = SSHWire.firstString(in: blob) else {
            throw fail("the key is not an SSH public key blob")
        }
        guard embeddedType == keyType else {
            throw fail("key type \(keyType) does not match the key, which is \(embeddedType)")
        }
        return Entry(marker: marker, hosts: hosts, keyType: keyType, key: blob)
    }

    private static func parseHosts(_ field: String, fail: (String) -> ValidationError) throws -> HostMatcher {
        if field.hasPrefix("|") {
            let parts = field.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count == 4, parts[0].isEmpty, parts[1] == "1" else {
                throw fail("a hashed host must look like |1|base64-salt|base64-hash")
            }
            guard let salt = Data(base64Encoded: String(parts[2])), let hash = Data(base64Encoded: String(parts[3])),
                salt.count == 20, hash.count == 20
            else {
                throw fail("the hashed host's salt and hash must be 20 bytes of base64 each")
            }
            return .hashed(salt: Array(salt), hash: Array(hash))
        }
        let patterns = field.split(separator: ",", omittingEmptySubsequences: false).map { $0.lowercased() }
        for pattern in patterns {
            let body = pattern.hasPrefix("!") ? String(pattern.dropFirst()) : pattern
            guard !body.isEmpty else { throw fail("empty host pattern in '\(field)'") }
            if body.hasPrefix("[") {
                guard let close = body.firstIndex(of: "]"), body.index(after: close) < body.endIndex,
                    body[body.index(after: close)] == ":",
                    case let port = body[body.index(close, offsetBy: 2)...], !port.isEmpty,
                    port.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "*" || $0 == "?") })
                else {
                    throw fail("host pattern '\(body)' must look like [host]:port")
                }
            } else if body.contains("]") || body.contains("|") {
                throw fail("invalid host pattern '\(body)'")
            }
        }
        return .patterns(patterns)
    }
}

extension KnownHosts {
    /// The published SSH host keys of github.com, gitlab.com and bitbucket.org (ed25519, ECDSA, RSA).
    ///
    /// Checked against the fingerprints each service publishes (tests recompute them):
    /// GitHub's "GitHub's SSH key fingerprints", GitLab's "SSH host keys fingerprints" and
    /// Bitbucket Cloud's SSH host keys page (the keys introduced in 2023).
    public static let wellKnown: KnownHosts = {
        do {
            return try KnownHosts(wellKnownText)
        } catch {
            fatalError("built-in known_hosts text is invalid: \(error)")
        }
    }()

    static let wellKnownText = """
        github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl
        github.com ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=
        github.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCj7ndNxQowgcQnjshcLrqPEiiphnt+VTTvDP6mHBL9j1aNUkY4Ue1gvwnGLVlOhGeYrnZaMgRK6+PKCUXaDbC7qtbW8gIkhL7aGCsOr/C56SJMy/BCZfxd1nWzAOxSDPgVsmerOBYfNqltV9/hWCqBywINIR+5dIg6JTJ72pcEpEjcYgXkE2YEFXV1JHnsKgbLWNlhScqb2UmyRkQyytRLtL+38TGxkxCflmO+5Z8CSSNY7GidjMIZ7Q4zMjA2n1nGrlTDkzwDCsw+wqFPGQA179cnfGWOWRVruj16z6XyvxvjJwbz0wQZ75XK5tKSb7FNyeIEs4TT4jk+S4dhPeAUC5y+bDYirYgM4GC7uEnztnZyaVWQ7B381AK4Qdrwt51ZqExKbQpTUNn+EjqoTwvqNj4kqx5QUCI0ThS/YkOxJCXmPUWZbhjpCg56i+2aB6CmK2JGhn57K5mj0MNdBXA4/WnwH6XoPWJzK5Nyu2zB3nAZp+S5hpQs+p1vN1/wsjk=
        gitlab.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAfuCHKVTjquxvt6CM6tdG4SLp1Btn/nOeHHE5UOzRdf
        gitlab.com ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFSMqzJeV9rUzU4kWitGjeR4PWSa29SPqJ1fVkhtj3Hw9xjLVXVYrU9QlYWrOLXBpQ6KWjbjTDTdDkoohFzgbEY=
        gitlab.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCsj2bNKTBSpIYDEGk9KxsGh3mySTRgMtXL583qmBpzeQ+jqCMRgBqB98u3z++J1sKlXHWfM9dyhSevkMwSbhoR8XIq/U0tCNyokEi/ueaBMCvbcTHhO7FcwzY92WK4Yt0aGROY5qX2UKSeOvuP4D6TPqKF1onrSzH9bx9XUf2lEdWT/ia1NEKjunUqu1xOB/StKDHMoX4/OKyIzuS0q/T1zOATthvasJFoPrAjkohTyaDUz2LN5JoH839hViyEG82yB+MjcFV5MU3N1l1QL3cVUCh93xSaua1N85qivl+siMkPGbO5xR/En4iEY6K2XPASUEMaieWVNTRCtJ4S8H+9
        bitbucket.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIazEu89wgQZ4bqs3d63QSMzYVa0MuJ2e2gKTKqu+UUO
        bitbucket.org ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPIQmuzMBuKdWeF4+a2sjSSpBK0iqitSQ+5BM9KhpexuGt20JpTVM7u5BDZngncgrqDMbWdxMWWOGtZ9UgbqgZE=
        bitbucket.org ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQDQeJzhupRu0u0cdegZIa8e86EG2qOCsIsD1Xw0xSeiPDlCr7kq97NLmMbpKTX6Esc30NuoqEEHCuc7yWtwp8dI76EEEB1VqY9QJq6vk+aySyboD5QF61I/1WeTwu+deCbgKMGbUijeXhtfbxSxm6JwGrXrhBdofTsbKRUsrN1WoNgUa8uqN1Vx6WAJw1JHPhglEGGHea6QICwJOAr/6mrui/oB7pkaWKHj3z7d1IC4KWLtY47elvjbaTlkN04Kc/5LFEirorGYVbt15kAUlqGM65pk6ZBxtaO3+30LVlORZkxOh+LKL/BvbZ/iRNhItLqNyieoQj/uh/7Iv4uyH/cV/0b4WDSd3DptigWq84lJubb9t/DnZlrJazxyDCulTmKdOR7vs9gMTo+uoIrPSb8ScTtvw65+odKAlBj59dhnVp9zd7QUojOpXlL62Aw56U4oO+FALuevvMjiWeavKhJqlR7i5n9srYcrNV7ttmDw7kf/97P5zauIhxcjX+xHv4M=
        """
}
