extension Migration {
    /// A project's GitHub token, for posting commit statuses: sealed with the keyring like
    /// every other secret.
    static let gitHubTokens = Migration(
        version: 3, name: "github_tokens",
        sql: #"""
            create table github_tokens (
                id uuid not null default gen_random_uuid(),
                project_id uuid not null,
                ciphertext bytea not null,
                key_id text not null,
                created_at timestamptz not null default now(),
                updated_at timestamptz not null default now(),
                constraint github_tokens_pkey primary key (id),
                constraint github_tokens_project_id_key unique (project_id),
                constraint github_tokens_project_id_fkey foreign key (project_id)
                    references projects (id) on delete restrict
            );
            """#)
}
