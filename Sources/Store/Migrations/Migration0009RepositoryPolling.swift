extension Migration {
    /// Git polling: each repository's poll interval and when it is next due (`null`: not
    /// scheduled, as for a repository nobody watches), how long a refresh keeps it polled, and
    /// when its refs were last listed (`null`: never, so the first listing records them without
    /// reporting them as changes). A repository with live git triggers is scheduled at once.
    static let repositoryPolling = Migration(
        version: 9, name: "repository_polling",
        sql: #"""
            alter table repositories
                add column poll_interval_seconds integer not null default 60,
                add column next_poll_at timestamptz,
                add column polled_until timestamptz,
                add column refs_listed_at timestamptz,
                add constraint repositories_poll_interval_seconds_check check (poll_interval_seconds between 10 and 86400);
            create index repositories_next_poll_at_idx on repositories (next_poll_at)
                where archived_at is null and next_poll_at is not null;
            update repositories set refs_listed_at = checked_at where accessible and checked_at is not null;
            update repositories r set next_poll_at = now()
            where archived_at is null
              and exists (select 1 from git_triggers t where t.repository_id = r.id and t.archived_at is null);
            """#)
}
