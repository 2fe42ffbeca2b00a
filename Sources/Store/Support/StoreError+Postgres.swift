import Logging
import PostgresNIO

extension StoreError {
    /// Postgres's refusals as store errors: a unique violation is a duplicate, a foreign key
    /// violation a missing record, a check or a not-null violation an invalid input. The
    /// message comes from the constraint's entry in ``constraintMessages`` (never from the
    /// server's text, which quotes values). Other errors pass through unchanged.
    static func translating(_ error: any Error) -> any Error {
        if let error = error as? PostgresTransactionError, let inner = error.closureError {
            return translating(inner)
        }
        guard let psql = error as? PSQLError, let info = psql.serverInfo, let state = info[.sqlState] else { return error }
        let constraint = info[.constraintName]
        let known = constraint.flatMap { constraintMessages[$0] }
        switch state {
        case "23505":
            return StoreError(
                .duplicate, known?.message ?? "a record with these values exists", constraint: constraint, field: known?.field)
        case "23503":
            return StoreError(
                .notFound, known?.message ?? "a record it refers to does not exist", constraint: constraint, field: known?.field)
        case "23514":
            return StoreError(.invalid, known?.message ?? "the input breaks a rule", constraint: constraint, field: known?.field)
        case "23502":
            let column = info[.columnName]
            return StoreError(.invalid, "\(column ?? "a field") is required", field: column)
        case "23P01":
            return StoreError(.conflict, known?.message ?? "the change conflicts with another record", constraint: constraint)
        case "22P02", "22001", "22003", "22007", "22008", "22023":
            return StoreError(.invalid, "a value has the wrong form or size")
        case "22021", "22P05":
            // Postgres text cannot hold a NUL character (or bytes that are not UTF-8).
            return StoreError(.invalid, "text must not contain NUL characters")
        default:
            return error
        }
    }

    /// What each named constraint means to a user, and the field it is about.
    static let constraintMessages: [String: (message: String, field: String?)] = [
        "users_email_key": ("a user with this email exists", "email"),
        "users_email_check": ("the email address is not valid", "email"),
        "invitations_email_check": ("the email address is not valid", "email"),
        "sessions_user_id_fkey": ("the user does not exist", nil),
        "sessions_token_hash_key": ("this session token exists already", "token_hash"),
        "sessions_token_hash_check": ("the token hash must be 32 bytes", "token_hash"),
        "invitations_invited_by_fkey": ("the inviting user does not exist", "invited_by"),
        "invitations_organization_id_fkey": ("the organization does not exist", "organization_id"),
        "organization_memberships_organization_id_fkey": ("the organization does not exist", "organization_id"),
        "project_memberships_project_id_fkey": ("the project does not exist", "project_id"),
        "environments_project_id_fkey": ("the project does not exist", "project_id"),
        "environments_target_secret_check": ("a login key needs a target to log in to: set the target, or no key", "target_secret_id"),
        "tasks_project_id_fkey": ("the project does not exist", "project_id"),
        "ssh_keys_project_id_fkey": ("the project does not exist", "project_id"),
        "repositories_project_id_fkey": ("the project does not exist", "project_id"),
        "notifiers_project_id_fkey": ("the project does not exist", "project_id"),
        "schedules_created_by_fkey": ("the user does not exist", "created_by"),
        "operations_requested_by_fkey": ("the user does not exist", "requested_by"),
        "organizations_created_by_fkey": ("the user does not exist", "created_by"),
        "ssh_keys_created_by_fkey": ("the user does not exist", "created_by"),
        "secrets_created_by_fkey": ("the user does not exist", "created_by"),
        "organization_memberships_pkey": ("the user is a member already", "user_id"),
        "project_memberships_pkey": ("the user is a member already", "user_id"),
        "organization_memberships_user_id_fkey": ("the user does not exist", "user_id"),
        "project_memberships_user_id_fkey": ("the user does not exist", "user_id"),
        "organization_memberships_role_check": ("the role must be guest, member, manager or owner", "role"),
        "project_memberships_role_check": ("the role must be guest, member, manager or owner", "role"),
        "invitations_role_check": ("the role must be guest, member, manager or owner", "role"),
        "invitations_project_id_fkey": ("the project is not in this organization", "project_id"),
        "invitations_answer_check": ("the invitation was answered already", nil),
        "projects_name_key": ("a project with this name exists in the organization", "name"),
        "projects_organization_id_fkey": ("the organization does not exist", "organization_id"),
        "environments_name_key": ("an environment with this name exists in the project", "name"),
        "environments_default_key": ("the project has a default environment already", "is_default"),
        "environments_variables_check": ("variables must be a JSON object", "variables"),
        "secrets_name_key": ("a secret with this name exists in the environment", "name"),
        "secrets_environment_id_fkey": ("the environment is not in this project", "environment_id"),
        "secrets_kind_check": ("the kind must be env or ssh", "kind"),
        "jobs_task_id_fkey": ("the task is not in this project", "task_id"),
        "jobs_environment_id_fkey": ("the environment is not in this project", "environment_id"),
        "jobs_time_limit_seconds_check": ("the time limit must be positive", "time_limit_seconds"),
        "ssh_keys_algorithm_check": ("the algorithm must be ed25519 or rsa", "algorithm"),
        "repositories_url_check": ("the URL must not contain credentials", "url"),
        "repositories_credential_id_fkey": ("the SSH key is not in this project", "credential_id"),
        "schedules_spec_check": ("a schedule has either a cron spec or a run-at time, not both", "cron"),
        "schedules_job_id_fkey": ("the job is not in this project", "job_id"),
        "git_triggers_repository_id_fkey": ("the repository is not in this project", "repository_id"),
        "git_triggers_job_id_fkey": ("the job is not in this project", "job_id"),
        "git_triggers_change_type_check": ("the change type must be add, change or remove", "change_type"),
        "webhooks_slug_key": ("this webhook slug is taken", "slug"),
        "webhooks_job_id_fkey": ("the job is not in this project", "job_id"),
        "notifiers_kind_check": ("the kind must be email, job or webhook", "kind"),
        "notification_rules_notifier_id_fkey": ("the notifier is not in this project", "notifier_id"),
        "notification_rules_job_id_fkey": ("the job is not in this project", "job_id"),
        "operations_job_id_fkey": ("the job is not in this project", "job_id"),
        "operations_reason_check": ("unknown reason", "reason"),
        "operations_status_check": ("unknown status", "status"),
        "operations_parameters_check": ("parameters must be a JSON object", "parameters"),
        "github_tokens_project_id_fkey": ("the project does not exist", "project_id"),
        "job_runs_pkey": ("this job ran already", nil),
        "outbox_pkey": ("this job is in the outbox already", nil),
    ]
}

extension PostgresClient {
    /// Runs `body` in a transaction and translates Postgres's refusals into ``StoreError``s.
    func write<T: Sendable>(logger: Logger, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await inTransaction(logger: logger, body)
        } catch {
            throw StoreError.translating(error)
        }
    }

    /// Runs `body` on a pooled connection and translates Postgres's refusals.
    func read<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await withConnection { connection in try await body(connection) }
        } catch {
            throw StoreError.translating(error)
        }
    }
}
