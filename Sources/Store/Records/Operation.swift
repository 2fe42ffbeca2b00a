import Foundation

/// One run of a job: queued, then running, then finished one way or another.
public struct Operation: Sendable, Hashable, Codable {
    /// What asked for the run.
    public enum Reason: String, Sendable, Hashable, Codable, CaseIterable {
        case user, schedule, webhook
        case gitTrigger = "git_trigger"
        case notification, retry
    }

    /// Where the run is: `queued` → `running` → `succeeded`, `failed` or `timed_out`; `queued`
    /// or `running` → `canceled`.
    public enum Status: String, Sendable, Hashable, Codable, CaseIterable {
        case queued, running, succeeded, failed
        case timedOut = "timed_out"
        case canceled

        /// Whether the run is over.
        public var isFinal: Bool { self != .queued && self != .running }
    }

    public var id: UUID
    public var projectID: UUID
    public var jobID: UUID
    public var reason: Reason
    /// The user who asked for the run, when one did.
    public var requestedBy: UUID?
    public var parameters: [String: String]
    public var status: Status
    /// The process's exit status, once it finished.
    public var exitStatus: Int?
    /// The job's time limit when the run was queued.
    public var timeLimitSeconds: Int
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    public var canceledAt: Date?
    /// Where the run's log is kept.
    public var logLocation: String?
    public var updatedAt: Date
}
