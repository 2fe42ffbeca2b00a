import Foundation
import Logging
import NIOCore
import PostgresNIO

/// The key pairs `generate-key` jobs make, for SSH keys (repositories' deploy keys among them)
/// and `ssh` secrets: what a job needs to know about the record, storing a pair (sealed with the
/// keyring, with its fingerprint and an activity, and the job's run, in one transaction), and
/// the records a rekey covers.
public struct KeyPairStore: Sendable {
    /// A record that holds, or waits for, a key pair.
    public enum Owner: Sendable, Hashable, CustomStringConvertible {
        case sshKey(UUID)
        case secret(UUID)

        public var id: UUID {
            switch self {
            case .sshKey(let id), .secret(let id): id
            }
        }

        public var description: String {
            switch self {
            case .sshKey(let id): "SSH key \(id.uuidString.lowercased())"
            case .secret(let id): "secret \(id.uuidString.lowercased())"
            }
        }

        var table: String {
            switch self {
            case .sshKey: "ssh_keys"
            case .secret: "secrets"
            }
        }

        var ciphertextColumn: String {
            switch self {
            case .sshKey: "private_key_ciphertext"
            case .secret: "ciphertext"
            }
        }

        /// Only `ssh` secrets hold key pairs.
        var onlyKeyHolders: String {
            switch self {
            case .sshKey: ""
            case .secret: "AND kind = 'ssh'"
            }
        }

        var activityPrefix: String {
            switch self {
            case .sshKey: "ssh_key"
            case .secret: "secret"
            }
        }
    }

    /// A live record as a job sees it before generating its pair.
    public struct Holder: Sendable, Hashable {
        public var owner: Owner
        public var projectID: UUID
        public var name: String
        public var algorithm: SSHKey.Algorithm
        public var hasKeyPair: Bool
    }

    /// A generated pair: the public key line, the private key's bytes (sealed before they are
    /// stored) and the `SHA256:` fingerprint.
    public struct KeyPair: Sendable {
        public var publicKey: String
        public var privateKey: [UInt8]
        public var fingerprint: String

        public init(publicKey: String, privateKey: [UInt8], fingerprint: String) {
            self.publicKey = publicKey
            self.privateKey = privateKey
            self.fingerprint = fingerprint
        }
    }

    /// What storing a pair did.
    public enum Outcome: String, Sendable, Hashable {
        /// The record had no pair; now it has this one.
        case stored
        /// The record's pair was replaced (a rekey).
        case replaced
        /// The job was recorded as run already: nothing changed.
        case alreadyRan = "already_ran"
        /// The record has a pair and the job did not ask to replace it: nothing changed.
        case hasKeyPair = "has_key_pair"
        /// The record is archived or does not exist: nothing changed.
        case gone
    }

    let client: PostgresClient
    let keyring: SecretKeyring
    let logger: Logger

    public init(client: PostgresClient, keyring: SecretKeyring, logger: Logger) {
        self.client = client
        self.keyring = keyring
        self.logger = logger
    }

    /// The live record, or `nil` when it is archived or does not exist.
    public func holder(_ owner: Owner) async throws -> Holder? {
        try await client.read { connection in
            let algorithm = owner.table == "ssh_keys" ? "algorithm" : "'ed25519'"
            return try await connection.first(
                """
                SELECT project_id, name, \(unescaped: algorithm), status FROM \(unescaped: owner.table)
                WHERE id = \(owner.id) AND archived_at IS NULL \(unescaped: owner.onlyKeyHolders)
                """, logger: logger
            ) { row in
                let (project, name, algorithm, status) = try row.decode((UUID, String, String, String).self)
                return Holder(
                    owner: owner, projectID: project, name: name, algorithm: try SSHKey.Algorithm(stored: algorithm, column: "algorithm"),
                    hasKeyPair: status == "present")
            }
        }
    }

