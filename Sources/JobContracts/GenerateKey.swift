import Foundation

/// `generate-key` (queue `keys`): makes the SSH key pair of an SSH key (a repository's deploy
/// key is one) or of an `ssh` secret. Payload: `{"id": "<uuid>", "kind": "ssh_key" | "secret"}`,
/// with `"replace": true` for a rekey, which replaces a pair the record has already.
public struct GenerateKey: JobContract, Hashable {
    public static let name = "generate-key"
    public static let queue = "keys"
    /// Generation is local and quick; retries are for Postgres being away, for as long as the
    /// default allows (a key waits for its pair).
    public static let retries = Retries(maxAttempts: 25, backoff: .polynomial)
    /// An RSA-4096 pair takes seconds at worst; the rest is one transaction.
    public static let timeout: Duration = .seconds(300)
    public static let visibilityTimeout: Duration? = .seconds(60)

    /// Which kind of record the key pair is for.
    public enum Kind: String, Codable, Sendable, Hashable {
        case sshKey = "ssh_key"
        case secret
    }

    public var kind: Kind
    public var id: UUID
    /// Replace the record's pair if it has one (a rekey); absent means no.
    public var replace: Bool?

    public init(kind: Kind, id: UUID, replace: Bool? = nil) {
        self.kind = kind
        self.id = id
        self.replace = replace
    }

    enum CodingKeys: String, CodingKey {
        case kind, id, replace
    }

    /// Ids in lowercase, as the store writes them; `replace` only when set.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        try container.encodeID(id, forKey: .id)
        try container.encodeIfPresent(replace, forKey: .replace)
    }
}
