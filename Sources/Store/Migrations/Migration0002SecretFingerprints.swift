extension Migration {
    /// An `ssh` secret's generated key pair is recorded with its SHA256 fingerprint, like an SSH
    /// key's.
    static let secretFingerprints = Migration(
        version: 2, name: "secret_fingerprints",
        sql: #"""
            alter table secrets add column fingerprint text;
            alter table secrets add constraint secrets_fingerprint_check check (fingerprint is null or kind = 'ssh');
            """#)
}
