import Foundation
import Store
import WorkerPool

/// `generate-key` (queue `keys`): makes the SSH key pair of an SSH key (a repository's deploy
/// key is one) or of an `ssh` secret. Payload: `{"kind": "ssh_key" | "secret", "id": "<uuid>"}`,
/// with `"replace": true` for a rekey, which replaces a pair the record has already.
public struct GenerateKey: Job, Hashable {
    public static let name = "generate-key"
    public static let queue = "keys"
    /// Generation is local and quick; retries are for Postgres being away.
    public static var retryPolicy: RetryPolicy { .default }

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
}

extension GenerateKey {
    /// The job for a record that holds key pairs.
    public init(owner: KeyPairStore.Owner, replace: Bool? = nil) {
        switch owner {
        case .sshKey(let id): self.init(kind: .sshKey, id: id, replace: replace)
        case .secret(let id): self.init(kind: .secret, id: id, replace: replace)
        }
    }

    /// The payload as the queue carries it.
    public func payload() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    enum CodingKeys: String, CodingKey {
        case kind, id, replace
    }

    /// Ids in lowercase, as the store writes them; `replace` only when set.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        try container.encode(id.uuidString.lowercased(), forKey: .id)
        try container.encodeIfPresent(replace, forKey: .replace)
    }
}
