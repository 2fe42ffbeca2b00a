import Foundation

/// `post-webhook` (queue `webhooks`): POSTs a notification to a webhook notifier's URL, signed
/// with its secret. Payload: `{"notifier_id": "<uuid>", "event": {…}}`; the URL and the secret
/// are read from the notifier when the job runs (never in Redis), and the job's id is the
/// delivery's id, the same on each retry.
public struct PostWebhook: JobContract, Hashable {
    public static let name = "post-webhook"
    public static let queue = "webhooks"
    /// A receiver that is down for a while still gets it: 10 s doubling to an hour, then hourly,
    /// about 21 hours of tries in all.
    public static let retries = Retries(maxAttempts: 30, backoff: .exponential(base: .seconds(10), maximum: .seconds(3600)))
    /// One request of at most 15 s, and the name's resolution.
    public static let timeout: Duration = .seconds(30)
    public static let visibilityTimeout: Duration? = .seconds(60)

    /// What happened, as the receiver gets it: the JSON body of the POST.
    public struct Event: Codable, Sendable, Hashable {
        /// The activity, `operation.failed`.
        public var activity: String
        /// When, in RFC 3339 (UTC).
        public var occurredAt: String
        public var projectID: UUID
        public var project: String
        public var jobID: UUID
        public var job: String
        public var operationID: UUID
        public var status: String
        public var exitStatus: Int?
        public var failureReason: String?
        /// The operation's page in the web app.
        public var link: String
        /// One line for people, which Slack-compatible incoming webhooks show as the message.
        public var text: String

        public init(
            activity: String, occurredAt: String, projectID: UUID, project: String, jobID: UUID, job: String, operationID: UUID,
            status: String, exitStatus: Int?, failureReason: String?, link: String, text: String
        ) {
            self.activity = activity
            self.occurredAt = occurredAt
            self.projectID = projectID
            self.project = project
            self.jobID = jobID
            self.job = job
            self.operationID = operationID
            self.status = status
            self.exitStatus = exitStatus
            self.failureReason = failureReason
            self.link = link
            self.text = text
        }

        enum CodingKeys: String, CodingKey {
            case activity
            case occurredAt = "occurred_at"
            case projectID = "project_id"
            case project
            case jobID = "job_id"
            case job
            case operationID = "operation_id"
            case status
            case exitStatus = "exit_status"
            case failureReason = "failure_reason"
            case link, text
        }

        /// Ids in lowercase, as the store writes them; `null` for what is not known.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(activity, forKey: .activity)
            try container.encode(occurredAt, forKey: .occurredAt)
            try container.encodeID(projectID, forKey: .projectID)
            try container.encode(project, forKey: .project)
            try container.encodeID(jobID, forKey: .jobID)
            try container.encode(job, forKey: .job)
            try container.encodeID(operationID, forKey: .operationID)
            try container.encode(status, forKey: .status)
            try container.encode(exitStatus, forKey: .exitStatus)
            try container.encode(failureReason, forKey: .failureReason)
            try container.encode(link, forKey: .link)
            try container.encode(text, forKey: .text)
        }
    }

    public var notifierID: UUID
    public var event: Event

    public init(notifierID: UUID, event: Event) {
        self.notifierID = notifierID
        self.event = event
    }

    enum CodingKeys: String, CodingKey {
        case notifierID = "notifier_id"
        case event
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeID(notifierID, forKey: .notifierID)
        try container.encode(event, forKey: .event)
    }
}
