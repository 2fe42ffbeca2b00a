import Synchronization

/// At most ``limit`` RSA key generations at once in this process (`worker --rsa-concurrency`).
/// A `generate-key` job that finds no permit free snoozes rather than waiting in its worker slot:
/// RSA jobs then never hold every slot of a worker, and ed25519 jobs, which take no permit, are
/// never held up by them.
public final class RSAGenerationLimiter: Sendable {
    /// Most permits out at once.
    public let limit: Int
    private let state = Mutex(State())

    private struct State {
        var running = 0
        var peak = 0
        var refusals = 0
    }

    /// A limiter of `limit` permits (at least 1).
    public init(limit: Int) {
        precondition(limit >= 1, "an RSA generation limit must be at least 1")
        self.limit = limit
    }

    /// Runs `body` holding a permit, or returns `nil` at once, without running it, when all
    /// ``limit`` are out.
    public func withPermit<T: Sendable>(_ body: () async throws -> T) async throws -> T? {
        guard acquire() else { return nil }
        defer { release() }
        return try await body()
    }

    /// Takes a permit if one is free.
    func acquire() -> Bool {
        state.withLock { state in
            guard state.running < limit else {
                state.refusals += 1
                return false
            }
            state.running += 1
            state.peak = max(state.peak, state.running)
            return true
        }
    }

    /// Gives back a permit ``acquire()`` took.
    func release() {
        state.withLock { $0.running -= 1 }
    }

    /// Permits out now.
    public var running: Int { state.withLock { $0.running } }

    /// The most permits that were out at once since this limiter was made.
    public var peak: Int { state.withLock { $0.peak } }

    /// Permits refused since this limiter was made: in `generate-key`, each one a snoozed job.
    public var refusals: Int { state.withLock { $0.refusals } }
}
