extension Migration {
    /// Notifiers of kind `webhook`: a matching rule POSTs the activity, signed, to `url`. The
    /// signing secret is sealed like the incoming webhooks' (context `notifiers:<id>`).
    static let webhookNotifiers = Migration(
        version: 11, name: "webhook_notifiers",
        sql: #"""
            alter table notifiers
                drop constraint notifiers_kind_check,
                add column url text,
                add column signing_secret_ciphertext bytea,
                add column key_id text,
                add constraint notifiers_kind_check check (kind in ('email', 'job', 'webhook')),
                add constraint notifiers_webhook_check check (
                    (kind = 'webhook') = (url is not null)
                    and (kind = 'webhook') = (signing_secret_ciphertext is not null)
                    and (signing_secret_ciphertext is null) = (key_id is null));
            """#)
}
