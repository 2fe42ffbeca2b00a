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
    /// The worker running (or last running) the operation.
    public var runner: String?
    /// Until when the runner's claim holds unless it renews it: a running operation whose lease
    /// ran out lost its worker.
    public var leaseExpiresAt: Date?
    /// Why a failed operation failed when its exit status does not say it all.
    public var failureReason: FailureReason?
    /// The commit checked out of each repository, by repository name.
    public var checkouts: [String: String]
    /// The operation this one runs again, for reason `retry`.
    public var retryOf: UUID?

    /// Why an operation failed, beyond the script's exit status.
    public enum FailureReason: String, Sendable, Hashable, Codable, CaseIterable {
        /// The worker running it stopped renewing its lease (the host died, the process was
        /// killed); the script may or may not have finished, and is not run again.
        case workerLost = "worker_lost"
        /// A repository could not be checked out; the script did not start.
        case checkoutFailed = "checkout_failed"
        /// The workspace or the script's process could not be set up; the script did not start.
        case setupFailed = "setup_failed"
        /// The script ended with a non-zero exit status or a signal.
        case scriptFailed = "script_failed"
        /// The environment's remote target could not be reached or refused the connection.
        case targetUnreachable = "target_unreachable"
    }
}
