import NIOConcurrencyHelpers

/// Counts running jobs, overall and per queue, and lets the fetch loop wait for a slot.
///
/// A lock rather than an actor: it is touched twice per job on the hot path, and its critical
/// sections are a few integer updates.
final class SlotGate: Sendable {
    private struct State {
        var running = 0
        var perQueue: [String: Int] = [:]
        var generation = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        var closed = false
        var nextWaiterID = 0
        var idleWaiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        /// Idle waits whose timeout fired before they parked.
        var expiredWaiters: Set<Int> = []
    }

    let capacity: Int
    private let state = NIOLockedValueBox(State())

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Free slots overall, running jobs per queue, and a generation number that changes on
    /// every release.
    func snapshot() -> (free: Int, perQueue: [String: Int], generation: Int, closed: Bool) {
        state.withLockedValue { ($0.closed ? 0 : capacity - $0.running, $0.perQueue, $0.generation, $0.closed) }
    }

    var running: Int { state.withLockedValue { $0.running } }

    func acquire(queue: String) {
        state.withLockedValue {
            $0.running += 1
            $0.perQueue[queue, default: 0] += 1
        }
    }

    func release(queue: String) {
        let (waiters, idleWaiters) = state.withLockedValue { state in
            state.running -= 1
            state.perQueue[queue, default: 1] -= 1
            state.generation &+= 1
            let waiters = state.waiters
            state.waiters.removeAll()
            var idleWaiters: [CheckedContinuation<Bool, Never>] = []
            if state.running == 0 {
                idleWaiters = Array(state.idleWaiters.values)
                state.idleWaiters.removeAll()
            }
            return (waiters, idleWaiters)
        }
        for waiter in waiters { waiter.resume() }
        for waiter in idleWaiters { waiter.resume(returning: true) }
    }

    /// Returns once the generation differs from `generation` (a job finished) or the gate closed.
    func waitForChange(from generation: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLockedValue { state -> Bool in
                if state.generation != generation || state.closed { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Stops handing out slots and wakes every waiter.
    func close() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.closed = true
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until no job is running, or `timeout` passes. Returns whether it drained.
    func waitUntilIdle(timeout: Duration) async -> Bool {
        let id = state.withLockedValue { state -> Int in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return await withTaskGroup(of: Bool?.self) { group in
            group.addTask { await self.parkUntilIdle(id) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                self.expireIdleWaiter(id)
                return nil
            }
            var drained = false
            for await result in group {
                if let result {
                    drained = result
                    group.cancelAll()
                }
            }
            return drained
        }
    }

    private func parkUntilIdle(_ id: Int) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let immediate = state.withLockedValue { state -> Bool? in
                if state.running == 0 { return true }
                if state.expiredWaiters.remove(id) != nil { return false }
                state.idleWaiters[id] = continuation
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    private func expireIdleWaiter(_ id: Int) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Bool, Never>? in
            if let waiter = state.idleWaiters.removeValue(forKey: id) { return waiter }
            state.expiredWaiters.insert(id)
            return nil
        }
        waiter?.resume(returning: false)
    }
}
