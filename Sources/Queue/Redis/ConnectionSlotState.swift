import NIOCore

/// The reconnect logic of one pooled connection, as a plain value without I/O so it is tested
/// on its own (as postgres-nio tests its connection state machines).
///
/// A slot is idle (never connected, closed, or backing off after failures), connecting (every
/// caller waits on the one attempt), or connected. After `n` failed attempts in a row, callers
/// fail fast with the last error until `reconnectDelay × 2ⁿ⁻¹` (at most `maxReconnectDelay`)
/// has passed, so commands do not pile up on a server that is down.
struct ConnectionSlotState<Connection: Sendable, Attempt: Sendable>: Sendable {
    enum State {
        case idle(failures: Int, retryAt: NIODeadline, lastError: RedisError?)
        /// `closed`: the slot was closed while the attempt was on its way; the connection it
        /// brings is to be closed, not kept.
        case connecting(Attempt, failures: Int, closed: Bool)
        case connected(Connection)
    }

    /// What a caller that wants the connection must do.
    enum Action {
        case use(Connection)
        case wait(Attempt)
        case failFast(RedisError)
        /// Start an attempt and report it with ``connecting(_:)``, under the same lock.
        case connect
    }

    private(set) var state: State = .idle(failures: 0, retryAt: .uptimeNanoseconds(0), lastError: nil)
    let reconnectDelay: TimeAmount
    let maxReconnectDelay: TimeAmount

    init(reconnectDelay: TimeAmount, maxReconnectDelay: TimeAmount) {
        self.reconnectDelay = reconnectDelay
        self.maxReconnectDelay = maxReconnectDelay
    }

    /// A caller wants the connection at `now`; `isActive` says whether a connected one still is.
    mutating func acquire(now: NIODeadline, isActive: (Connection) -> Bool) -> Action {
        switch state {
        case .connected(let connection) where isActive(connection):
            return .use(connection)
        case .connecting(let attempt, _, _):
            return .wait(attempt)
        case .idle(let failures, let retryAt, let lastError) where failures > 0 && now < retryAt:
            return .failFast(lastError ?? RedisError(code: .unreachable, message: "reconnecting"))
        case .idle, .connected:
            return .connect
        }
    }

    /// The attempt the caller started after ``Action/connect``.
    mutating func connecting(_ attempt: Attempt) {
        let failures: Int
        if case .idle(let count, _, _) = state { failures = count } else { failures = 0 }
        state = .connecting(attempt, failures: failures, closed: false)
    }

    /// The attempt succeeded: the failure count starts over. Returns the connection when the
    /// slot was closed meanwhile: the caller closes it rather than keep it open after `close()`.
    @discardableResult
    mutating func connected(_ connection: Connection) -> Connection? {
        if case .connecting(_, _, true) = state {
            state = .idle(failures: 0, retryAt: .uptimeNanoseconds(0), lastError: nil)
            return connection
        }
        state = .connected(connection)
        return nil
    }

    /// The attempt failed at `now`: back off before the next one.
    mutating func connectFailed(_ error: RedisError?, now: NIODeadline) {
        guard case .connecting(_, let failures, _) = state else { return }
        let attempts = failures + 1
        let delay = min(reconnectDelay.nanoseconds << min(attempts - 1, 20), maxReconnectDelay.nanoseconds)
        state = .idle(failures: attempts, retryAt: now + .nanoseconds(delay), lastError: error)
    }

    /// Forgets a connected connection (to close it), or marks an attempt on its way to be closed
    /// when it connects; later callers connect again at once.
    mutating func close() -> Connection? {
        switch state {
        case .connected(let connection):
            state = .idle(failures: 0, retryAt: .uptimeNanoseconds(0), lastError: nil)
            return connection
        case .connecting(let attempt, let failures, _):
            state = .connecting(attempt, failures: failures, closed: true)
            return nil
        case .idle:
            return nil
        }
    }
}
