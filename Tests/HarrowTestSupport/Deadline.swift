import Foundation

/// Thrown by ``withDeadline(_:_:fileID:line:operation:)`` when the operation did not finish.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public var operation: String
    public var limit: Duration
    public var location: String

    public var description: String { "\(location): \(operation) did not finish within \(limit) (hung?)" }
}

/// Runs `operation` and returns its result, or throws ``DeadlineExceeded`` after `limit`.
///
/// Unlike a task group, this does not wait for an operation that ignores cancellation (say, a
/// future that is never completed): a hang becomes a failed test instead of a stuck test run.
/// The abandoned operation is cancelled and left behind.
public func withDeadline<T: Sendable>(
    _ limit: Duration,
    _ operation: String,
    fileID: String = #fileID,
    line: Int = #line,
    operation body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let once = ResumeOnce<T>()
    let location = "\(fileID):\(line)"
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            once.install(continuation)
            let work = Task {
                do {
                    once.resume(with: .success(try await body()))
                } catch {
                    once.resume(with: .failure(error))
                }
            }
            let timer = Task {
                try? await Task.sleep(for: limit)
                if once.resume(with: .failure(DeadlineExceeded(operation: operation, limit: limit, location: location)))
                {
                    work.cancel()
                }
            }
            once.onResume { timer.cancel() }
        }
    } onCancel: {
        once.resume(with: .failure(CancellationError()))
    }
}

/// A continuation resumed by whichever side finishes first.
///
/// `@unchecked Sendable`: every stored property is mutable state read and written only while
/// holding `lock`.
private final class ResumeOnce<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, any Error>?
    private var pending: Result<T, any Error>?
    private var done = false
    private var cleanup: (@Sendable () -> Void)?

    func install(_ continuation: CheckedContinuation<T, any Error>) {
        lock.lock()
        if let pending {
            lock.unlock()
            continuation.resume(with: pending)
            return
        }
        self.continuation = continuation
        lock.unlock()
    }

    func onResume(_ action: @escaping @Sendable () -> Void) {
        lock.lock()
        if done {
            lock.unlock()
            action()
            return
        }
        cleanup = action
        lock.unlock()
    }

    /// Returns whether this call was the one that resumed.
    @discardableResult
    func resume(with result: Result<T, any Error>) -> Bool {
        lock.lock()
        guard !done else {
            lock.unlock()
            return false
        }
        done = true
        let continuation = self.continuation
        self.continuation = nil
        if continuation == nil { pending = result }
        let cleanup = self.cleanup
        self.cleanup = nil
        lock.unlock()
        continuation?.resume(with: result)
        cleanup?()
        return true
    }
}
