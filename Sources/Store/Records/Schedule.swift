import Foundation

/// When a job runs by itself: recurring (a cron spec in a time zone) or once (`runAt`).
public struct Schedule: Sendable, Hashable, Codable {
    /// What the scheduler does about fire times that passed while no scheduler ran.
    public enum CatchUp: String, Sendable, Hashable, Codable, CaseIterable {
        /// Nothing: they are recorded as missed, and the schedule waits for its next time.
        case none
        /// One run for all of them (and they are recorded as missed).
        case once
    }

    /// What the scheduler does when a fire time comes while the job's previous run has not
    /// finished.
    public enum Overlap: String, Sendable, Hashable, Codable, CaseIterable {
        /// Runs it anyway.
        case allow
        /// Skips this time (recorded as `schedule.skipped`).
        case skip
    }

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
    public var catchUp: CatchUp
    public var overlap: Overlap
    /// When the scheduler fires it next; `nil` while it is disabled or archived, or when it
    /// will not fire again.
    public var nextFireAt: Date?
}

extension Schedule {
    /// The next `count` times the schedule fires after `date`: none when it is disabled or
    /// archived, at most one for a one-time schedule.
    public func nextFireTimes(after date: Date, count: Int) -> [Date] {
        guard disabledAt == nil, archivedAt == nil else { return [] }
        return specFireTimes(after: date, count: count)
    }

    /// The next `count` times the spec says after `date`, whether or not the schedule is
    /// enabled.
    func specFireTimes(after date: Date, count: Int) -> [Date] {
        guard count > 0 else { return [] }
        if let runAt { return runAt > date ? [runAt] : [] }
        return cronSpec?.nextFireTimes(after: date, count: count) ?? []
    }

    /// The cron spec read in the schedule's time zone; `nil` for a one-time schedule. A stored
    /// spec and zone passed validation when they were written.
    var cronSpec: CronSpec? {
        guard let cron, let zone = TimeZone(identifier: timeZone) else { return nil }
        return try? CronSpec(cron, timeZone: zone)
    }
}
