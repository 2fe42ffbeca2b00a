import Foundation

/// An `flock` on `<mirror>.lock`, shared by the operations of this process and of every other
/// worker process on the host.
///
/// `flock` locks belong to the open file description, so two operations in one process, each with
/// its own ``MirrorLock``, exclude each other just like two processes do. The kernel drops the lock
/// when the descriptor is closed, including when the process dies.
///
/// Owned by the one git thread that opened it (not Sendable).
final class MirrorLock {
    enum Mode {
        case shared
        case exclusive

        var operation: Int32 { self == .shared ? LOCK_SH : LOCK_EX }
    }

    private let descriptor: Int32
    let path: String

    init(path: String) throws {
        self.path = path
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw GitError(.other, "cannot open lock file \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        close(descriptor)
    }

    /// Waits for the lock in `mode`. It polls instead of blocking in `flock` so that a cancelled
    /// operation stops waiting behind another worker's long fetch.
    func lock(_ mode: Mode, session: RemoteSession) throws {
        while true {
            if flock(descriptor, mode.operation | LOCK_NB) == 0 { return }
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw GitError(.other, "cannot lock \(path): \(String(cString: strerror(errno)))")
            }
            try session.checkCancellation()
            usleep(50_000)
        }
    }

    /// Turns an exclusive lock into a shared one. Not atomic (Linux drops the lock, then takes the
    /// new one), so a writer may slip in between; callers only downgrade after they resolved what
    /// they need, and a fetch never deletes objects.
    func downgrade(session: RemoteSession) throws {
        try lock(.shared, session: session)
    }

    func unlock() {
        flock(descriptor, LOCK_UN)
    }
}
