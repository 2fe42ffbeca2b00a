import Foundation

/// An SSH key pair of a project, such as a repository's deploy key. A worker generates the pair
/// after the key is created (`pending` until then); the record carries only the public half.
public struct SSHKey: Sendable, Hashable, Codable {
    /// The kind of key pair.
    public enum Algorithm: String, Sendable, Hashable, Codable, CaseIterable {
        case ed25519, rsa
    }

    /// Whether the key material exists yet.
    public enum Status: String, Sendable, Hashable, Codable, CaseIterable {
        /// Created; the worker has not stored the pair yet.
        case pending
        /// The pair is stored: the public key and fingerprint are set.
        case present
    }

    public var id: UUID
    public var projectID: UUID
    public var name: String
    public var algorithm: Algorithm
    public var status: Status
    /// The public key in OpenSSH format, once generated.
    public var publicKey: String?
    /// The public key's fingerprint (`SHA256:…`), once generated.
    public var fingerprint: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}
