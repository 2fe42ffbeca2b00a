import Foundation

/// Runs blocking libgit2 work on a thread of its own.
///
/// libgit2's network calls block for as long as a transfer takes. The worker runs its tasks on
/// NIO's event loops, one thread per core, so running them there would stall every other task of
/// the process and its Redis I/O; a short-lived dedicated thread per checkout costs far less.
enum GitThread {
    /// Runs `work` on a new thread and returns its result. Cancelling the calling task cancels
    /// `session`, which libgit2's callbacks then notice and abort the transfer.
    static func run<Result: Sendable>(
        _ session: RemoteSession,
        name: String,
        _ work: @escaping @Sendable () throws -> Result
    ) async throws -> Result {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
                let thread = Thread {
                    continuation.resume(with: Swift.Result { try work() })
                }
                thread.name = name
                // libgit2 and libssh2 recurse on deep trees and history walks; the default secondary
                // thread stack is small on some platforms.
                thread.stackSize = 8 << 20
                thread.start()
            }
        } onCancel: {
            session.cancel()
        }
    }
}
