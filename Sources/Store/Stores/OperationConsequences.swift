import Foundation
import JobContracts
import Logging
import PostgresNIO

/// The jobs an operation's progress causes, queued through the outbox in the transaction of
/// the change: the commit status on GitHub when the operation names a commit of a repository,
/// and, for the notification rules its activity matches, mails and chained jobs.
enum OperationConsequences {
    /// How many chained operations may follow one another: a chain (or a loop, A starts B
    /// starts A) stops there, with a `notification.chain_stopped` activity.
    static let longestChain = 5
    /// How many chained operations one chain may queue in all, however its notifiers fan out.
    static let largestChain = 25

    /// Queues a `post-status` job when the operation has `sha` and `repository_id` parameters;
    /// the job reads the operation's state when it runs.
    static func enqueueStatus(of operation: Operation, on connection: PostgresConnection, logger: Logger) async throws {
        guard let sha = operation.parameters["sha"], (7...64).contains(sha.count), sha.allSatisfy(\.isHexDigit),
            let repository = operation.parameters["repository_id"], UUID(uuidString: repository) != nil
        else { return }
        try await Outbox.enqueue([try OutboxJob(PostStatus(operationID: operation.id))], on: connection, logger: logger)
    }

    /// The commit status, and for each live rule (of the project, or of the operation's job)
    /// whose pattern matches `activity`: one `send-mail` job per recipient of an email notifier
    /// (a recipient named by several rules gets one mail), one operation of a job notifier's
    /// job (a job named by several rules runs once), one `post-webhook` job per webhook
    /// notifier.
    static func enqueue(
        after operation: Operation, activity: String, logTail: [String], publicURL: String, on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        try await enqueueStatus(of: operation, on: connection, logger: logger)
        let rules = try await connection.all(
            """
            SELECT r.activity_pattern, n.id, n.kind, n.recipients, n.job_id FROM notification_rules r
            JOIN notifiers n ON n.id = r.notifier_id
            WHERE r.project_id = \(operation.projectID) AND r.archived_at IS NULL AND n.archived_at IS NULL
              AND (r.job_id IS NULL OR r.job_id = \(operation.jobID))
            ORDER BY r.created_at, r.id
            """, logger: logger, { try $0.decode((String, UUID, String, [String], UUID?).self) })
        var recipients: [String] = []
        var chained: [UUID] = []
        var webhooks: [UUID] = []
        for (pattern, notifier, kind, addresses, job) in rules
        where NotificationRule.glob(Array(pattern.unicodeScalars), matches: Array(activity.unicodeScalars)) {
            for address in addresses where !recipients.contains(address) { recipients.append(address) }
            if let job, !chained.contains(job) { chained.append(job) }
            if kind == Notifier.Kind.webhook.rawValue, !webhooks.contains(notifier) { webhooks.append(notifier) }
        }
        try await enqueueChained(chained, after: operation, activity: activity, on: connection, logger: logger)
        guard !recipients.isEmpty || !webhooks.isEmpty else { return }
        let names = try await connection.first(
            "SELECT j.name, p.name FROM jobs j JOIN projects p ON p.id = j.project_id WHERE j.id = \(operation.jobID)", logger: logger,
            { try $0.decode((String, String).self) })
        let base = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
        let link = "\(base)/projects/\(operation.projectID.uuidString.lowercased())/operations/\(operation.id.uuidString.lowercased())"
        if !webhooks.isEmpty {
            let event = webhookEvent(operation, activity: activity, job: names?.0 ?? "", project: names?.1 ?? "", link: link)
            try await Outbox.enqueue(
                try webhooks.map { try OutboxJob(PostWebhook(notifierID: $0, event: event)) }, on: connection, logger: logger)
        }
        guard !recipients.isEmpty else { return }
        var data = [
            "job": names?.0 ?? "a job", "project": names?.1 ?? "", "link": link, "status": operation.status.rawValue,
        ]
        data["exit_status"] = operation.exitStatus.map(String.init)
        data["failure_reason"] = operation.failureReason?.rawValue
        if !logTail.isEmpty { data["log_tail"] = logTail.joined(separator: "\n") }
        let template = operation.status == .succeeded ? "operation-succeeded" : "operation-failed"
        try await Outbox.enqueue(
            try recipients.map { try OutboxJob(SendMail(template: template, to: $0, data: data)) }, on: connection, logger: logger)
    }

