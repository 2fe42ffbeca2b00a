/// One reading of a queue's lifetime counters, as the workers' sampler records it.
public struct ThroughputSample: Sendable, Hashable, Codable {
    /// When it was taken, in ms since the epoch (the Redis server's clock).
    public var at: Int64
    /// Entries the queue's stream has taken in all: enqueued jobs, retries and delayed jobs come due.
    public var added: Int64
    /// Entries that have left it: acknowledged, retried later or dead-lettered.
    public var finished: Int64

    public init(at: Int64, added: Int64, finished: Int64) {
        self.at = at
        self.added = added
        self.finished = finished
    }

    /// Parses a member of the throughput set (`<ms>:<added>:<finished>`).
    init?(member: String) {
        let parts = member.split(separator: ":")
        // Counters never go below zero: a member that says so is not one the sampler wrote.
        guard parts.count == 3, let at = Int64(parts[0]), let added = Int64(parts[1]), let finished = Int64(parts[2]), added >= 0,
            finished >= 0
        else { return nil }
        self.init(at: at, added: added, finished: finished)
    }

    /// Counts per minute over the `minutes` minutes up to `now` (ms), oldest first: what was
    /// added and finished in each, or `nil` for a minute the samples do not cover. The last
    /// minute is the one still running. A counter that went down (the stream was deleted and
    /// made again) counts from zero.
    public static func perMinute(_ samples: [ThroughputSample], now: Int64, minutes: Int) -> [ThroughputMinute] {
        let sorted = samples.sorted { $0.at < $1.at }
        // The index of the first sample after `time`.
        func after(_ time: Int64) -> Int {
            var low = 0
            var high = sorted.count
            while low < high {
                let middle = (low + high) / 2
                if sorted[middle].at <= time { low = middle + 1 } else { high = middle }
            }
            return low
        }
        let minute: Int64 = 60_000
        // Samples come every few seconds; one older than this before a minute's edge means the
        // sampler was away, and what changed meanwhile is not this minute's.
        let stale = minute / 4
        return (0..<max(0, minutes)).map { index in
            let end = now - Int64(minutes - 1 - index) * minute
            let start = end - minute
            let lastIndex = after(end) - 1
            let startIndex = after(start)
            // The reading at the minute's start: the last before it if recent, else the first in it.
            let firstIndex = startIndex > 0 && sorted[startIndex - 1].at >= start - stale ? startIndex - 1 : startIndex
            guard lastIndex >= 0, firstIndex < lastIndex, sorted[lastIndex].at > start else {
                return ThroughputMinute(start: start, added: nil, finished: nil)
            }
            let (first, last) = (sorted[firstIndex], sorted[lastIndex])
            // Both are non-negative (see init(member:)), so the difference cannot overflow.
            func delta(_ from: Int64, _ to: Int64) -> Int64 { to >= from ? to - from : to }
            return ThroughputMinute(start: start, added: delta(first.added, last.added), finished: delta(first.finished, last.finished))
        }
    }
}

/// What a queue took in and finished in one minute.
public struct ThroughputMinute: Sendable, Hashable, Codable {
    /// The minute's start, in ms since the epoch.
    public var start: Int64
    public var added: Int64?
    public var finished: Int64?
}
