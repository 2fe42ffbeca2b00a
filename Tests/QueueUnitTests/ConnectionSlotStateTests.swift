import NIOCore
import Testing

@testable import Queue

/// The pooled connection's reconnect logic, without a server: who connects, who waits, who
/// fails fast, and how the backoff grows and resets.
@Suite("Connection slot state")
struct ConnectionSlotStateTests {
    /// A stand-in connection: the state machine only asks whether it is still active.
    final class FakeConnection: Sendable {
        let active: Bool
        init(active: Bool = true) { self.active = active }
    }

    typealias Slot = ConnectionSlotState<FakeConnection, Int>

    static func slot() -> Slot { Slot(reconnectDelay: .milliseconds(100), maxReconnectDelay: .seconds(5)) }
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
    static let refused = RedisError(code: .unreachable, message: "connection refused")

    @Test func theFirstCallerConnectsAndTheOthersWaitForTheSameAttempt() {
        var slot = Self.slot()
        guard case .connect = slot.acquire(now: Self.start, isActive: \.active) else {
            Issue.record("expected connect")
            return
        }
        slot.connecting(7)
        guard case .wait(let attempt) = slot.acquire(now: Self.start, isActive: \.active) else {
            Issue.record("expected wait")
            return
        }
        #expect(attempt == 7)
        let connection = FakeConnection()
        slot.connected(connection)
        guard case .use(let used) = slot.acquire(now: Self.start, isActive: \.active) else {
            Issue.record("expected use")
            return
        }
        #expect(used === connection)
    }

    @Test func failuresFailFastUntilABackoffThatDoublesUpToItsMaximum() {
        var slot = Self.slot()
        var now = Self.start
        var delays: [Int64] = []
        for _ in 0..<8 {
            guard case .connect = slot.acquire(now: now, isActive: \.active) else {
                Issue.record("expected connect")
                return
            }
            slot.connecting(0)
            slot.connectFailed(Self.refused, now: now)
            // Within the backoff, callers get the last error at once instead of piling up.
            guard case .failFast(let error) = slot.acquire(now: now + .milliseconds(50), isActive: \.active) else {
                Issue.record("expected failFast")
                return
            }
            #expect(error == Self.refused)
            guard case .idle(_, let retryAt, _) = slot.state else {
                Issue.record("expected idle")
                return
            }
            delays.append((retryAt - now).nanoseconds / 1_000_000)
            now = retryAt
        }
        #expect(delays == [100, 200, 400, 800, 1600, 3200, 5000, 5000])

        // A success starts the count over.
        guard case .connect = slot.acquire(now: now, isActive: \.active) else {
            Issue.record("expected connect")
            return
        }
        slot.connecting(0)
        slot.connected(FakeConnection())
        _ = slot.close()
        guard case .connect = slot.acquire(now: now, isActive: \.active) else {
            Issue.record("expected connect")
            return
        }
        slot.connecting(0)
        slot.connectFailed(Self.refused, now: now)
        guard case .idle(1, let retryAt, _) = slot.state else {
            Issue.record("expected one failure")
            return
        }
        #expect(retryAt - now == .milliseconds(100))
    }

    @Test func aDroppedConnectionIsReplacedOnTheNextCall() {
        var slot = Self.slot()
        _ = slot.acquire(now: Self.start, isActive: \.active)
        slot.connecting(0)
        slot.connected(FakeConnection(active: false))
        guard case .connect = slot.acquire(now: Self.start, isActive: \.active) else {
            Issue.record("expected connect")
            return
        }
    }

    @Test func closeHandsOverTheConnectionOnce() {
        var slot = Self.slot()
        #expect(slot.close() == nil)
        _ = slot.acquire(now: Self.start, isActive: \.active)
        slot.connecting(0)
        let connection = FakeConnection()
        slot.connected(connection)
        #expect(slot.close() === connection)
        #expect(slot.close() == nil)
    }

    @Test func aConnectionThatArrivesAfterCloseIsHandedBackToBeClosed() {
        var slot = Self.slot()
        _ = slot.acquire(now: Self.start, isActive: \.active)
        slot.connecting(0)
        #expect(slot.close() == nil)
        let late = FakeConnection()
        #expect(slot.connected(late) === late, "a connection opened after close() would stay open")
        guard case .connect = slot.acquire(now: Self.start, isActive: \.active) else {
            Issue.record("expected connect")
            return
        }
    }

    @Test func aFailureReportWithoutAnAttemptChangesNothing() {
        var slot = Self.slot()
        slot.connectFailed(Self.refused, now: Self.start)
        guard case .idle(0, _, nil) = slot.state else {
            Issue.record("expected a fresh idle slot")
            return
        }
    }
}