    /// What a webhook notifier POSTs about `operation`. No log lines: a webhook's receiver is
    /// a third party (a chat service), not a member of the project.
    static func webhookEvent(_ operation: Operation, activity: String, job: String, project: String, link: String) -> PostWebhook.Event {
        var outcome = operation.status.rawValue
        // The exit status says more than `script_failed`; other reasons (timed_out,
        // worker_lost, checkout_failed) come without one.
        if let exitStatus = operation.exitStatus {
            outcome += " (exit \(exitStatus))"
        } else if let reason = operation.failureReason {
            outcome += " (\(reason.rawValue))"
        }
        let occurred = operation.finishedAt ?? operation.updatedAt
        return PostWebhook.Event(
            activity: activity, occurredAt: occurred.formatted(.iso8601), projectID: operation.projectID, project: project,
            jobID: operation.jobID, job: job, operationID: operation.id, status: operation.status.rawValue,
            exitStatus: operation.exitStatus, failureReason: operation.failureReason?.rawValue, link: link,
            text: "\(job) in \(project): \(outcome) \(link)")
    }

    /// Queues an operation of each job, reason `notification`, with parameters
    /// `triggering_operation_id`, `chain_depth` (one more than the triggering operation's) and
    /// `chain_root_id` (the operation that started the chain). Beyond ``longestChain`` links, or
    /// ``largestChain`` operations in one chain (notifiers fanning out), it records
    /// `notification.chain_stopped` instead.
    static func enqueueChained(
        _ jobs: [UUID], after operation: Operation, activity: String, on connection: PostgresConnection, logger: Logger
    ) async throws {
        guard !jobs.isEmpty else { return }
        // Parameters a person may have given by hand: a depth counts from 0 to the limit (a
        // negative or huge one buys no longer chain), a root must be an id.
        let depth = min(max(0, Int(operation.parameters["chain_depth"] ?? "") ?? 0), longestChain) + 1
        let root = operation.parameters["chain_root_id"].flatMap { UUID(uuidString: $0) } ?? operation.id
        let rootID = root.uuidString.lowercased()
        var size =
            try await connection.first(
                "SELECT count(*)::int8 FROM operations WHERE reason = 'notification' AND parameters->>'chain_root_id' = \(rootID)",
                logger: logger, { try $0.decode(Int.self) }) ?? 0
        for job in jobs {
            var payload = [
                "triggering_operation_id": operation.id.uuidString.lowercased(), "job_id": job.uuidString.lowercased(),
                "activity": activity, "chain_root_id": rootID,
            ]
            guard depth <= longestChain, size < largestChain else {
                payload["depth"] = "\(depth)"
                payload["reason"] =
                    depth > longestChain ? "the chain is \(longestChain) links long" : "the chain ran \(largestChain) operations"
                try await ActivityLog.record(
                    "notification.chain_stopped", project: operation.projectID, actor: nil, payload: payload, on: connection,
                    logger: logger)
                continue
            }
            let parameters = [
                "triggering_operation_id": operation.id.uuidString.lowercased(), "chain_depth": "\(depth)", "chain_root_id": rootID,
            ]
            let queued = try await OperationStore.queue(
                job: job, project: operation.projectID, reason: .notification, requestedBy: nil, parameters: parameters,
                on: connection, logger: logger)
            if queued == nil {
                logger.warning("a job notifier's job is not live: nothing chained", metadata: ["job_id": "\(job.uuidString.lowercased())"])
            } else {
                size += 1
            }
        }
    }
}