    /// Stores `pair` for a live record that has none, or replaces its pair when `replace`; with
    /// the activity `<ssh_key|secret>.generated` (or `.regenerated`) and, when `job` is given,
    /// its `job_runs` record, all in one transaction. A job recorded already changes nothing.
    public func store(_ pair: KeyPair, for owner: Owner, replace: Bool, job: (id: String, type: String)?) async throws -> Outcome {
        let publicKey = pair.publicKey.trimmingWhitespace()
        let fingerprint = pair.fingerprint.trimmingWhitespace()
        guard !publicKey.isEmpty, publicKey.utf8.count <= 16_384, !publicKey.contains(where: \.isNewline) else {
            throw StoreError.invalid("public_key", "the public key must be one line of 1 to 16384 bytes")
        }
        guard !fingerprint.isEmpty, fingerprint.count <= 200 else {
            throw StoreError.invalid("fingerprint", "the fingerprint must be 1 to 200 characters")
        }
        guard !pair.privateKey.isEmpty else { throw StoreError.invalid("private_key", "the private key must not be empty") }
        let sealed = try keyring.seal(pair.privateKey, context: SecretRotation.context(table: owner.table, id: owner.id))
        do {
            return try await client.write(logger: logger) { connection in
                // The row is locked first, so the status it had is the one this update replaces.
                let updated = try await connection.first(
                    """
                    WITH before AS (
                        SELECT id, status FROM \(unescaped: owner.table)
                        WHERE id = \(owner.id) AND archived_at IS NULL \(unescaped: owner.onlyKeyHolders) FOR UPDATE
                    )
                    UPDATE \(unescaped: owner.table) AS target SET public_key = \(publicKey), fingerprint = \(fingerprint),
                        \(unescaped: owner.ciphertextColumn) = \(ByteBuffer(bytes: sealed.ciphertext)), key_id = \(sealed.keyID),
                        status = 'present', updated_at = now()
                    FROM before WHERE target.id = before.id AND (before.status = 'pending' OR \(replace))
                    RETURNING target.project_id, before.status
                    """, logger: logger, { try $0.decode((UUID, String).self) })
                guard let (project, previous) = updated else {
                    let live = try await connection.first(
                        """
                        SELECT 1::int4 FROM \(unescaped: owner.table)
                        WHERE id = \(owner.id) AND archived_at IS NULL \(unescaped: owner.onlyKeyHolders)
                        """, logger: logger, { try $0.decode(Int32.self) })
                    return live == nil ? .gone : .hasKeyPair
                }
                let outcome: Outcome = previous == "present" ? .replaced : .stored
                try await ActivityLog.record(
                    "\(owner.activityPrefix).\(outcome == .replaced ? "regenerated" : "generated")", project: project, actor: nil,
                    payload: ["\(owner.activityPrefix)_id": owner.id.uuidString.lowercased(), "fingerprint": fingerprint],
                    on: connection, logger: logger)
                if let job, try await !JobRuns.record(job.id, type: job.type, outcome: outcome.rawValue, on: connection, logger: logger) {
                    throw RanAlready()
                }
                return outcome
            }
        } catch is RanAlready {
            return .alreadyRan
        }
    }

    /// Rolls back a transaction whose job another delivery finished first.
    private struct RanAlready: Error {}

    /// Every live record that holds key pairs, SSH keys first, oldest first; with
    /// `missingOnly`, those still without one.
    public func owners(missingOnly: Bool) async throws -> [Owner] {
        let status = missingOnly ? "AND status = 'pending'" : ""
        return try await client.read { connection in
            let keys = try await connection.all(
                "SELECT id FROM ssh_keys WHERE archived_at IS NULL \(unescaped: status) ORDER BY created_at, id", logger: logger,
                { Owner.sshKey(try $0.decode(UUID.self)) })
            let secrets = try await connection.all(
                "SELECT id FROM secrets WHERE archived_at IS NULL AND kind = 'ssh' \(unescaped: status) ORDER BY created_at, id",
                logger: logger, { Owner.secret(try $0.decode(UUID.self)) })
            return keys + secrets
        }
    }
}
