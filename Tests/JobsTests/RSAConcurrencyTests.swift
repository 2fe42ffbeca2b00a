import Foundation
import HarrowTestSupport
import JobContracts
import Queue
import Store
import Synchronization
import Testing
import WorkerPool

@testable import Jobs

/// `worker --rsa-concurrency`: at most N RSA generations at once per process; surplus RSA jobs
/// snooze (their worker slot goes back) and ed25519 jobs never wait for RSA ones.
@Suite struct RSAConcurrencyTests {
    /// Counts shared by the tasks of a test.
    final class Tally: Sendable {
        private let state = Mutex((inside: 0, most: 0, refused: 0, open: false))

        func enter() {
            state.withLock {
                $0.inside += 1
                $0.most = max($0.most, $0.inside)
            }
        }
        func leave() { state.withLock { $0.inside -= 1 } }
        func refuse() { state.withLock { $0.refused += 1 } }
        func openGate() { state.withLock { $0.open = true } }
        var most: Int { state.withLock { $0.most } }
        var refused: Int { state.withLock { $0.refused } }
        var isOpen: Bool { state.withLock { $0.open } }
    }

    /// 50 tasks ask at once while every holder waits at a gate: exactly the limit get a permit,
    /// the others are refused at once (not made to wait), and the permits come back.
    @Test func theLimiterNeverHandsOutMoreThanItsLimit() async throws {
        let limiter = RSAGenerationLimiter(limit: 3)
        let tally = Tally()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    let ran = try await limiter.withPermit {
                        tally.enter()
                        defer { tally.leave() }
                        while !tally.isOpen { try await Task.sleep(for: .milliseconds(5)) }
                        return true
                    }
                    if ran == nil { tally.refuse() }
                }
            }
            try await eventually("all but the limit are refused") { tally.refused == 47 }
            #expect(limiter.running == 3)
            tally.openGate()
            try await group.waitForAll()
        }
        #expect(tally.most == 3)
        #expect(limiter.peak == 3)
        #expect(limiter.refusals == 47)
        #expect(limiter.running == 0)
        #expect(try await limiter.withPermit { true } == true, "permits are given back")
    }

    /// A harness whose worker (4 slots) runs `generate-key` under `limiter`, snoozing 100 ms.
    static func withKeyGenerator(
        _ name: String, limiter: RSAGenerationLimiter, _ body: (JobsHarness) async throws -> Void
    ) async throws {
        try await JobsHarness.with(
            name,
            register: { harness, registry in
                try KeyGenerator(
                    pairs: harness.keyPairs, database: harness.database, rsaLimiter: limiter, rsaSnooze: .milliseconds(100)
                ).register(in: &registry)
            }, body)
    }

    /// Creates keys of `algorithm` and enqueues their jobs; returns their ids.
    static func keys(_ count: Int, _ algorithm: SSHKey.Algorithm, in harness: JobsHarness) async throws -> [UUID] {
        var ids: [UUID] = []
        for number in 1...count {
            let key = try await harness.sshKeys.create(
                project: harness.project, name: "\(algorithm.rawValue) \(number)", algorithm: algorithm, actor: nil)
            ids.append(key.id)
        }
        _ = try await harness.jobQueue.enqueue(batch: ids.map { GenerateKey(kind: .sshKey, id: $0) })
        return ids
    }

    static func present(_ ids: [UUID], in harness: JobsHarness) async throws -> Int {
        var present = 0
        for id in ids where try await harness.sshKeys.find(id, project: harness.project).status == .present { present += 1 }
        return present
    }

    /// With a limit of 1 and three RSA jobs delivered together, one generates at a time, the
    /// others snooze until it is done, and all three end with their pair; nothing is dead.
    @Test func surplusRSAJobsSnoozeAndAllComplete() async throws {
        let limiter = RSAGenerationLimiter(limit: 1)
        try await Self.withKeyGenerator("keys_rsa_snooze", limiter: limiter) { harness in
            let ids = try await Self.keys(3, .rsa, in: harness)
            try await eventually("the three RSA keys are present", timeout: .seconds(180), poll: .milliseconds(100)) {
                try await Self.present(ids, in: harness) == 3
            }
            #expect(limiter.peak == 1)
            #expect(limiter.refusals > 0, "surplus jobs snoozed")
            let stats = try await harness.jobQueue.stats(queues: ["keys"])[0]
            #expect(stats.dead == 0)
            for id in ids {
                #expect(try await harness.sshKeys.find(id, project: harness.project).publicKey?.hasPrefix("ssh-rsa ") == true)
            }
        }
    }

    /// Every RSA permit is taken (as by a long generation) and six RSA jobs, more than the
    /// worker's four slots, come first: the three ed25519 jobs behind them still run, because
    /// the RSA jobs snooze instead of waiting in the slots. Once the permit is back, the RSA
    /// keys get their pairs too.
    @Test func ed25519KeysAreNotHeldUpByRSAOnes() async throws {
        let limiter = RSAGenerationLimiter(limit: 1)
        try await Self.withKeyGenerator("keys_ed25519_not_held", limiter: limiter) { harness in
            #expect(limiter.acquire())
            let rsa = try await Self.keys(6, .rsa, in: harness)
            let ed25519 = try await Self.keys(3, .ed25519, in: harness)
            try await eventually("the ed25519 keys are present") { try await Self.present(ed25519, in: harness) == 3 }
            #expect(try await Self.present(rsa, in: harness) == 0)
            #expect(limiter.refusals > 0)
            limiter.release()
            try await eventually("the RSA keys are present", timeout: .seconds(300), poll: .milliseconds(100)) {
                try await Self.present(rsa, in: harness) == 6
            }
            #expect(limiter.peak == 1)
        }
    }
}
