import NIOConcurrencyHelpers

/// A turn of a loop that did not end in time: the loop gives up waiting for it and goes on.
public struct TurnDeadlineExceeded: Error, CustomStringConvertible {
    public let deadline: Duration
    public var description: String {
        "a turn did not end within \(deadline) (a database or network call hung); going on without it"
    }
}

/// Waits for `body` at most `deadline`. Past it, throws ``TurnDeadlineExceeded`` and leaves
/// `body` behind (cancelled, running until it notices, if ever). Cancelling the caller ends the
/// wait at once too, with `CancellationError`.
///
/// For loops that must not stop for good on one call that never returns: PostgresNIO 1.33
/// hangs a query sent on a connection the server has just closed (the write fails and no one
/// is told), and cancellation does not reach it. Such a turn is abandoned; its connection is
/// gone, so it holds no locks, and the next turn leases a fresh one. A loop using this must stay
/// correct with an abandoned turn still running beside the next: the scheduler and the poller
/// claim their rows with `FOR UPDATE SKIP LOCKED`, so two turns never take the same row.
public func withTurnDeadline<T: Sendable>(
    _ deadline: Duration, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let wait = TurnWait<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            guard wait.start(continuation) else { return }
            let timer = Task {
                try? await Task.sleep(for: deadline)
                if !Task.isCancelled { wait.finish(.failure(TurnDeadlineExceeded(deadline: deadline))) }
            }
            wait.attach(
                Task {
                    do {
                        wait.finish(.success(try await body()))
                    } catch {
                        wait.finish(.failure(error))
                    }
                    timer.cancel()
                }, timer: timer)
        }
    } onCancel: {
        wait.cancel()
    }
}

/// The one resumption of a ``withTurnDeadline(_:_:)`` wait, whichever comes first: the body's
/// end, the deadline, or the caller's cancellation.
private final class TurnWait<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var done = false
        var tasks: [Task<Void, Never>] = []
    }

    private let state = NIOLockedValueBox(State())

    /// Keeps the continuation; false (and resumed with `CancellationError`) when the wait was
    /// cancelled before it began.
    func start(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
        let cancelled = state.withLockedValue { state in
            if !state.done { state.continuation = continuation }
            return state.done
        }
        if cancelled { continuation.resume(throwing: CancellationError()) }
        return !cancelled
    }

    func attach(_ work: Task<Void, Never>, timer: Task<Void, Never>) {
        let cancel = state.withLockedValue { state in
            state.tasks = [work, timer]
            return state.done
        }
        if cancel { work.cancel() }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, tasks) = state.withLockedValue { state -> (CheckedContinuation<T, any Error>?, [Task<Void, Never>]) in
            guard !state.done else { return (nil, []) }
            state.done = true
            defer { state.continuation = nil }
            return (state.continuation, state.tasks)
        }
        guard let continuation else { return }
        // The body is abandoned past the deadline: told to stop, in case it listens.
        if case .failure = result { for task in tasks { task.cancel() } }
        continuation.resume(with: result)
    }

    func cancel() {
        finish(.failure(CancellationError()))
        let tasks = state.withLockedValue { $0.tasks }
        for task in tasks { task.cancel() }
    }
}
