import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension Process {
    /// Like `run()`, but the child starts with no signals blocked.
    ///
    /// A child inherits the signal mask of the thread that spawns it, and Swift concurrency's
    /// threads (libdispatch workers) block nearly every signal, SIGTERM included. A server or a
    /// worker started with plain `run()` from a test therefore never sees the SIGTERM sent to
    /// stop it gracefully; only SIGKILL gets through. This unblocks every signal on the calling
    /// thread just for the spawn, so the child starts with an empty mask, as from a shell.
    public func runWithUnblockedSignals() throws {
        var none = sigset_t()
        sigemptyset(&none)
        var previous = sigset_t()
        pthread_sigmask(SIG_SETMASK, &none, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try run()
    }
}
