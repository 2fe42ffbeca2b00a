import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Everything a worker needs to run an operation, read in one transaction and decrypted: the
/// task's script, the environment with its secrets, the project's repositories with their
/// deploy keys. Only the worker that runs the operation reads a plan; it never reaches a log
/// or an API response.
public struct RunPlanStore: Sendable {
    let client: PostgresClient
    let keyring: SecretKeyring
    let logger: Logger

    public init(client: PostgresClient, keyring: SecretKeyring, logger: Logger) {
        self.client = client
        self.keyring = keyring
        self.logger = logger
    }

    /// The plan of `operation` as its records are now: the task's current script, the
    /// environment's current variables and secrets, the project's live repositories.
    public func plan(for operation: Operation) async throws -> RunPlan {
        let stored = try await client.read { connection in
            let definition = try await connection.first(
                """
                SELECT j.name, p.name, t.script, j.environment_id FROM jobs j
                JOIN tasks t ON t.id = j.task_id JOIN projects p ON p.id = j.project_id
                WHERE j.id = \(operation.jobID) AND j.project_id = \(operation.projectID)
                """, logger: logger, { try $0.decode((String, String, String, UUID).self) })
            guard let definition else { throw StoreError.notFound("job") }
            let environment = try await connection.first(
                "SELECT \(unescaped: EnvironmentStore.columns) FROM environments WHERE id = \(definition.3)", logger: logger,
                { EnvironmentStore.record(try $0.decode(EnvironmentStore.Row.self)).item })
            guard let environment else { throw StoreError.notFound("environment") }
            let secrets = try await connection.all(
                """
                SELECT id, name, kind, public_key, ciphertext, key_id FROM secrets
                WHERE environment_id = \(environment.id) AND archived_at IS NULL AND status = 'present'
                ORDER BY created_at, id
                """, logger: logger, { try $0.decode((UUID, String, String, String?, ByteBuffer?, String?).self) })
            let repositories = try await connection.all(
                """
                SELECT \(unescaped: Self.sourceColumns)
                FROM repositories r LEFT JOIN ssh_keys k ON k.id = r.credential_id AND k.status = 'present'
                WHERE r.project_id = \(operation.projectID) AND r.archived_at IS NULL
                ORDER BY r.created_at, r.id
                """, logger: logger, { try $0.decode(SourceRow.self) })
            return (definition, environment, secrets, repositories)
        }
        let (definition, environment, secrets, repositories) = stored
        var variables: [String: String] = [:]
        var keys: [RunPlan.KeyMaterial] = []
        var targetKey: RunPlan.KeyMaterial?
        for (id, name, kind, publicKey, ciphertext, keyID) in secrets {
            guard let ciphertext, let keyID else { continue }
            let value = try keyring.open(
                SecretKeyring.Sealed(ciphertext: Array(ciphertext.readableBytesView), keyID: keyID),
                context: SecretRotation.context(table: "secrets", id: id))
            switch kind {
            case "env": variables[name] = String(decoding: value, as: UTF8.self)
            default:
                let key = RunPlan.KeyMaterial(name: name, privateKey: String(decoding: value, as: UTF8.self), publicKey: publicKey ?? "")
                keys.append(key)
                if id == environment.targetSecretID { targetKey = key }
            }
        }
        let sources = try repositories.map { try source($0) }
        return RunPlan(
            operation: operation, projectName: definition.1, jobName: definition.0, script: definition.2, environment: environment,
            secretVariables: variables, sshKeys: keys, targetKey: targetKey, repositories: sources)
    }

    /// The live repository `id` with its deploy key and token decrypted, as checkouts read it:
    /// what a poll lists refs with. `nil` when it is archived or gone.
    public func source(ofRepository id: UUID) async throws -> RunPlan.Source? {
        let row = try await client.read { connection in
            try await connection.first(
                """
                SELECT \(unescaped: Self.sourceColumns)
                FROM repositories r LEFT JOIN ssh_keys k ON k.id = r.credential_id AND k.status = 'present'
                WHERE r.id = \(id) AND r.archived_at IS NULL
                """, logger: logger, { try $0.decode(SourceRow.self) })
        }
        return try row.map(source)
    }

    static let sourceColumns = """
        r.id, r.name, r.url, r.known_hosts, k.id, k.public_key, k.private_key_ciphertext, k.key_id, r.token_ciphertext, r.token_key_id
        """
    typealias SourceRow = (UUID, String, String, String, UUID?, String?, ByteBuffer?, String?, ByteBuffer?, String?)

