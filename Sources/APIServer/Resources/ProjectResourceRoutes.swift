import Foundation
import HTTPTypes
import Hummingbird
import Logging
import OperationLogs
import Store

/// A project's environments, secrets, tasks and jobs, and running jobs as operations.
struct ProjectResourceRoutes: Sendable {
    let environments: EnvironmentStore
    let secrets: SecretStore
    let tasks: TaskStore
    let jobs: JobStore
    let operations: OperationStore
    let log: OperationLog
    let archive: OperationLogArchive
    let access: Access
    let configuration: APIConfiguration

    struct EnvironmentBody: RequestBody {
        static let fields: Set<String> = ["name", "variables", "is_default", "target", "target_secret_id", "known_hosts"]
        var name: String?
        var variables: [String: String]?
        var isDefault: Bool?
        /// `ssh://user@host[:port]`, or empty for none.
        var target: String?
        var targetSecretId: UUID?
        var knownHosts: String?
    }

    struct SecretBody: RequestBody {
        static let fields: Set<String> = ["name", "kind", "value"]
        var name: String?
        var kind: Secret.Kind?
        var value: String?
    }

    struct TaskBody: RequestBody {
        static let fields: Set<String> = ["name", "script"]
        var name: String?
        var script: String?
    }

    struct JobBody: RequestBody {
        static let fields: Set<String> = ["name", "task_id", "environment_id", "time_limit_seconds"]
        var name: String?
        var taskId: UUID?
        var environmentId: UUID?
        var timeLimitSeconds: Int?
    }

    struct RunBody: RequestBody {
        static let fields: Set<String> = ["parameters"]
        var parameters: [String: String]?
    }

