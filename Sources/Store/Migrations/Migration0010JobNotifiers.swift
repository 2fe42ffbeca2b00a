extension Migration {
    /// Notifiers of kind `job`: a matching rule runs another job of the project (a chained
    /// job) instead of sending mail.
    static let jobNotifiers = Migration(
        version: 10, name: "job_notifiers",
        sql: #"""
            alter table notifiers
                drop constraint notifiers_kind_check,
                add column job_id uuid,
                add constraint notifiers_kind_check check (kind in ('email', 'job')),
                add constraint notifiers_job_check check ((kind = 'job') = (job_id is not null)),
                add constraint notifiers_job_id_fkey foreign key (project_id, job_id)
                    references jobs (project_id, id) on delete restrict;
            create index notifiers_job_id_idx on notifiers (job_id) where job_id is not null;
            -- Counting the operations of a chain, to stop one that fans out.
            create index operations_chain_root_idx on operations ((parameters->>'chain_root_id'))
                where reason = 'notification';
            """#)
}
