import NIOConcurrencyHelpers

/// Keeps the task of every running job: cancels one that overruns its timeout (one timer for
/// the whole worker), or all of them when the worker must stop at once.
///
/// A `Task.sleep` per job (raced against the handler) would be simpler, but on Linux a
/// cancelled sleep keeps its timer and memory until its deadline: with the default 5-minute
/// timeout a busy worker grew by about 0.7 KiB per job (240 MiB after 300,000 jobs).
final class TimeoutWatchdog: Sendable {
    private struct Watched {
        var deadline: ContinuousClock.Instant
        var task: Task<Void, Never>
    }

    private struct State {
        var nextID = 0
        var watched: [Int: Watched] = [:]
        var timedOut: Set<Int> = []
        /// Jobs that finished before ``watch(_:task:until:)`` registered them.
        var finished: Set<Int> = []
        var idleWaiter: CheckedContinuation<Void, Never>?
        var stopped = false
    }

    /// How late a timeout may fire at most.
    let resolution: Duration
    private let state = NIOLockedValueBox(State())

    init(resolution: Duration) {
        self.resolution = resolution
    }

    /// An id for a job about to start, so the job can ``forget(_:)`` itself however soon it ends.
    func reserve() -> Int {
        state.withLockedValue { state in
            state.nextID &+= 1
            return state.nextID
        }
    }

    /// Watches `task` until ``forget(_:)``; cancels it if `deadline` passes first.
    func watch(_ id: Int, task: Task<Void, Never>, until deadline: ContinuousClock.Instant) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            if state.finished.remove(id) != nil { return nil }
            state.watched[id] = Watched(deadline: deadline, task: task)
            defer { state.idleWaiter = nil }
            return state.idleWaiter
        }
        waiter?.resume()
    }

    /// Stops watching; returns whether the task was cancelled for overrunning its deadline.
    func forget(_ id: Int) -> Bool {
        state.withLockedValue { state in
            if state.watched.removeValue(forKey: id) == nil, !state.timedOut.contains(id) {
                state.finished.insert(id)
            }
            return state.timedOut.remove(id) != nil
        }
    }

    /// Cancels every watched task (the worker is stopping now). Returns how many.
    @discardableResult
    func cancelAll() -> Int {
        let tasks = state.withLockedValue { state in state.watched.values.map(\.task) }
        for task in tasks { task.cancel() }
        return tasks.count
    }

    /// Checks deadlines every ``resolution`` while anything is watched, until cancelled.
    func run() async {
        while !Task.isCancelled {
            await waitForWork()
            do {
                try await Task.sleep(for: resolution)
            } catch {
                break
            }
            let now = ContinuousClock.now
            let expired = state.withLockedValue { state -> [Task<Void, Never>] in
                var expired: [Task<Void, Never>] = []
                for (id, watched) in state.watched where watched.deadline <= now {
                    expired.append(watched.task)
                    state.timedOut.insert(id)
                    state.watched.removeValue(forKey: id)
                }
                return expired
            }
            for task in expired { task.cancel() }
        }
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            state.stopped = true
            defer { state.idleWaiter = nil }
            return state.idleWaiter
        }
        waiter?.resume()
    }

    /// Parks while nothing is watched, so an idle worker has no timer ticking.
    private func waitForWork() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLockedValue { state -> Bool in
                    if !state.watched.isEmpty || state.stopped { return true }
                    state.idleWaiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                state.stopped = true
                defer { state.idleWaiter = nil }
                return state.idleWaiter
            }
            waiter?.resume()
        }
    }
}