    func addRoutes(to router: some RouterMethods<APIContext>) {
        let limit = configuration.bodyLimit
        let project = router.group("projects/:project")

        // Environments
        project.get("environments") { request, context -> PageBody<Store.Environment> in
            let (project, _) = try await context.project(.read, access: access)
            return PageBody(try await environments.list(project: project, page: try request.pageRequest()))
        }
        project.post("environments") { request, context -> EditedResponse<Store.Environment> in
            let (project, caller) = try await context.project(.writeEnvironments, access: access)
            let body = try await request.json(EnvironmentBody.self, limit: limit)
            let environment = try await environments.create(
                project: project, name: try Fields.required(body.name, "name"), variables: body.variables ?? [:],
                isDefault: body.isDefault ?? false, target: body.target, knownHosts: body.knownHosts ?? "", actor: caller.user.id)
            return EditedResponse(status: .created, response: environment)
        }
        project.get("environments/:environment") { _, context -> Store.Environment in
            let (project, _) = try await context.project(.read, access: access)
            return try await environments.find(try context.id("environment"), project: project)
        }
        project.patch("environments/:environment") { request, context -> Store.Environment in
            let (project, caller) = try await context.project(.writeEnvironments, access: access)
            let body = try await request.json(EnvironmentBody.self, limit: limit)
            return try await environments.update(
                try context.id("environment"), project: project, name: body.name, variables: body.variables, isDefault: body.isDefault,
                target: body.target, targetSecret: body.targetSecretId.map { .some($0) }, knownHosts: body.knownHosts,
                actor: caller.user.id)
        }
        project.delete("environments/:environment") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.archive, access: access)
            try await environments.archive(try context.id("environment"), project: project, actor: caller.user.id)
            return .noContent
        }

        // Secrets: values are write-only.
        project.get("environments/:environment/secrets") { request, context -> PageBody<Secret> in
            let (project, _) = try await context.project(.read, access: access)
            return PageBody(
                try await secrets.list(project: project, environment: try context.id("environment"), page: try request.pageRequest()))
        }
        project.post("environments/:environment/secrets") { request, context -> EditedResponse<Secret> in
            let (project, caller) = try await context.project(.writeSecrets, access: access)
            let body = try await request.json(SecretBody.self, limit: limit)
            let secret = try await secrets.create(
                project: project, environment: try context.id("environment"), name: try Fields.required(body.name, "name"),
                kind: body.kind ?? .env, value: body.value, actor: caller.user.id)
            return EditedResponse(status: .created, response: secret)
        }
        project.get("secrets/:id") { _, context -> Secret in
            let (project, _) = try await context.project(.read, access: access)
            return try await secrets.find(try context.id(), project: project)
        }
        project.patch("secrets/:id") { request, context -> Secret in
            let (project, caller) = try await context.project(.writeSecrets, access: access)
            let body = try await request.json(SecretBody.self, limit: limit)
            try Fields.unchangeable(body.name, "name")
            try Fields.unchangeable(body.kind, "kind")
            return try await secrets.updateValue(
                try context.id(), project: project, value: try Fields.required(body.value, "value"), actor: caller.user.id)
        }
        project.delete("secrets/:id") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.archive, access: access)
            try await secrets.archive(try context.id(), project: project, actor: caller.user.id)
            return .noContent
        }

        // Tasks
        project.get("tasks") { request, context -> PageBody<ShellTask> in
            let (project, _) = try await context.project(.read, access: access)
            return PageBody(try await tasks.list(project: project, page: try request.pageRequest()))
        }
        project.post("tasks") { request, context -> EditedResponse<ShellTask> in
            let (project, caller) = try await context.project(.writeTasks, access: access)
            let body = try await request.json(TaskBody.self, limit: limit)
            let task = try await tasks.create(
                project: project, name: try Fields.required(body.name, "name"), script: try Fields.required(body.script, "script"),
                actor: caller.user.id)
            return EditedResponse(status: .created, response: task)
        }
        project.get("tasks/:id") { _, context -> ShellTask in
            let (project, _) = try await context.project(.read, access: access)
            return try await tasks.find(try context.id(), project: project)
        }
        project.patch("tasks/:id") { request, context -> ShellTask in
            let (project, caller) = try await context.project(.writeTasks, access: access)
            let body = try await request.json(TaskBody.self, limit: limit)
            return try await tasks.update(try context.id(), project: project, name: body.name, script: body.script, actor: caller.user.id)
        }
        project.delete("tasks/:id") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.archive, access: access)
            try await tasks.archive(try context.id(), project: project, actor: caller.user.id)
            return .noContent
        }

        // Jobs
        project.get("jobs") { request, context -> PageBody<JobDefinition> in
            let (project, _) = try await context.project(.read, access: access)
            return PageBody(try await jobs.list(project: project, page: try request.pageRequest()))
        }
        project.post("jobs") { request, context -> EditedResponse<JobDefinition> in
            let (project, caller) = try await context.project(.writeJobs, access: access)
            let body = try await request.json(JobBody.self, limit: limit)
            let job = try await jobs.create(
                project: project, name: try Fields.required(body.name, "name"), task: try Fields.required(body.taskId, "task_id"),
                environment: try Fields.required(body.environmentId, "environment_id"),
                timeLimitSeconds: body.timeLimitSeconds ?? JobDefinition.defaultTimeLimitSeconds, actor: caller.user.id)
            return EditedResponse(status: .created, response: job)
        }
        project.get("jobs/:id") { _, context -> JobDefinition in
            let (project, _) = try await context.project(.read, access: access)
            return try await jobs.find(try context.id(), project: project)
        }
        project.patch("jobs/:id") { request, context -> JobDefinition in
            let (project, caller) = try await context.project(.writeJobs, access: access)
            let body = try await request.json(JobBody.self, limit: limit)
            return try await jobs.update(
                try context.id(), project: project, name: body.name, task: body.taskId, environment: body.environmentId,
                timeLimitSeconds: body.timeLimitSeconds, actor: caller.user.id)
        }
        project.delete("jobs/:id") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.archive, access: access)
            try await jobs.archive(try context.id(), project: project, actor: caller.user.id)
            return .noContent
        }

        // Operations: running a job records the operation and its run-operation job together.
        project.post("jobs/:id/operations") { request, context -> EditedResponse<Store.Operation> in
            let (project, caller) = try await context.project(.runJobs, access: access)
            let parameters = request.headers[.contentType] == nil ? nil : try await request.json(RunBody.self, limit: limit).parameters
            let operation = try await operations.create(
                job: try context.id(), project: project, reason: .user, requestedBy: caller.user.id, parameters: parameters ?? [:])
            return EditedResponse(status: .created, response: operation)
        }
        project.get("jobs/:id/operations") { request, context -> PageBody<Store.Operation> in
            let (project, _) = try await context.project(.read, access: access)
            return PageBody(try await operations.list(project: project, job: try context.id(), page: try request.pageRequest()))
        }
        project.get("operations") { request, context -> PageBody<Store.Operation> in
            let (project, _) = try await context.project(.read, access: access)
            let statuses = try request.uri.queryParameters["status"].map { text in
                try text.split(separator: ",", omittingEmptySubsequences: false).map {
                    guard let status = Store.Operation.Status(rawValue: String($0)) else {
                        throw Problem.invalid([
                            Problem.FieldError(
                                field: "status",
                                message:
                                    "must be statuses among \(Store.Operation.Status.allCases.map(\.rawValue).joined(separator: ", ")), comma-separated"
                            )
                        ])
                    }
                    return status
                }
            }
            // Each status once (a list repeating one would bind a long array for nothing).
            return PageBody(
                try await operations.list(project: project, statuses: statuses.map { Array(Set($0)) }, page: try request.pageRequest()))
        }
        project.get("operations/:id") { _, context -> Store.Operation in
            let (project, _) = try await context.project(.read, access: access)
            return try await operations.find(try context.id(), project: project)
        }
        // A finished operation's log is served from its archive in Postgres (it outlives the
        // Redis stream); a running one's from Redis, live.
        project.get("operations/:id/log") { request, context -> OperationLog.Chunk in
            let (project, _) = try await context.project(.read, access: access)
            let operation = try await operations.find(try context.id(), project: project)
            let limit = try AdminQueueRoutes.limit(request)
            let after = request.uri.queryParameters["after"].map(String.init) ?? "0"
            if operation.status.isFinal, let page = try await archive.read(operation.id, after: after, limit: limit) {
                return OperationLog.Chunk(
                    lines: page.lines.map { OperationLog.Line(id: $0.id, stream: $0.stream, text: $0.text, t: $0.t) }, next: page.next,
                    finished: page.lines.count < limit)
            }
            return try await log.read(operation.id, after: after, limit: limit)
        }
        project.post("operations/:id/cancel") { _, context -> Store.Operation in
            let (project, caller) = try await context.project(.cancelOperations, access: access)
            let operation = try await operations.cancel(try context.id(), project: project, actor: caller.user.id)
            // The runner also sees the status when it renews its lease; the key makes it quick.
            do {
                try await log.requestCancel(operation.id)
            } catch {
                context.logger.warning("the cancel request could not reach Redis", metadata: ["error": "\(error)"])
            }
            return operation
        }
        project.post("operations/:id/retry") { _, context -> EditedResponse<Store.Operation> in
            let (project, caller) = try await context.project(.runJobs, access: access)
            let operation = try await operations.retry(try context.id(), project: project, actor: caller.user.id)
            return EditedResponse(status: .created, response: operation)
        }
    }
}
