import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The meeting point of one run's async caller and its session thread.
///
/// The session thread pushes output and, at the end, the result; the caller awaits them one at a
/// time. Pushing blocks the session thread (never a Swift task) while too much output waits, so a
/// slow consumer slows the remote script through SSH flow control instead of growing memory.
/// Termination requests go the other way and wake the thread's `poll()` through a pipe.
///
/// `@unchecked Sendable`: every stored `var` is read and written only while `condition` is locked;
/// the pipe descriptors are immutable after init and closed only in deinit, when no thread holds
/// a reference any more.
final class RemoteRunControl: @unchecked Sendable {
    enum Event {
        case output(RemoteOutput)
        case finished(Result<RemoteExit, any Error>)
    }

    enum Phase {
        case preparing, running, finished
    }

    /// What the session thread must do about termination, taken under the lock.
    struct PendingWork {
        var signals: [RemoteSignal] = []
        var abortBeforeStart: (any Error)?
    }

    private let condition = NSCondition()
    private var phase = Phase.preparing
    private var queued: [RemoteOutput] = []
    private var queuedBytes = 0
    private var waiter: CheckedContinuation<Event, Never>?
    private var result: Result<RemoteExit, any Error>?
    private var requestedSignals: [RemoteSignal] = []
    private var cancelled = false
    private var cancellationSeen = false
    private let maximumQueuedBytes: Int

    /// Read end polled by the session thread; written on every request.
    let wakeupFD: Int32
    private let wakeupWriteFD: Int32

    init(maximumQueuedBytes: Int = 1 << 20) throws {
        self.maximumQueuedBytes = maximumQueuedBytes
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw RemoteExecutionError(.protocolError, "could not create a pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeupFD = fds[0]
        wakeupWriteFD = fds[1]
    }

    deinit {
        close(wakeupFD)
        close(wakeupWriteFD)
    }

    // MARK: caller side

    /// The next output chunk, or the result once all output has been taken.
    func next() async -> Event {
        await withCheckedContinuation { continuation in
            condition.lock()
            if !queued.isEmpty {
                let chunk = queued.removeFirst()
                queuedBytes -= chunk.byteCount
                condition.broadcast()
                condition.unlock()
                continuation.resume(returning: .output(chunk))
            } else if let result {
                condition.unlock()
                continuation.resume(returning: .finished(result))
            } else {
                waiter = continuation
                condition.unlock()
            }
        }
    }

    /// Asks for `signal` to be sent to the script's process group (or, before it starts, for the
    /// run to stop there).
    func request(_ signal: RemoteSignal) {
        condition.lock()
        if phase != .finished { requestedSignals.append(signal) }
        condition.broadcast()
        condition.unlock()
        wake()
    }

    /// Task cancellation: TERM now, KILL after the grace period, then the run ends.
    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
        wake()
    }

    // MARK: session thread side

    /// Takes the termination work requested since the last call.
    func takePendingWork() -> PendingWork {
        condition.lock()
        defer { condition.unlock() }
        var work = PendingWork()
        if phase == .preparing {
            if cancelled {
                work.abortBeforeStart = CancellationError()
            } else if !requestedSignals.isEmpty {
                work.abortBeforeStart = RemoteExecutionError(
                    .terminated, "the run was terminated before the script started")
            }
            return work
        }
        work.signals = requestedSignals
        requestedSignals = []
        return work
    }

    /// True once, after the caller's task was cancelled while the script runs.
    func takeCancellation() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard cancelled, !cancellationSeen, phase == .running else { return false }
        cancellationSeen = true
        return true
    }

    /// Moves to `running` unless termination was requested first; the check and the move are one
    /// step, so a request is either seen here or handled by the running loop.
    func markRunning() throws {
        condition.lock()
        defer { condition.unlock() }
        if cancelled { throw CancellationError() }
        if !requestedSignals.isEmpty {
            throw RemoteExecutionError(.terminated, "the run was terminated before the script started")
        }
        phase = .running
    }

    /// Hands a chunk to the caller, waiting while too much is queued unless termination work is due.
    func push(_ chunk: RemoteOutput) {
        condition.lock()
        if let waiter {
            self.waiter = nil
            condition.unlock()
            waiter.resume(returning: .output(chunk))
            return
        }
        queued.append(chunk)
        queuedBytes += chunk.byteCount
        while queuedBytes > maximumQueuedBytes && requestedSignals.isEmpty && !(cancelled && !cancellationSeen) {
            condition.wait()
        }
        condition.unlock()
    }

    func finish(_ outcome: Result<RemoteExit, any Error>) {
        condition.lock()
        phase = .finished
        result = outcome
        let waiter = queued.isEmpty ? self.waiter : nil
        if waiter != nil { self.waiter = nil }
        condition.unlock()
        waiter?.resume(returning: .finished(outcome))
    }

    /// Empties the wakeup pipe after `poll()` reported it readable.
    func drainWakeups() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakeupFD, &buffer, buffer.count) > 0 {}
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeupWriteFD, &byte, 1)
    }
}

extension RemoteOutput {
    fileprivate var byteCount: Int {
        switch self {
        case .stdout(let bytes), .stderr(let bytes): bytes.count
        }
    }
}
