import Foundation
import JobContracts
import Logging
import NIOPosix
import PostgresNIO
import Store
import WorkerPool

/// Runs `generate-key` jobs: generates the pair, then stores it sealed, with its fingerprint, an
/// activity and the job's run, in one transaction. A redelivered job, a record that has its pair
/// already (unless the job replaces it) and a record archived before the job ran change nothing.
///
/// An RSA-4096 pair takes up to seconds of a core: it is made on `threadPool`, off the
/// concurrency pool, under a permit of `rsaLimiter`; with none free, the job snoozes for
/// `rsaSnooze` (plus up to as much again of jitter, so snoozed jobs do not all come back at once)
/// and gives its worker slot back. An ed25519 pair takes microseconds: it is made at once, in
/// the handler, so it never waits behind RSA ones, for a permit or for a thread of the pool.
public struct KeyGenerator: Sendable {
    let pairs: KeyPairStore
    let database: PostgresClient
    let threadPool: NIOThreadPool
    let rsaLimiter: RSAGenerationLimiter
    let rsaSnooze: Duration

    public init(
        pairs: KeyPairStore, database: PostgresClient, threadPool: NIOThreadPool = .singleton,
        rsaLimiter: RSAGenerationLimiter = RSAGenerationLimiter(limit: 1), rsaSnooze: Duration = .seconds(2)
    ) {
        self.pairs = pairs
        self.database = database
        self.threadPool = threadPool
        self.rsaLimiter = rsaLimiter
        self.rsaSnooze = rsaSnooze
    }

    /// Registers the handler for ``GenerateKey``.
    public func register(in registry: inout JobRegistry) throws {
        try registry.register(GenerateKey.self) { job, context in try await run(job, context: context) }
    }

    func run(_ job: GenerateKey, context: JobContext) async throws {
        let logger = context.logger
        if let outcome = try await JobRuns.outcome(of: context.id, client: database, logger: logger) {
            logger.info("generate-key: this job ran already; nothing to do", metadata: ["outcome": "\(outcome)"])
            return
        }
        let owner = job.owner
        let replace = job.replace ?? false
        guard let holder = try await pairs.holder(owner) else {
            logger.notice("generate-key: \(owner) is archived or does not exist; skipped")
            try await JobRuns.record(
                context.id, type: GenerateKey.name, outcome: KeyPairStore.Outcome.gone.rawValue, client: database, logger: logger)
            return
        }
        guard replace || !holder.hasKeyPair else {
            logger.info("generate-key: \(owner) has its key pair already; skipped")
            return
        }
        let algorithm: OpenSSHKeyPair.Algorithm = holder.algorithm == .rsa ? .rsa4096 : .ed25519
        let comment = Self.comment(for: holder)
        let generated: OpenSSHKeyPair
        do {
            generated = try await generate(algorithm, comment: comment)
        } catch let error as OpenSSHKeyPair.GenerationError {
            throw JobFailure.permanent("generate-key: \(error)")
        }
        let pair = KeyPairStore.KeyPair(
            publicKey: generated.publicKey, privateKey: Array(generated.privateKey.utf8), fingerprint: generated.fingerprint)
        let outcome: KeyPairStore.Outcome
        do {
            outcome = try await pairs.store(pair, for: owner, replace: replace, job: (context.id, GenerateKey.name))
        } catch let error as StoreError where error.code == .invalid || error.code == .crypto {
            throw JobFailure.permanent("generate-key: \(error)")
        }
        logger.info(
            "generate-key: \(owner): \(outcome.rawValue)",
            metadata: ["fingerprint": "\(generated.fingerprint)", "algorithm": "\(algorithm.rawValue)"])
    }

    /// A new pair: ed25519 at once; RSA on the thread pool under a permit, or a snooze when all
    /// permits are out.
    func generate(_ algorithm: OpenSSHKeyPair.Algorithm, comment: String) async throws -> OpenSSHKeyPair {
        switch algorithm {
        case .ed25519:
            return try OpenSSHKeyPair.generate(.ed25519, comment: comment)
        case .rsa4096:
            let generated = try await rsaLimiter.withPermit {
                try await threadPool.runIfActive { try OpenSSHKeyPair.generate(.rsa4096, comment: comment) }
            }
            guard let generated else {
                throw JobFailure.snooze(
                    after: rsaSnooze + rsaSnooze * Double.random(in: 0..<1),
                    "generate-key: \(rsaLimiter.limit) RSA generation(s) already run in this worker (--rsa-concurrency)")
            }
            return generated
        }
    }

    /// The key's comment: what it is for, on one line (names have no control characters).
    static func comment(for holder: KeyPairStore.Holder) -> String {
        let name = holder.name.unicodeScalars.filter { !$0.properties.isWhitespace || $0 == " " }
        return "harrow: \(String(String.UnicodeScalarView(name)))"
    }
}
