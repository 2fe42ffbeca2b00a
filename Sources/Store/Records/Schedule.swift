import Foundation

/// When a job runs by itself: recurring (a cron spec in a time zone) or once (`runAt`).
public struct Schedule: Sendable, Hashable, Codable {
    public var id: UUID
    public var projectID: UUID
    public var jobID: UUID
    /// A five-field cron spec; `nil` for a one-time schedule.
    public var cron: String?
    /// The one time the job runs; `nil` for a recurring schedule.
    public var runAt: Date?
    /// The IANA time zone the cron spec is read in.
    public var timeZone: String
    public var description: String?
    public var disabledAt: Date?
    public var disabledReason: String?
    public var createdBy: UUID?
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}

extension Schedule {
    /// The next `count` times the schedule fires after `date`: none when it is disabled or
    /// archived, at most one for a one-time schedule.
    public func nextFireTimes(after date: Date, count: Int) -> [Date] {
        guard disabledAt == nil, archivedAt == nil, count > 0 else { return [] }
        if let runAt { return runAt > date ? [runAt] : [] }
        // A stored spec and zone passed validation when they were written.
        guard let cron, let zone = TimeZone(identifier: timeZone), let spec = try? CronSpec(cron, timeZone: zone) else { return [] }
        return spec.nextFireTimes(after: date, count: count)
    }
}
