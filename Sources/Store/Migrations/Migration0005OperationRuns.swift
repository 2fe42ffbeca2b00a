extension Migration {
    /// What running operations needs: the runner's claim and lease on an operation, why it
    /// failed when no exit status says so, the commits it checked out, the operation a retry
    /// repeats, and the archived log; a name and pinned host keys per repository; an optional
    /// remote target per environment, with the host keys to pin and the `ssh` secret to log in
    /// with.
    static let operationRuns = Migration(
        version: 5, name: "operation_runs",
        sql: #"""
            alter table operations
                add column runner text,
                add column lease_expires_at timestamptz,
                add column failure_reason text,
                add column checkouts jsonb not null default '{}',
                add column retry_of uuid,
                add constraint operations_checkouts_check check (jsonb_typeof(checkouts) = 'object'),
                add constraint operations_failure_reason_check check (
                    failure_reason is null or failure_reason in (
                        'worker_lost', 'checkout_failed', 'setup_failed', 'script_failed', 'target_unreachable')),
                add constraint operations_running_check check (status <> 'running' or (runner is not null and lease_expires_at is not null)),
                add constraint operations_retry_of_fkey foreign key (retry_of) references operations (id) on delete restrict;
            -- The sweep for runs whose worker died: running operations by lease.
            create index operations_lease_expires_at_idx on operations (lease_expires_at) where status = 'running';

            -- The log of a finished operation in chunks of lines, each chunk a JSON array of
            -- {"id","stream","text","t"} objects (Postgres compresses large values in TOAST),
            -- found by the stream id of its last line, so a page after a cursor reads one chunk.
            create table operation_logs (
                operation_id uuid not null,
                chunk integer not null,
                last_ms bigint not null,
                last_seq bigint not null,
                line_count integer not null,
                lines text not null,
                constraint operation_logs_pkey primary key (operation_id, chunk),
                constraint operation_logs_operation_id_fkey foreign key (operation_id)
                    references operations (id) on delete cascade,
                constraint operation_logs_line_count_check check (line_count > 0)
            );

            alter table repositories
                add column name text,
                add column known_hosts text not null default '',
                add constraint repositories_known_hosts_check check (length(known_hosts) <= 65536);
            -- Existing repositories are named after their URL's last path component without
            -- ".git", numbered when two live ones of a project would share a name.
            with derived as (
                select id, project_id, archived_at, created_at,
                    coalesce(nullif(left(regexp_replace(regexp_replace(regexp_replace(
                        url, '(\.git)?/*$', ''), '^.*[/:]', ''), '[^A-Za-z0-9._-]', '-', 'g'), 90), ''), 'repository') as base
                from repositories
            ), numbered as (
                select id, case when base in ('.', '..') then 'repository' else base end as base,
                    row_number() over (
                        partition by project_id, case when base in ('.', '..') then 'repository' else base end, archived_at is null
                        order by created_at, id) as n
                from derived
            )
            update repositories r set name = case when numbered.n = 1 then numbered.base else numbered.base || '-' || numbered.n end
            from numbered where numbered.id = r.id;
            alter table repositories
                alter column name set not null,
                add constraint repositories_name_check check (name ~ '^[A-Za-z0-9._-]{1,100}$' and name not in ('.', '..'));
            create unique index repositories_name_key on repositories (project_id, name) where archived_at is null;

            alter table environments
                add column target text,
                add column target_secret_id uuid,
                add column known_hosts text not null default '',
                add constraint environments_target_check check (target is null or (target ~ '^ssh://' and length(target) <= 2048)),
                add constraint environments_target_secret_check check (target_secret_id is null or target is not null),
                add constraint environments_target_secret_id_fkey foreign key (target_secret_id) references secrets (id) on delete restrict,
                add constraint environments_known_hosts_check check (length(known_hosts) <= 65536);
            """#)
}
