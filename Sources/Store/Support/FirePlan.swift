import Foundation

/// What a scheduler does with a schedule that came due: whether it fires, which fire times it
/// missed, and when it is due next. Pure arithmetic over the schedule's spec and two instants,
/// so that time zones, daylight saving time and downtime can be tested with any clock.
///
/// A fire time counts as missed when the scheduler comes to it more than ``misfireGrace`` late
/// (every scheduler was down, or the database was away). Missed times never fire one by one: a
/// schedule fires at most once per plan, for an on-time fire time, or, with catch-up `once`,
/// for the missed span.
public struct FirePlan: Sendable, Hashable {
    /// How late a fire time may be handled and still count as on time.
    public static let misfireGrace: TimeInterval = 60
    /// Missed fire times counted at most (a per-minute schedule down for a week misses
    /// 10 080): beyond it the count is a lower bound.
    public static let missedCountLimit = 100_000

    /// Whether the schedule runs its job now.
    public var fires: Bool
    /// How many fire times were missed.
    public var missed: Int
    /// The first and last missed fire times, when any was missed.
    public var missedSpan: ClosedRange<Date>?
    /// The next fire time strictly after now; `nil` when the schedule will not fire again (a
    /// one-time schedule, or a spec with no time left).
    public var nextFireAt: Date?

    /// The plan for a schedule due at `due` (its stored next fire time), handled at `now`.
    /// `cron` is the schedule's spec, or `nil` for a one-time schedule (due at its time).
    public init(cron: CronSpec?, due: Date, now: Date, catchUp: Schedule.CatchUp) {
        var dueTimes = due <= now ? [due] : []
        var cursor = due
        var next: Date?
        if let cron {
            // In chunks: after downtime there may be thousands of due times, normally none.
            scan: while dueTimes.count <= Self.missedCountLimit {
                let chunk = cron.nextFireTimes(after: cursor, count: dueTimes.count > 1 ? 1024 : 2)
                for time in chunk {
                    if time > now {
                        next = time
                        break scan
                    }
                    dueTimes.append(time)
                }
                guard let last = chunk.last else { break }
                cursor = last
            }
            if next == nil, dueTimes.count > Self.missedCountLimit {
                next = cron.nextFireTimes(after: now, count: 1).first
            }
        }
        let missedTimes = dueTimes.filter { now.timeIntervalSince($0) > Self.misfireGrace }
        let onTime = dueTimes.count > missedTimes.count
        missed = min(missedTimes.count, Self.missedCountLimit)
        missedSpan = missedTimes.first.flatMap { first in missedTimes.last.map { first...$0 } }
        fires = onTime || (catchUp == .once && !missedTimes.isEmpty)
        nextFireAt = due > now ? due : next
    }
}
