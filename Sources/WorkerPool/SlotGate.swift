import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Queue

/// Counts running jobs, overall and per queue, keeps the prefetched jobs that wait for a slot,
/// and lets the fetch loop wait for a slot.
///
/// A lock rather than an actor: it is touched twice per job on the hot path, and its critical
/// sections are a few integer updates.
final class SlotGate: Sendable {
    private struct State {
        var running = 0
        var perQueue: [String: Int] = [:]
        var generation = 0
        var waiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        var closed = false
        /// Fetched jobs waiting for a slot, in fetch order.
        var prefetched = CircularBuffer<FetchedJob>()
        var prefetchedPerQueue: [String: Int] = [:]
        var nextWaiterID = 0
        var idleWaiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        /// Idle and change waits whose timeout fired before they parked.
        var expiredWaiters: Set<Int> = []
    }

    let capacity: Int
    private let state = NIOLockedValueBox(State())

    init(capacity: Int) { self.capacity = capacity }

    /// The gate at one moment, as the fetch loop reads it.
    struct Snapshot {
        /// Free slots overall.
        var free: Int
        /// Jobs running or prefetched, per queue.
        var perQueue: [String: Int]
        var prefetched: Int
        /// Changes on every release.
        var generation: Int
        var closed: Bool
    }

    func snapshot() -> Snapshot {
        state.withLockedValue { state in
            var taken = state.perQueue
            for (queue, count) in state.prefetchedPerQueue { taken[queue, default: 0] += count }
            return Snapshot(
                free: state.closed ? 0 : capacity - state.running, perQueue: taken, prefetched: state.prefetched.count,
                generation: state.generation, closed: state.closed)
        }
    }

    var running: Int { state.withLockedValue { $0.running } }

    /// Queues fetched jobs behind those already waiting, and takes a slot for each job that can
    /// start now (in fetch order). The caller starts the jobs it gets back.
    func admit(_ jobs: [FetchedJob]) -> [FetchedJob] {
        state.withLockedValue { state in
            for job in jobs {
                state.prefetched.append(job)
                state.prefetchedPerQueue[job.queue, default: 0] += 1
            }
            return takeStartable(&state)
        }
    }

    /// Frees a finished job's slot and takes slots for prefetched jobs that can start now.
    func release(queue: String) -> [FetchedJob] {
        let (startable, waiters, idleWaiters) = state.withLockedValue { state in
            state.running -= 1
            state.perQueue[queue, default: 1] -= 1
            state.generation &+= 1
            let startable = takeStartable(&state)
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            var idleWaiters: [CheckedContinuation<Bool, Never>] = []
            if state.running == 0 {
                idleWaiters = Array(state.idleWaiters.values)
                state.idleWaiters.removeAll()
            }
            return (startable, waiters, idleWaiters)
        }
        for waiter in waiters { waiter.resume(returning: true) }
        for waiter in idleWaiters { waiter.resume(returning: true) }
        return startable
    }

    /// Prefetched jobs are admitted only within their queue's limit (the fetch loop asks for no
    /// more), so the first one can always start once a slot is free: first in, first out.
    private func takeStartable(_ state: inout State) -> [FetchedJob] {
        var startable: [FetchedJob] = []
        while !state.closed && state.running < capacity, let job = state.prefetched.popFirst() {
            state.prefetchedPerQueue[job.queue, default: 1] -= 1
            state.running += 1
            state.perQueue[job.queue, default: 0] += 1
            startable.append(job)
        }
        return startable
    }

    /// Returns `true` once the generation differs from `generation` (a job finished) or the gate
    /// closed, `false` when `timeout` passed first.
    @discardableResult
    func waitForChange(from generation: Int, timeout: Duration? = nil) async -> Bool {
        await park(in: .change, timeout: timeout) { $0.generation != generation || $0.closed }
    }

    /// Takes every prefetched job out (none of them will start here), for handing them back;
    /// `nil` when a job finished since `generation` (the slots are moving after all).
    func withdrawPrefetched(ifUnchangedSince generation: Int) -> [FetchedJob]? {
        state.withLockedValue { state in
            guard state.generation == generation else { return nil }
            let jobs = Array(state.prefetched)
            state.prefetched.removeAll()
            state.prefetchedPerQueue.removeAll()
            return jobs
        }
    }

    /// Stops handing out slots, wakes every waiter, and returns the prefetched jobs that will
    /// not start (the caller hands them back).
    @discardableResult func close() -> [FetchedJob] {
        let (waiters, unstarted) = state.withLockedValue { state in
            state.closed = true
            state.generation &+= 1
            let unstarted = Array(state.prefetched)
            state.prefetched.removeAll()
            state.prefetchedPerQueue.removeAll()
            defer { state.waiters.removeAll() }
            return (Array(state.waiters.values), unstarted)
        }
        for waiter in waiters { waiter.resume(returning: true) }
        return unstarted
    }

    /// Waits until no job is running, or `timeout` passes (`nil`: no limit). Returns whether it
    /// drained. The timeout holds under task cancellation, so a cancelled worker still gives its
    /// jobs their grace; only an unlimited wait ends early when the task is cancelled.
    func waitUntilIdle(timeout: Duration?) async -> Bool {
        await park(in: .idle, timeout: timeout, endsOnCancel: timeout == nil) { $0.running == 0 }
    }

    /// Which waits a waiter is among: for a slot to change, or for the gate to go idle.
    private enum Waiters: Sendable {
        case change, idle

        var list: WritableKeyPath<State, [Int: CheckedContinuation<Bool, Never>]> {
            switch self {
            case .change: \.waiters
            case .idle: \.idleWaiters
            }
        }
    }

    private func nextWaiterID() -> Int {
        state.withLockedValue { state -> Int in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
    }

    /// Waits among `waiters` until `done` holds (true) or `timeout` passes (false); with
    /// `endsOnCancel`, also ends (false) when the task is cancelled. The timeout is an event
    /// loop's timer rather than a sleeping task: it fires whatever the task's cancellation state.
    private func park(
        in waiters: Waiters, timeout: Duration?, endsOnCancel: Bool = false, until done: @escaping @Sendable (State) -> Bool
    ) async -> Bool {
        let id = nextWaiterID()
        let timer = timeout.map { timeout in
            MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
                self.expire(id, in: waiters)
            }
        }
        defer { timer?.cancel() }
        return await withTaskCancellationHandler {
            await parkNow(id, in: waiters, until: done)
        } onCancel: {
            if endsOnCancel { self.expire(id, in: waiters) }
        }
    }

    private func parkNow(_ id: Int, in waiters: Waiters, until done: (State) -> Bool) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let immediate = state.withLockedValue { state -> Bool? in
                if done(state) { return true }
                if state.expiredWaiters.remove(id) != nil { return false }
                state[keyPath: waiters.list][id] = continuation
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    /// A wait's timeout: it ends now if parked, or at once when it parks later.
    private func expire(_ id: Int, in waiters: Waiters) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Bool, Never>? in
            if let waiter = state[keyPath: waiters.list].removeValue(forKey: id) { return waiter }
            state.expiredWaiters.insert(id)
            return nil
        }
        waiter?.resume(returning: false)
    }
}
