extension Migration {
    /// Who created an organization, an SSH key and a secret, so per-user quotas can count them
    /// (see ``UserQuotas``): nullable, and set to null when the user is deleted (the record
    /// stays; it counts for nobody). Existing rows get their creator where the database knows
    /// it: the actor of the record's `.created` activity, else, for an organization, its first
    /// owner (its creator's membership is written with it). Partial indexes serve the counts.
    static let creators = Migration(
        version: 7, name: "creators",
        sql: #"""
            alter table organizations
                add column created_by uuid,
                add constraint organizations_created_by_fkey foreign key (created_by)
                    references users (id) on delete set null;
            alter table ssh_keys
                add column created_by uuid,
                add constraint ssh_keys_created_by_fkey foreign key (created_by)
                    references users (id) on delete set null;
            alter table secrets
                add column created_by uuid,
                add constraint secrets_created_by_fkey foreign key (created_by)
                    references users (id) on delete set null;

            update organizations o set created_by = coalesce(
                (select a.actor_id from activities a
                 where a.name = 'organization.created' and a.organization_id = o.id and a.actor_id is not null
                 order by a.id limit 1),
                (select m.user_id from organization_memberships m
                 where m.organization_id = o.id and m.role = 'owner'
                 order by m.created_at, m.user_id limit 1));

            update ssh_keys k set created_by = a.actor_id
            from (select distinct on (payload->>'ssh_key_id') payload->>'ssh_key_id' as record_id, actor_id
                  from activities where name = 'ssh_key.created' and actor_id is not null
                  order by payload->>'ssh_key_id', id) a
            where a.record_id = k.id::text;

            update secrets s set created_by = a.actor_id
            from (select distinct on (payload->>'secret_id') payload->>'secret_id' as record_id, actor_id
                  from activities where name = 'secret.created' and actor_id is not null
                  order by payload->>'secret_id', id) a
            where a.record_id = s.id::text;

            create index organizations_created_by_idx on organizations (created_by)
                where archived_at is null;
            create index ssh_keys_created_by_pending_idx on ssh_keys (created_by)
                where status = 'pending' and archived_at is null;
            create index secrets_created_by_pending_idx on secrets (created_by)
                where kind = 'ssh' and status = 'pending' and archived_at is null;
            create index operations_requested_by_active_idx on operations (requested_by)
                where status in ('queued', 'running');
            """#)
}
