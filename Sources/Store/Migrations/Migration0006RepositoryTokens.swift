extension Migration {
    /// An HTTPS access token per repository, for checkouts of private repositories over HTTPS:
    /// sealed with the keyring like every other secret, bound to the repository's row.
    static let repositoryTokens = Migration(
        version: 6, name: "repository_tokens",
        sql: #"""
            alter table repositories
                add column token_ciphertext bytea,
                add column token_key_id text,
                add constraint repositories_token_check check ((token_ciphertext is null) = (token_key_id is null));
            """#)
}
