import JobContracts

extension GenerateKey {
    /// The job for a record that holds key pairs.
    public init(owner: KeyPairStore.Owner, replace: Bool? = nil) {
        switch owner {
        case .sshKey(let id): self.init(kind: .sshKey, id: id, replace: replace)
        case .secret(let id): self.init(kind: .secret, id: id, replace: replace)
        }
    }

    /// The record the job is for.
    public var owner: KeyPairStore.Owner {
        switch kind {
        case .sshKey: .sshKey(id)
        case .secret: .secret(id)
        }
    }
}
