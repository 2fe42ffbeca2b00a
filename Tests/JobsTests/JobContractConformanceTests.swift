import JobContracts
import Testing
import WorkerPool

@testable import Jobs

/// The platform's job types are their contracts: the worker's view of each (retry policy,
/// timeout, visibility timeout) is the contract's, not the `Job` protocol's defaults.
@Suite struct JobContractConformanceTests {
    /// What the worker reads, through `Job`'s witnesses.
    static func worker<J: Job>(_: J.Type) -> (name: String, queue: String, attempts: Int, timeout: Duration, visibility: Duration?) {
        (J.name, J.queue, J.retryPolicy.maxAttempts, J.timeout, J.visibilityTimeout)
    }

    /// What the contract says, through `JobContract`'s.
    static func contract<C: JobContract>(
        _: C.Type
    ) -> (name: String, queue: String, attempts: Int, timeout: Duration, visibility: Duration?) {
        (C.name, C.queue, C.retries.maxAttempts, C.timeout, C.visibilityTimeout)
    }

    static func check<J: Job & JobContract>(_ type: J.Type) {
        #expect(worker(type) == contract(type), "\(J.name)")
    }

    @Test func everyContractIsAJobWithItsPolicy() {
        Self.check(GenerateKey.self)
        Self.check(SendMail.self)
        Self.check(RunOperation.self)
        Self.check(PollRepo.self)
        Self.check(PostStatus.self)
        // Not the protocol's default of 25.
        #expect(SendMail.retryPolicy.maxAttempts == 10)
        #expect(RunOperation.retryPolicy.maxAttempts == 6)
    }

    /// The contract's plain backoff values become the same rule in the worker.
    @Test func backoffsMapToTheWorkersRules() {
        let exponential = RetryPolicy(Retries(maxAttempts: 5, backoff: .exponential(base: .seconds(10), maximum: .seconds(60))))
        let first = exponential.backoff.delay(afterAttempt: 1)
        #expect(first >= .seconds(10) && first < .seconds(11))
        let third = exponential.backoff.delay(afterAttempt: 3)
        #expect(third >= .seconds(40) && third < .seconds(44))
        let late = exponential.backoff.delay(afterAttempt: 20)
        #expect(late >= .seconds(60) && late < .seconds(66))

        let constant = RetryPolicy(Retries(maxAttempts: 2, backoff: .constant(.seconds(7))))
        #expect(constant.maxAttempts == 2)
        #expect(constant.backoff.delay(afterAttempt: 1) == .seconds(7))

        let polynomial = RetryPolicy(Retries(maxAttempts: 25, backoff: .polynomial))
        let delay = polynomial.backoff.delay(afterAttempt: 2)
        #expect(delay >= .seconds(31) && delay < .seconds(31 + 30))
    }
}
