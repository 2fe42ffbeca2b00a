extension Migration {
    /// The outbox carries a job's whole policy from its contract, so a job moved through it
    /// arrives in Redis with its own timeout and visibility timeout (`max_attempts` it carried
    /// already). Null in rows written before: the queue's defaults.
    static let outboxPolicy = Migration(
        version: 4, name: "outbox_policy",
        sql: #"""
            alter table outbox
                add column timeout_ms int8,
                add column visibility_timeout_ms int8,
                add constraint outbox_timeout_ms_check check (timeout_ms is null or timeout_ms > 0),
                add constraint outbox_visibility_timeout_ms_check check (visibility_timeout_ms is null or visibility_timeout_ms > 0);
            """#)
}
