extension Migration {
    /// The domain: accounts, organizations, projects and everything under them, activities,
    /// job runs and the outbox.
    static let domain = Migration(
        version: 1, name: "domain",
        sql: #"""
            -- Harrow domain schema, version 1.
            -- Every constraint is named: the store maps constraint names to typed errors
            -- (duplicate / not found / conflict / invalid), so the names are part of the API.
            -- Records are archived (archived_at), never deleted: foreign keys restrict.
            -- Cross-project references are impossible: children carry project_id and
            -- reference (project_id, id) of their parents.

            -- Accounts ------------------------------------------------------------------

            create table users (
                id uuid not null default gen_random_uuid(),
                email text not null,
                name text not null,
                password_hash text not null,
                email_verified_at timestamptz,
                blocked_at timestamptz,
                is_admin boolean not null default false,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                constraint users_pkey primary key (id),
                constraint users_email_check check (email ~ '^[^@[:space:]]+@[^@[:space:]]+$')
            );
            create unique index users_email_key on users (lower(email));

            create table sessions (
                id uuid not null default gen_random_uuid(),
                user_id uuid not null,
                token_hash bytea not null,
                created_at timestamptz not null default now(),
                expires_at timestamptz not null,
                revoked_at timestamptz,
                user_agent text,
                address text,
                last_seen_at timestamptz,
                constraint sessions_pkey primary key (id),
                constraint sessions_user_id_fkey foreign key (user_id)
                    references users (id) on delete restrict,
                constraint sessions_token_hash_key unique (token_hash),
                constraint sessions_token_hash_check check (octet_length(token_hash) = 32)
            );
            create index sessions_user_id_created_at_idx on sessions (user_id, created_at, id);

            -- Organizations and projects --------------------------------------------------

            create table organizations (
                id uuid not null default gen_random_uuid(),
                name text not null,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint organizations_pkey primary key (id)
            );
            create index organizations_created_at_idx on organizations (created_at, id);

            create table organization_memberships (
                organization_id uuid not null,
                user_id uuid not null,
                role text not null,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                constraint organization_memberships_pkey primary key (organization_id, user_id),
                constraint organization_memberships_organization_id_fkey foreign key (organization_id)
                    references organizations (id) on delete restrict,
                constraint organization_memberships_user_id_fkey foreign key (user_id)
                    references users (id) on delete restrict,
                constraint organization_memberships_role_check
                    check (role in ('guest', 'member', 'manager', 'owner'))
            );
            create index organization_memberships_organization_id_created_at_idx
                on organization_memberships (organization_id, created_at, user_id);
            create index organization_memberships_user_id_created_at_idx
                on organization_memberships (user_id, created_at, organization_id);

            create table projects (
                id uuid not null default gen_random_uuid(),
                organization_id uuid not null,
                name text not null,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint projects_pkey primary key (id),
                constraint projects_organization_id_fkey foreign key (organization_id)
                    references organizations (id) on delete restrict,
                constraint projects_organization_id_id_key unique (organization_id, id)
            );
            create unique index projects_name_key on projects (organization_id, name)
                where archived_at is null;
            create index projects_organization_id_created_at_idx
                on projects (organization_id, created_at, id);

            create table project_memberships (
                project_id uuid not null,
                user_id uuid not null,
                role text not null,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                constraint project_memberships_pkey primary key (project_id, user_id),
                constraint project_memberships_project_id_fkey foreign key (project_id)
                    references projects (id) on delete restrict,
                constraint project_memberships_user_id_fkey foreign key (user_id)
                    references users (id) on delete restrict,
                constraint project_memberships_role_check
                    check (role in ('guest', 'member', 'manager', 'owner'))
            );
            create index project_memberships_project_id_created_at_idx
                on project_memberships (project_id, created_at, user_id);
            create index project_memberships_user_id_created_at_idx
                on project_memberships (user_id, created_at, project_id);

            -- An invitation to an organization (project_id null) or to one of its projects.
            create table invitations (
                id uuid not null default gen_random_uuid(),
                organization_id uuid not null,
                project_id uuid,
                email text not null,
                role text not null,
                invited_by uuid not null,
                created_at timestamptz not null default now(),
                expires_at timestamptz not null,
                accepted_at timestamptz,
                refused_at timestamptz,
                archived_at timestamptz,
                constraint invitations_pkey primary key (id),
                constraint invitations_organization_id_fkey foreign key (organization_id)
                    references organizations (id) on delete restrict,
                -- MATCH SIMPLE: checked only when project_id is set; the project must be
                -- in the invitation's organization.
                constraint invitations_project_id_fkey foreign key (organization_id, project_id)
                    references projects (organization_id, id) on delete restrict,
                constraint invitations_invited_by_fkey foreign key (invited_by)
                    references users (id) on delete restrict,
                constraint invitations_email_check check (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
                constraint invitations_role_check check (role in ('guest', 'member', 'manager', 'owner')),
                constraint invitations_answer_check check (accepted_at is null or refused_at is null)
            );
            create index invitations_organization_id_created_at_idx
                on invitations (organization_id, created_at, id);
            create index invitations_project_id_created_at_idx
                on invitations (project_id, created_at, id) where project_id is not null;
            create index invitations_email_idx on invitations (lower(email));

            -- Environments and secrets ------------------------------------------------------

            create table environments (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                name text not null,
                variables jsonb not null default '{}',
                is_default boolean not null default false,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint environments_pkey primary key (id),
                constraint environments_project_id_fkey foreign key (project_id)
                    references projects (id) on delete restrict,
                constraint environments_project_id_id_key unique (project_id, id),
                constraint environments_variables_check check (jsonb_typeof(variables) = 'object')
            );
            create unique index environments_name_key on environments (project_id, name)
                where archived_at is null;
            create unique index environments_default_key on environments (project_id)
                where is_default and archived_at is null;
            create index environments_project_id_created_at_idx
                on environments (project_id, created_at, id);

            create table secrets (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                environment_id uuid not null,
                name text not null,
                kind text not null,
                status text not null default 'pending',
                ciphertext bytea,
                key_id text,
                public_key text,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint secrets_pkey primary key (id),
                constraint secrets_environment_id_fkey foreign key (project_id, environment_id)
                    references environments (project_id, id) on delete restrict,
                constraint secrets_kind_check check (kind in ('env', 'ssh')),
                constraint secrets_status_check check (status in ('pending', 'present')),
                constraint secrets_ciphertext_check check (status = 'pending' or ciphertext is not null),
                constraint secrets_key_id_check check (ciphertext is null or key_id is not null),
                constraint secrets_public_key_check check (public_key is null or kind = 'ssh')
            );
            create unique index secrets_name_key on secrets (environment_id, name)
                where archived_at is null;
            create index secrets_environment_id_created_at_idx
                on secrets (environment_id, created_at, id);
            create index secrets_project_id_created_at_idx
                on secrets (project_id, created_at, id);

            -- Tasks and jobs ------------------------------------------------------------------

            create table tasks (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                name text not null,
                script text not null,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint tasks_pkey primary key (id),
                constraint tasks_project_id_fkey foreign key (project_id)
                    references projects (id) on delete restrict,
                constraint tasks_project_id_id_key unique (project_id, id)
            );
            create index tasks_project_id_created_at_idx on tasks (project_id, created_at, id);

            -- A job runs a task in an environment of the same project.
            create table jobs (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                task_id uuid not null,
                environment_id uuid not null,
                name text not null,
                time_limit_seconds integer not null default 900,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint jobs_pkey primary key (id),
                constraint jobs_project_id_id_key unique (project_id, id),
                constraint jobs_task_id_fkey foreign key (project_id, task_id)
                    references tasks (project_id, id) on delete restrict,
                constraint jobs_environment_id_fkey foreign key (project_id, environment_id)
                    references environments (project_id, id) on delete restrict,
                constraint jobs_time_limit_seconds_check check (time_limit_seconds > 0)
            );
            create index jobs_project_id_created_at_idx on jobs (project_id, created_at, id);
            create index jobs_task_id_idx on jobs (task_id);
            create index jobs_environment_id_idx on jobs (environment_id);

            -- Repositories and their deploy keys ------------------------------------------------

            create table ssh_keys (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                name text not null,
                public_key text,
                private_key_ciphertext bytea,
                key_id text,
                fingerprint text,
                algorithm text not null default 'ed25519',
                status text not null default 'pending',
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint ssh_keys_pkey primary key (id),
                constraint ssh_keys_project_id_fkey foreign key (project_id)
                    references projects (id) on delete restrict,
                constraint ssh_keys_project_id_id_key unique (project_id, id),
                constraint ssh_keys_algorithm_check check (algorithm in ('ed25519', 'rsa')),
                constraint ssh_keys_status_check check (status in ('pending', 'present')),
                constraint ssh_keys_ciphertext_check check (
                    status = 'pending'
                    or (private_key_ciphertext is not null and public_key is not null)),
                constraint ssh_keys_key_id_check check (private_key_ciphertext is null or key_id is not null)
            );
            create index ssh_keys_project_id_created_at_idx on ssh_keys (project_id, created_at, id);

            create table repositories (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                url text not null,
                credential_id uuid,
                refs jsonb not null default '{}',
                accessible boolean,
                checked_at timestamptz,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint repositories_pkey primary key (id),
                constraint repositories_project_id_fkey foreign key (project_id)
                    references projects (id) on delete restrict,
                constraint repositories_project_id_id_key unique (project_id, id),
                -- MATCH SIMPLE: checked only when credential_id is set.
                constraint repositories_credential_id_fkey foreign key (project_id, credential_id)
                    references ssh_keys (project_id, id) on delete restrict,
                -- No credentials in the URL: no password in any URL with a scheme, and no
                -- user name at all except for ssh URLs (ssh://git@host/path, where it is
                -- the login, not a secret). scp-style git@host:path has no scheme: allowed.
                constraint repositories_url_check check (
                    url !~ '://[^/@]*:[^/@]*@'
                    and (url ~* '^(ssh|git\+ssh|ssh\+git)://' or url !~ '://[^/@]+@')),
                constraint repositories_refs_check check (jsonb_typeof(refs) = 'object')
            );
            create index repositories_project_id_created_at_idx
                on repositories (project_id, created_at, id);
            create index repositories_credential_id_idx on repositories (credential_id)
                where credential_id is not null;

            -- What starts operations ----------------------------------------------------------

            -- A recurring (cron) or one-off (run_at) schedule of a job.
            create table schedules (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                job_id uuid not null,
                cron text,
                run_at timestamptz,
                time_zone text not null default 'UTC',
                description text,
                disabled_at timestamptz,
                disabled_reason text,
                created_by uuid,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint schedules_pkey primary key (id),
                constraint schedules_job_id_fkey foreign key (project_id, job_id)
                    references jobs (project_id, id) on delete restrict,
                constraint schedules_created_by_fkey foreign key (created_by)
                    references users (id) on delete restrict,
                constraint schedules_spec_check check ((cron is null) <> (run_at is null))
            );
            create index schedules_project_id_created_at_idx on schedules (project_id, created_at, id);
            create index schedules_job_id_created_at_idx on schedules (job_id, created_at, id);
            create index schedules_enabled_idx on schedules (run_at)
                where disabled_at is null and archived_at is null;

            create table git_triggers (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                repository_id uuid not null,
                job_id uuid not null,
                name text not null,
                ref_pattern text not null default '.*',
                change_type text not null,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint git_triggers_pkey primary key (id),
                constraint git_triggers_repository_id_fkey foreign key (project_id, repository_id)
                    references repositories (project_id, id) on delete restrict,
                constraint git_triggers_job_id_fkey foreign key (project_id, job_id)
                    references jobs (project_id, id) on delete restrict,
                constraint git_triggers_change_type_check check (change_type in ('add', 'change', 'remove'))
            );
            create index git_triggers_project_id_created_at_idx
                on git_triggers (project_id, created_at, id);
            create index git_triggers_repository_id_idx on git_triggers (repository_id)
                where archived_at is null;
            create index git_triggers_job_id_idx on git_triggers (job_id);

            create table webhooks (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                job_id uuid not null,
                name text not null,
                slug text not null,
                signing_secret_ciphertext bytea not null,
                key_id text not null,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint webhooks_pkey primary key (id),
                constraint webhooks_job_id_fkey foreign key (project_id, job_id)
                    references jobs (project_id, id) on delete restrict,
                constraint webhooks_slug_key unique (slug)
            );
            create index webhooks_project_id_created_at_idx on webhooks (project_id, created_at, id);
            create index webhooks_job_id_idx on webhooks (job_id);

            -- Notifications ---------------------------------------------------------------------

            create table notifiers (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                name text not null,
                kind text not null default 'email',
                recipients text[] not null default '{}',
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint notifiers_pkey primary key (id),
                constraint notifiers_project_id_fkey foreign key (project_id)
                    references projects (id) on delete restrict,
                constraint notifiers_project_id_id_key unique (project_id, id),
                constraint notifiers_kind_check check (kind in ('email'))
            );
            create index notifiers_project_id_created_at_idx on notifiers (project_id, created_at, id);

            -- Sends matching activities (of one job, or of the whole project when job_id is
            -- null) to a notifier of the same project.
            create table notification_rules (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                notifier_id uuid not null,
                job_id uuid,
                activity_pattern text not null,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                archived_at timestamptz,
                constraint notification_rules_pkey primary key (id),
                constraint notification_rules_notifier_id_fkey foreign key (project_id, notifier_id)
                    references notifiers (project_id, id) on delete restrict,
                -- MATCH SIMPLE: checked only when job_id is set.
                constraint notification_rules_job_id_fkey foreign key (project_id, job_id)
                    references jobs (project_id, id) on delete restrict
            );
            create index notification_rules_project_id_created_at_idx
                on notification_rules (project_id, created_at, id);
            create index notification_rules_notifier_id_created_at_idx
                on notification_rules (notifier_id, created_at, id);
            create index notification_rules_job_id_idx on notification_rules (job_id)
                where job_id is not null;

            -- Operations: one run of a job ----------------------------------------------------------

            create table operations (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                job_id uuid not null,
                reason text not null,
                requested_by uuid,
                parameters jsonb not null default '{}',
                status text not null default 'queued',
                exit_status integer,
                time_limit_seconds integer not null,
                created_at timestamptz not null default now(),
                started_at timestamptz,
                finished_at timestamptz,
                canceled_at timestamptz,
                log_location text,
                updated_at timestamptz not null default now(),
                constraint operations_pkey primary key (id),
                constraint operations_job_id_fkey foreign key (project_id, job_id)
                    references jobs (project_id, id) on delete restrict,
                constraint operations_requested_by_fkey foreign key (requested_by)
                    references users (id) on delete restrict,
                constraint operations_reason_check check (
                    reason in ('user', 'schedule', 'webhook', 'git_trigger', 'notification', 'retry')),
                constraint operations_status_check check (
                    status in ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'canceled')),
                constraint operations_parameters_check check (jsonb_typeof(parameters) = 'object'),
                constraint operations_time_limit_seconds_check check (time_limit_seconds > 0)
            );
            create index operations_project_id_created_at_idx on operations (project_id, created_at, id);
            create index operations_job_id_created_at_idx on operations (job_id, created_at, id);
            create index operations_active_idx on operations (status, created_at)
                where status in ('queued', 'running');

            -- Activities: the project's history and the source of notifications ----------------

            create table activities (
                id bigserial not null,
                name text not null,
                payload jsonb not null default '{}',
                project_id uuid,
                organization_id uuid,
                actor_id uuid,
                occurred_at timestamptz not null default now(),
                constraint activities_pkey primary key (id),
                constraint activities_project_id_fkey foreign key (project_id)
                    references projects (id) on delete restrict,
                constraint activities_organization_id_fkey foreign key (organization_id)
                    references organizations (id) on delete restrict,
                constraint activities_actor_id_fkey foreign key (actor_id)
                    references users (id) on delete restrict
            );
            create index activities_project_id_idx on activities (project_id, id desc)
                where project_id is not null;
            create index activities_organization_id_idx on activities (organization_id, id desc)
                where organization_id is not null;

            -- Only small fields, so the payload stays far below NOTIFY's 8000-byte limit;
            -- listeners read the rest from the table.
            create function activities_notify() returns trigger
            language plpgsql as $$
            begin
                perform pg_notify('harrow_activities', json_build_object(
                    'id', new.id, 'name', new.name, 'project_id', new.project_id)::text);
                return null;
            end;
            $$;

            create trigger activities_notify after insert on activities
                for each row execute function activities_notify();

            -- Queue plumbing ----------------------------------------------------------------------

            -- Handlers record each queue job they finished here, in the transaction of
            -- their side effects, so a redelivered job is recognized and skipped.
            create table job_runs (
                job_id uuid not null,
                type text not null,
                finished_at timestamptz not null default now(),
                outcome text not null,
                constraint job_runs_pkey primary key (job_id)
            );

            -- Queue jobs written in the same transaction as the change that caused them,
            -- moved to the queue in seq order by the relay.
            create table outbox (
                id uuid not null,
                seq bigserial not null,
                queue text not null,
                type text not null,
                payload text not null,
                run_at timestamptz,
                unique_key text,
                max_attempts integer,
                created_at timestamptz not null default now(),
                -- Set when the relay cannot move the row (the queue refused it): it waits for an
                -- operator instead of blocking the rows behind it.
                failed_at timestamptz,
                last_error text,
                constraint outbox_pkey primary key (id),
                constraint outbox_seq_key unique (seq),
                constraint outbox_max_attempts_check check (max_attempts is null or max_attempts > 0)
            );

            create index outbox_waiting_idx on outbox (seq) where failed_at is null;

            create function outbox_notify() returns trigger
            language plpgsql as $$
            begin
                perform pg_notify('harrow_outbox', '');
                return null;
            end;
            $$;

            create trigger outbox_notify after insert on outbox
                for each statement execute function outbox_notify();
            """#)
}
