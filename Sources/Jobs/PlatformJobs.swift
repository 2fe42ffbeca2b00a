import Logging
import PostgresNIO
import Store
import WorkerPool

/// Harrow's own job types and their handlers, for `worker` to register: `generate-key` so far.
public struct PlatformJobs: Sendable {
    let database: PostgresClient
    let keyring: SecretKeyring
    let logger: Logger

    public init(database: PostgresClient, keyring: SecretKeyring, logger: Logger) {
        self.database = database
        self.keyring = keyring
        self.logger = logger
    }

    /// Registers every platform job type's handler.
    public func register(in registry: inout JobRegistry) throws {
        try KeyGenerator(pairs: KeyPairStore(client: database, keyring: keyring, logger: logger), database: database)
            .register(in: &registry)
    }
}
