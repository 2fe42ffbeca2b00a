import Crypto

/// One step of the database schema: SQL applied once, in version order, in one transaction.
///
/// Migrations are compiled into the binaries (not read from files next to them) so that a
/// process always knows exactly the schema it was built for, and its checksum.
public struct Migration: Sendable, Hashable {
    public var version: Int
    public var name: String
    public var sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// SHA-256 of the SQL, hex: an applied migration whose text changed is refused.
    public var checksum: String {
        Hex.encode(SHA256.hash(data: Array(sql.utf8)))
    }

    /// Every migration of this version of Harrow, in order.
    public static let all: [Migration] = [
        .domain, .secretFingerprints, .gitHubTokens, .outboxPolicy, .operationRuns, .repositoryTokens, .creators, .scheduleFiring,
        .repositoryPolling, .jobNotifiers, .webhookNotifiers, .operationStatusIndex,
    ]
}
