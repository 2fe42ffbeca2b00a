import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Re-encrypts every stored secret that is not under the keyring's current key: secret values,
/// SSH private keys, webhook and webhook notifiers' signing secrets, GitHub tokens and repository tokens. Safe while the platform runs (every process
/// must already have the new key as `HARROW_SECRET_KEY` or the old one in
/// `HARROW_OLD_SECRET_KEYS`), in small transactions that lock only the rows they rewrite (waiting
/// for a row another transaction holds), and safe to run again after an interruption.
public struct SecretRotation: Sendable {
    /// A table column holding sealed values, with its key-id column.
    struct SealedColumn: Sendable {
        var table: String
        var column: String
        var keyColumn: String
    }

    static let columns = [
        SealedColumn(table: "secrets", column: "ciphertext", keyColumn: "key_id"),
        SealedColumn(table: "ssh_keys", column: "private_key_ciphertext", keyColumn: "key_id"),
        SealedColumn(table: "webhooks", column: "signing_secret_ciphertext", keyColumn: "key_id"),
        SealedColumn(table: "github_tokens", column: "ciphertext", keyColumn: "key_id"),
        SealedColumn(table: "repositories", column: "token_ciphertext", keyColumn: "token_key_id"),
        SealedColumn(table: "notifiers", column: "signing_secret_ciphertext", keyColumn: "key_id"),
    ]

    /// The context a value of `table`'s row `id` is sealed for.
    public static func context(table: String, id: UUID) -> String {
        "\(table):\(id.uuidString.lowercased())"
    }

    public let client: PostgresClient
    public let keyring: SecretKeyring
    let logger: Logger
    let batchSize: Int

    public init(client: PostgresClient, keyring: SecretKeyring, logger: Logger, batchSize: Int = 100) {
        self.client = client
        self.keyring = keyring
        self.logger = logger
        self.batchSize = max(1, batchSize)
    }

    /// What a rotation did: the values it rewrote, and those still under an older key when it
    /// ended (written meanwhile by a process that has not got the new key yet), per table.
    public struct Outcome: Sendable, Hashable {
        public var rewritten: [String: Int]
        public var remaining: [String: Int]

        /// Whether every value is under the current key.
        public var isComplete: Bool { remaining.values.allSatisfy { $0 == 0 } }
    }

    /// Re-encrypts everything under an older key. A row another transaction holds is waited
    /// for, not skipped; batches go on until one finds nothing, and the end counts what is still
    /// under an older key, so a rotation that reports success left nothing behind.
    @discardableResult
    public func run() async throws -> Outcome {
        var rewritten: [String: Int] = [:]
        for column in Self.columns {
            while true {
                let count = try await rotateBatch(column)
                rewritten[column.table, default: 0] += count
                if count == 0 { break }
            }
            logger.info("secrets re-encrypted", metadata: ["table": "\(column.table)", "count": "\(rewritten[column.table] ?? 0)"])
        }
        return Outcome(rewritten: rewritten, remaining: try await remaining())
    }

    /// The values under any key but the current one, per table.
    public func remaining() async throws -> [String: Int] {
        var remaining: [String: Int] = [:]
        for sealed in Self.columns {
            let rows = try await client.query(
                """
                SELECT count(*)::int8 FROM \(unescaped: sealed.table)
                WHERE \(unescaped: sealed.column) IS NOT NULL AND \(unescaped: sealed.keyColumn) <> \(keyring.current.id)
                """, logger: logger)
            for try await count in rows.decode(Int.self) { remaining[sealed.table] = count }
        }
        return remaining
    }

    private func rotateBatch(_ sealed: SealedColumn) async throws -> Int {
        let current = keyring.current.id
        // Table and column names come from the constant list above, never from input.
        let select: PostgresQuery = """
            SELECT id, \(unescaped: sealed.column), \(unescaped: sealed.keyColumn) FROM \(unescaped: sealed.table)
            WHERE \(unescaped: sealed.column) IS NOT NULL AND \(unescaped: sealed.keyColumn) <> \(current)
            ORDER BY id LIMIT \(batchSize) FOR UPDATE
            """
        return try await client.inTransaction(logger: logger) { connection in
            var rows: [(UUID, ByteBuffer, String)] = []
            for try await (id, ciphertext, keyID) in try await connection.query(select, logger: logger).decode(
                (UUID, ByteBuffer, String).self)
            {
                rows.append((id, ciphertext, keyID))
            }
            for (id, ciphertext, keyID) in rows {
                let context = Self.context(table: sealed.table, id: id)
                let plaintext = try keyring.open(
                    SecretKeyring.Sealed(ciphertext: Array(ciphertext.readableBytesView), keyID: keyID), context: context)
                let resealed = try keyring.seal(plaintext, context: context)
                try await connection.query(
                    """
                    UPDATE \(unescaped: sealed.table) SET \(unescaped: sealed.column) = \(ByteBuffer(bytes: resealed.ciphertext)),
                    \(unescaped: sealed.keyColumn) = \(resealed.keyID) WHERE id = \(id)
                    """, logger: logger)
            }
            return rows.count
        }
    }
}