    /// A repository's row with its deploy key and token opened.
    private func source(_ row: SourceRow) throws -> RunPlan.Source {
        let (id, name, url, knownHosts, keyID, publicKey, ciphertext, sealedWith, tokenCiphertext, tokenSealedWith) = row
        var deployKey: RunPlan.KeyMaterial?
        if let keyID, let ciphertext, let sealedWith {
            let value = try keyring.open(
                SecretKeyring.Sealed(ciphertext: Array(ciphertext.readableBytesView), keyID: sealedWith),
                context: SecretRotation.context(table: "ssh_keys", id: keyID))
            deployKey = RunPlan.KeyMaterial(
                name: "deploy key of \(name)", privateKey: String(decoding: value, as: UTF8.self), publicKey: publicKey ?? "")
        }
        var token: String?
        if let tokenCiphertext, let tokenSealedWith {
            token = String(
                decoding: try keyring.open(
                    SecretKeyring.Sealed(ciphertext: Array(tokenCiphertext.readableBytesView), keyID: tokenSealedWith),
                    context: SecretRotation.context(table: "repositories", id: id)), as: UTF8.self)
        }
        return RunPlan.Source(id: id, name: name, url: url, knownHosts: knownHosts, deployKey: deployKey, token: token)
    }
}

/// What running one operation takes, secrets decrypted. Never logged, never encoded.
public struct RunPlan: Sendable {
    /// An SSH key pair: a deploy key, or an environment's `ssh` secret.
    public struct KeyMaterial: Sendable, Hashable {
        public var name: String
        /// OpenSSH private key text.
        public var privateKey: String
        /// The OpenSSH public key line.
        public var publicKey: String

        public init(name: String, privateKey: String, publicKey: String) {
            self.name = name
            self.privateKey = privateKey
            self.publicKey = publicKey
        }
    }

    /// A repository to check out into `repositories/<name>`.
    public struct Source: Sendable, Hashable {
        public var id: UUID
        public var name: String
        public var url: String
        public var knownHosts: String
        /// Its deploy key, once generated: SSH URLs authenticate with it.
        public var deployKey: KeyMaterial?
        /// Its HTTPS access token, if set: HTTP(S) URLs authenticate with it.
        public var token: String?

        public init(id: UUID, name: String, url: String, knownHosts: String, deployKey: KeyMaterial?, token: String? = nil) {
            self.id = id
            self.name = name
            self.url = url
            self.knownHosts = knownHosts
            self.deployKey = deployKey
            self.token = token
        }
    }

    public var operation: Operation
    public var projectName: String
    public var jobName: String
    public var script: String
    public var environment: Environment
    /// The environment's `env` secrets by name.
    public var secretVariables: [String: String]
    /// The environment's `ssh` secrets.
    public var sshKeys: [KeyMaterial]
    /// The `ssh` secret that logs in to the environment's target.
    public var targetKey: KeyMaterial?
    public var repositories: [Source]

    public init(
        operation: Operation, projectName: String, jobName: String, script: String, environment: Environment,
        secretVariables: [String: String] = [:], sshKeys: [KeyMaterial] = [], targetKey: KeyMaterial? = nil, repositories: [Source] = []
    ) {
        self.operation = operation
        self.projectName = projectName
        self.jobName = jobName
        self.script = script
        self.environment = environment
        self.secretVariables = secretVariables
        self.sshKeys = sshKeys
        self.targetKey = targetKey
        self.repositories = repositories
    }

    /// Every secret value a log line must not show: the `env` secrets' values, the repository
    /// tokens, and each line
    /// of every private key (a key printed whole or in part is masked line by line).
    public var secretValues: [String] {
        var values = Array(secretVariables.values) + repositories.compactMap(\.token)
        // The log is masked line by line: a value of several lines is masked line by line too.
        for value in secretVariables.values where value.contains(where: \.isNewline) {
            values.append(contentsOf: value.split(whereSeparator: \.isNewline).map(String.init))
        }
        for key in sshKeys + repositories.compactMap(\.deployKey) {
            // The armour lines (`-----BEGIN …-----`) are no secret.
            values.append(
                contentsOf: key.privateKey.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.hasPrefix("-----") })
        }
        return values
    }
}
