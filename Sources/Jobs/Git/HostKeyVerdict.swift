/// Whether the SSH host key a server presented belongs to that server.
public enum HostKeyVerdict: Sendable, Hashable {
    case trusted
    /// Not trusted; the message says why (unknown host, key changed, …) and ends up in the error.
    case rejected(String)
}

/// Decides whether `key`, the raw SSH public key blob (the base64-decoded middle field of a
/// known_hosts line) of type `keyType` (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, …), is the
/// key of `host`:`port`. Called on the thread doing the transfer; it must not block for long.
public typealias HostKeyVerifier =
    @Sendable (_ host: String, _ port: Int, _ keyType: String, _ key: [UInt8]) -> HostKeyVerdict
