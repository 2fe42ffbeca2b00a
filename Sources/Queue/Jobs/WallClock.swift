import FoundationEssentials

/// Wall-clock time in milliseconds since the epoch, the unit of every time on the wire.
///
/// The queue stamps jobs with it (`enqueued_at`, a dead letter's `failed_at`, a worker's start)
/// for people to read; it never decides when a job is due: due times come from Redis's clock
/// (`TIME` in the scripts), so a worker whose clock is off neither hot-loops retries nor
/// stretches them. Injectable so tests can skew it.
public struct WallClock: Sendable {
    private let read: @Sendable () -> Int64

    /// A clock that reads `now()`.
    public init(_ now: @escaping @Sendable () -> Int64) {
        self.read = now
    }

    /// Milliseconds since the epoch.
    public func milliseconds() -> Int64 { read() }

    /// This machine's clock.
    public static let system = WallClock { Int64(Date().timeIntervalSince1970 * 1000) }

    /// This clock moved by `offset` (a test's skewed machine).
    public func shifted(by offset: Duration) -> WallClock {
        let offset = JobQueue.milliseconds(offset)
        return WallClock { [read] in read() + offset }
    }
}
