import Foundation
import JobContracts
import Logging
import PostgresNIO

/// The jobs an operation's progress causes, queued through the outbox in the transaction of
/// the change: the commit status on GitHub when the operation names a commit of a repository,
/// and the mails of the notification rules its activity matches.
enum OperationConsequences {
    /// Queues a `post-status` job when the operation has `sha` and `repository_id` parameters;
    /// the job reads the operation's state when it runs.
    static func enqueueStatus(of operation: Operation, on connection: PostgresConnection, logger: Logger) async throws {
        guard let sha = operation.parameters["sha"], (7...64).contains(sha.count), sha.allSatisfy(\.isHexDigit),
            let repository = operation.parameters["repository_id"], UUID(uuidString: repository) != nil
        else { return }
        try await Outbox.enqueue([try OutboxJob(PostStatus(operationID: operation.id))], on: connection, logger: logger)
    }

    /// The commit status, and one `send-mail` job per recipient of each live rule (of the
    /// project, or of the operation's job) whose pattern matches `activity`; a recipient named
    /// by several rules gets one mail.
    static func enqueue(
        after operation: Operation, activity: String, logTail: [String], publicURL: String, on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        try await enqueueStatus(of: operation, on: connection, logger: logger)
        let rules = try await connection.all(
            """
            SELECT r.activity_pattern, n.recipients FROM notification_rules r JOIN notifiers n ON n.id = r.notifier_id
            WHERE r.project_id = \(operation.projectID) AND r.archived_at IS NULL AND n.archived_at IS NULL AND n.kind = 'email'
              AND (r.job_id IS NULL OR r.job_id = \(operation.jobID))
            ORDER BY r.created_at, r.id
            """, logger: logger, { try $0.decode((String, [String]).self) })
        var recipients: [String] = []
        for (pattern, addresses) in rules
        where NotificationRule.glob(Array(pattern.unicodeScalars), matches: Array(activity.unicodeScalars)) {
            for address in addresses where !recipients.contains(address) { recipients.append(address) }
        }
        guard !recipients.isEmpty else { return }
        let names = try await connection.first(
            "SELECT j.name, p.name FROM jobs j JOIN projects p ON p.id = j.project_id WHERE j.id = \(operation.jobID)", logger: logger,
            { try $0.decode((String, String).self) })
        let base = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
        var data = [
            "job": names?.0 ?? "a job", "project": names?.1 ?? "",
            "link": "\(base)/projects/\(operation.projectID.uuidString.lowercased())/operations/\(operation.id.uuidString.lowercased())",
            "status": operation.status.rawValue,
        ]
        data["exit_status"] = operation.exitStatus.map(String.init)
        data["failure_reason"] = operation.failureReason?.rawValue
        if !logTail.isEmpty { data["log_tail"] = logTail.joined(separator: "\n") }
        let template = operation.status == .succeeded ? "operation-succeeded" : "operation-failed"
        try await Outbox.enqueue(
            try recipients.map { try OutboxJob(SendMail(template: template, to: $0, data: data)) }, on: connection, logger: logger)
    }
}
