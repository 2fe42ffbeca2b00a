import ArgumentParser
import CommandSupport
import Foundation
import Store

/// `worker rotate-secrets`: re-encrypts every stored secret under the current master key.
struct RotateSecretsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-secrets", abstract: "Re-encrypt every stored secret under HARROW_SECRET_KEY.",
        discussion: """
            Rotation without downtime: generate a key, restart every process with it as \
            HARROW_SECRET_KEY and the old one in HARROW_OLD_SECRET_KEYS, run this command, then \
            drop the old key. Safe to run again, and while the platform runs. Exits with status 1 \
            when values remain under an older key at the end (a process still sealing with it).
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = logging.bootstrap()
        let keyring = try SecretKeyring(environment: ProcessInfo.processInfo.environment)
        let outcome = try await Database.withClient(try database.requiredConfiguration(), logger: logger) { client in
            try await Migrator(client: client, logger: logger).requireCurrent()
            return try await SecretRotation(client: client, keyring: keyring, logger: logger).run()
        }
        let summary = outcome.rewritten.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        print("rotate-secrets: re-encrypted under key \(keyring.current.id): \(summary)")
        guard outcome.isComplete else {
            // Written under an old key while this ran: a process still has the old key as current.
            let left = outcome.remaining.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            FileHandle.standardError.write(
                Data(
                    ("rotate-secrets: still under an older key: \(left.joined(separator: " ")); restart every process with "
                        + "HARROW_SECRET_KEY set to the new key and run this again\n").utf8))
            throw ExitCode(1)
        }
    }
}
