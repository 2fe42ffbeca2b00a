import FoundationEssentials

/// Wall-clock milliseconds, the unit of every time on the wire.
enum JobClock {
    static func nowMilliseconds() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1000)
    }
}
