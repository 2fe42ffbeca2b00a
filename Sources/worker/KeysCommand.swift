import ArgumentParser
import CommandSupport
import FoundationEssentials
import JobContracts
import Jobs
import Store

/// `worker keys`: queue `generate-key` jobs for many records at once (after a restore that lost
/// key material, or to retire every key).
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Queue key generation for SSH keys and ssh secrets.",
        subcommands: [RekeyMissing.self, Rekey.self])

    /// `worker keys rekey-missing`
    struct RekeyMissing: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rekey-missing",
            abstract: "Queue a generate-key job for every live SSH key and ssh secret that has no key pair yet.")

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let count = try await KeysCommand.enqueue(missingOnly: true, database: database, logging: logging)
            print("keys rekey-missing: queued \(count) generate-key job(s)")
        }
    }

    /// `worker keys rekey --yes`
    struct Rekey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rekey",
            abstract: "Queue a generate-key job that replaces the key pair of every live SSH key and ssh secret.",
            discussion: """
                Every deploy key and SSH key gets a new pair: the public keys installed at git \
                hosts and servers stop working until the new ones are installed. Hence --yes.
                """)

        @Flag(help: "Confirm that every key pair is to be replaced.") var yes = false
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            guard yes else {
                throw ValidationError(
                    "rekey replaces keys that users have installed elsewhere (git hosts, servers): pass --yes to do it")
            }
        }

        func run() async throws {
            let count = try await KeysCommand.enqueue(missingOnly: false, database: database, logging: logging)
            print("keys rekey: queued \(count) generate-key job(s) that replace key pairs")
        }
    }

    /// Queues the jobs through the outbox, in one transaction: a running worker's relay moves
    /// them to the `keys` queue.
    static func enqueue(missingOnly: Bool, database: DatabaseOptions, logging: LoggingOptions) async throws -> Int {
        let logger = logging.bootstrap()
        let keyring = try SecretKeyring(environment: ProcessInfo.processInfo.environment)
        return try await Database.withClient(try database.requiredConfiguration(), logger: logger) { client in
            try await Migrator(client: client, logger: logger).requireCurrent()
            let owners = try await KeyPairStore(client: client, keyring: keyring, logger: logger).owners(missingOnly: missingOnly)
            let jobs = try owners.map { try OutboxJob(GenerateKey(owner: $0, replace: missingOnly ? nil : true)) }
            try await client.inTransaction(logger: logger) { connection in
                try await Outbox.enqueue(jobs, on: connection, logger: logger)
            }
            return jobs.count
        }
    }
}
