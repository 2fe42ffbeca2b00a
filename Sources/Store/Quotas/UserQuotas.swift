/// Per-user limits on what one user may pile up for the workers: organizations, SSH keys waiting
/// for their pair (every one a `generate-key` job, RSA-4096 ones costly), and operations not
/// finished yet. `nil` is no limit. Platform admins are exempt.
///
/// Stores check a limit in the transaction that creates the row, after locking the user's row,
/// so requests at once cannot outrun it: the second waits for the first to commit, then counts
/// its row. Over a limit, they throw ``StoreError`` `quotaExceeded` naming it.
public struct UserQuotas: Sendable, Hashable {
    /// Live (not archived) organizations a user created (`--max-organizations-per-user`).
    public var organizations: Int?
    /// SSH keys (repositories' deploy keys among them) and `ssh` secrets a user created that are
    /// still waiting for their key pair, archived ones aside (`--max-pending-keys-per-user`).
    public var pendingKeys: Int?
    /// Operations a user requested (runs and retries) that are queued or running
    /// (`--max-queued-operations-per-user`).
    public var queuedOperations: Int?

    public init(organizations: Int? = nil, pendingKeys: Int? = nil, queuedOperations: Int? = nil) {
        self.organizations = organizations
        self.pendingKeys = pendingKeys
        self.queuedOperations = queuedOperations
    }

    /// No limits: the stores' default, for workers and tools.
    public static let unlimited = UserQuotas()
    /// The API server's defaults: 10 organizations, 10 pending keys, 100 queued operations.
    public static let defaults = UserQuotas(organizations: 10, pendingKeys: 10, queuedOperations: 100)
}
