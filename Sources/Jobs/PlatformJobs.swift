import Logging
import OperationLogs
import PostgresNIO
import Queue
import Store
import WorkerPool

/// Harrow's own job types and their handlers, for `worker` to register: `generate-key`,
/// `poll-repo`, `post-status`, `post-webhook`, `run-operation` (with its options) and
/// `send-mail` (with a mail server).
public struct PlatformJobs: Sendable {
    /// Where the handlers reach the outside world.
    public struct Configuration: Sendable {
        /// The web app's address, for links (`HARROW_PUBLIC_URL`).
        public var publicURL: String
        /// GitHub's API root (`GITHUB_API_URL`); a GitHub Enterprise server's is `https://host/api/v3`.
        public var gitHubAPIURL: String
        /// The hosts whose repositories get commit statuses (`HARROW_GITHUB_HOSTS`); `nil`:
        /// the one ``GitHubHosts/init(apiURL:)`` derives from ``gitHubAPIURL``.
        public var gitHubHosts: [String]?
        /// Requests per hour and GitHub token, shared by every worker (GitHub allows 5000).
        public var gitHubRequestsPerHour: Int
        /// The Redis key prefix, as the queue's.
        public var keyPrefix: String
        /// The mail server (`SMTP_URL`, `SMTP_USERNAME`, `SMTP_PASSWORD`); without one, `send-mail`
        /// is not registered: such a worker should not read `mail` (give it `--queues`), so that
        /// mails wait in their queue for a worker that has one.
        public var smtp: SMTPConfiguration?
        /// The sender of every mail (`MAIL_FROM`).
        public var mailFrom: MailAddress?
        /// How operations run here, and the sandbox prepared for them; without them,
        /// `run-operation` is not registered.
        public var operations: (options: OperationRunner.Options, sandbox: ScriptSandbox)?
        /// The most RSA key generations at once in this process (`--rsa-concurrency`, at least
        /// 1); surplus `generate-key` jobs for RSA keys snooze.
        public var rsaConcurrency: Int
        /// Whether webhook notifiers may POST to private, loopback and link-local addresses
        /// (`--webhook-allow-private`).
        public var webhooksAllowPrivate: Bool

        public init(
            publicURL: String = "http://localhost:8080", gitHubAPIURL: String = "https://api.github.com",
            gitHubRequestsPerHour: Int = 5000, keyPrefix: String = "harrow", smtp: SMTPConfiguration? = nil,
            mailFrom: MailAddress? = nil, operations: (options: OperationRunner.Options, sandbox: ScriptSandbox)? = nil,
            gitHubHosts: [String]? = nil, rsaConcurrency: Int = 1, webhooksAllowPrivate: Bool = false
        ) {
            self.publicURL = publicURL
            self.gitHubAPIURL = gitHubAPIURL
            self.gitHubHosts = gitHubHosts
            self.gitHubRequestsPerHour = gitHubRequestsPerHour
            self.keyPrefix = keyPrefix
            self.smtp = smtp
            self.mailFrom = mailFrom
            self.operations = operations
            self.rsaConcurrency = max(1, rsaConcurrency)
            self.webhooksAllowPrivate = webhooksAllowPrivate
        }
    }

    let database: PostgresClient
    let redis: RedisClient
    let keyring: SecretKeyring
    let configuration: Configuration
    let logger: Logger

    public init(database: PostgresClient, redis: RedisClient, keyring: SecretKeyring, configuration: Configuration, logger: Logger) {
        self.database = database
        self.redis = redis
        self.keyring = keyring
        self.configuration = configuration
        self.logger = logger
    }

    /// Registers every platform job type's handler.
    public func register(in registry: inout JobRegistry) throws {
        try KeyGenerator(
            pairs: KeyPairStore(client: database, keyring: keyring, logger: logger), database: database,
            rsaLimiter: RSAGenerationLimiter(limit: configuration.rsaConcurrency)
        ).register(in: &registry)
        try StatusReporter(
            database: database, tokens: GitHubTokenStore(client: database, keyring: keyring, logger: logger),
            limiter: GitHubRateLimiter(redis: redis, keyPrefix: configuration.keyPrefix, perHour: configuration.gitHubRequestsPerHour),
            client: GitHubStatusClient(apiURL: configuration.gitHubAPIURL),
            hosts: configuration.gitHubHosts.map(GitHubHosts.init) ?? GitHubHosts(apiURL: configuration.gitHubAPIURL),
            publicURL: configuration.publicURL, logger: logger
        ).register(in: &registry)
        try RepositoryRefPoller(
            plans: RunPlanStore(client: database, keyring: keyring, logger: logger),
            polls: RepositoryPollStore(client: database, logger: logger)
        ).register(in: &registry)
        try WebhookPoster(
            secrets: WebhookNotifierSecrets(client: database, keyring: keyring, logger: logger),
            policy: WebhookAddressPolicy(allowsPrivate: configuration.webhooksAllowPrivate), database: database
        ).register(in: &registry)
        if let (options, sandbox) = configuration.operations {
            try OperationRunner(
                operations: OperationStore(client: database, logger: logger),
                plans: RunPlanStore(client: database, keyring: keyring, logger: logger),
                log: OperationLog(redis: redis, keyPrefix: configuration.keyPrefix),
                archive: OperationLogArchive(client: database, logger: logger), sandbox: sandbox, options: options
            ).register(in: &registry)
        }
        if let smtp = configuration.smtp {
            let from = try configuration.mailFrom ?? MailAddress("harrow@localhost", displayName: "Harrow")
            let links = MailLinks(
                signer: LinkSigner(keyring: keyring), users: UserStore(client: database, logger: logger), publicURL: configuration.publicURL
            )
            try MailSender(
                client: SMTPClient(configuration: smtp, threadPool: SMTPClient.mailThreadPool), from: from, database: database, links: links
            ).register(in: &registry)
        }
    }
}
