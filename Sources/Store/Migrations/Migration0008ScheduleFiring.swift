extension Migration {
    /// What the scheduler needs to fire each schedule exactly once: when it is due next, what it
    /// does about fire times it missed and about a previous run still going, and an index of
    /// the due schedules. One-time schedules are due at their time; a recurring schedule's next
    /// time needs its cron spec read in its time zone, which the scheduler computes for rows
    /// that have none (those that existed before this migration).
    static let scheduleFiring = Migration(
        version: 8, name: "schedule_firing",
        sql: #"""
            alter table schedules
                add column next_fire_at timestamptz,
                add column catch_up text not null default 'once',
                add column overlap text not null default 'allow',
                add constraint schedules_catch_up_check check (catch_up in ('none', 'once')),
                add constraint schedules_overlap_check check (overlap in ('allow', 'skip'));
            -- Nothing fired schedules before: a one-time schedule whose time has passed did not
            -- run, and running it now, maybe months late, is not what its owner asked for.
            update schedules set disabled_at = now(), disabled_reason = 'its time passed before schedules fired', updated_at = now()
                where run_at is not null and run_at < now() and disabled_at is null and archived_at is null;
            update schedules set next_fire_at = run_at
                where run_at is not null and disabled_at is null and archived_at is null;
            create index schedules_due_idx on schedules (next_fire_at)
                where disabled_at is null and archived_at is null;
            create index schedules_unscheduled_idx on schedules (id)
                where next_fire_at is null and cron is not null and disabled_at is null and archived_at is null;
            create index operations_job_id_unfinished_idx on operations (job_id)
                where status in ('queued', 'running');
            """#)
}
