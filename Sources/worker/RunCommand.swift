import ArgumentParser
import CommandSupport
import Foundation
import JobContracts
import Jobs
import Logging
import NIOCore
import NIOPosix
import OperationLogs
import Queue
import ServiceLifecycle
import Store
import UnixSignals
import WorkerPool

/// `worker run` (the default): runs jobs until SIGTERM or SIGINT.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run jobs from Redis queues (the default command).",
        discussion: """
            Reads the given queues with one blocking read, runs up to --concurrency jobs at once,
            and stops gracefully on SIGTERM or SIGINT. Any number of workers may run, on any
            number of machines, against the same Redis. With a database (DATABASE_URL), it
            refuses to start unless the database's migrations match this binary's (or --migrate
            applies them) and HARROW_SECRET_KEY is set.
            """)

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "Apply pending database migrations before starting.") var migrate = false

    @Option(
        help: """
            Queues to read: strict order (mail,keys) or weighted (mail:3,keys:1). Env: HARROW_QUEUES. Default: with a \
            database, every queue of the platform's jobs, then default; without one, default.
            """) var queues: String?

    @Option(help: "Most jobs running at once in this process. Env: HARROW_CONCURRENCY.") var concurrency: Int =
        Int(ProcessInfo.processInfo.environment["HARROW_CONCURRENCY"] ?? "") ?? 10

    @Option(
        help: """
            Jobs fetched ahead of free slots, waiting in the worker (heartbeated, handed back at \
            shutdown): auto (as many as the slots start within 10 ms at the pace jobs finish, handed \
            back when every slot stays busy for 1 s), or a fixed number (0: none). Env: HARROW_PREFETCH.
            """) var prefetch: String = ProcessInfo.processInfo.environment["HARROW_PREFETCH"] ?? "auto"

    @Option(help: "Per-queue limits on running jobs in this process, e.g. operations=4,mail=10.") var queueConcurrency: String?

    @Option(
        help: """
            Most RSA key generations at once in this process; further RSA generate-key jobs snooze (they give \
            their slot back and come back later). Env: HARROW_WORKER_RSA_CONCURRENCY.
            """) var rsaConcurrency: Int = Int(ProcessInfo.processInfo.environment["HARROW_WORKER_RSA_CONCURRENCY"] ?? "") ?? 1

    @Option(
        name: .customLong("redis-url"),
        help: "redis://[user:password@]host:port/db, unix:///path or redis+cluster://host:port[,host:port…]. Env: REDIS_URL.")
    var redisURL: String = ProcessInfo.processInfo.environment["REDIS_URL"] ?? "redis://127.0.0.1:6379/0"

    @Flag(
        help: """
            Wait until a replica has each job this worker enqueues (the outbox relay's) before its outbox row is \
            deleted (WAIT 1 1000): a failover then loses none of them. Env: HARROW_DURABLE_ENQUEUE=1.
            """)
    var durableEnqueue = ProcessInfo.processInfo.environment["HARROW_DURABLE_ENQUEUE"] == "1"

    @Option(help: "Seconds running jobs may take to finish after SIGTERM before they are cancelled.") var shutdownTimeout: Double = 20

    @Option(
        help: """
            Seconds cancelled jobs get to end after that (they are handed back). A job still running then stays \
            this worker's until it ends or the process is killed.
            """) var cancellationGrace: Double = 5

    @OptionGroup var logging: LoggingOptions

    @Option(help: "Seconds between heartbeats (liveness and refresh of running jobs).") var heartbeatInterval: Double = 5

    @Option(help: "Seconds without a heartbeat after which a worker counts as dead and its jobs are reclaimed.") var deadWorkerAfter:
        Double = 30

    @Flag(help: "Do not take part in the singleton loops (delayed-job promoter, reclaimer, outbox relay, lost-run sweeper).")
    var noMaintenance = false

    @Flag(help: "Do not fire schedules here (every worker with a database fires them by default; each fires once).")
    var noScheduler = false

    @Flag(
        help: """
            Do not queue polls of git repositories (every worker with a database does by default; any number may). \
            Env: HARROW_NO_POLLER=1.
            """) var noPoller = false

    /// `--no-poller`, or `HARROW_NO_POLLER` set to 1, true or yes.
    var runsPoller: Bool {
        !noPoller && !["1", "true", "yes"].contains(ProcessInfo.processInfo.environment["HARROW_NO_POLLER"]?.lowercased() ?? "")
    }

    @Flag(
        help: """
            Let webhook notifiers POST to private, loopback and link-local addresses (receivers on this machine or \
            the LAN); by default only public addresses are reached. Env: HARROW_WEBHOOK_ALLOW_PRIVATE=1.
            """) var webhookAllowPrivate = false

    /// `--webhook-allow-private`, or `HARROW_WEBHOOK_ALLOW_PRIVATE` set to 1, true or yes.
    var webhooksAllowPrivate: Bool {
        webhookAllowPrivate
            || ["1", "true", "yes"].contains(ProcessInfo.processInfo.environment["HARROW_WEBHOOK_ALLOW_PRIVATE"]?.lowercased() ?? "")
    }

    @Option(help: "The web app's address, for links in mails and commit statuses. Env: HARROW_PUBLIC_URL.")
    var publicURL = ProcessInfo.processInfo.environment["HARROW_PUBLIC_URL"] ?? "http://localhost:8080"

    @Option(help: "GitHub's API root; a GitHub Enterprise server's is https://HOST/api/v3. Env: GITHUB_API_URL.")
    var githubAPIURL = ProcessInfo.processInfo.environment["GITHUB_API_URL"] ?? "https://api.github.com"

    @Option(
        help: """
            The hosts whose repositories get commit statuses, comma-separated; by default the one GITHUB_API_URL serves \
            (api.github.com: github.com; https://HOST/api/v3: HOST). Env: HARROW_GITHUB_HOSTS.
            """)
    var githubHosts = ProcessInfo.processInfo.environment["HARROW_GITHUB_HOSTS"]

    @Option(help: "Requests per hour and GitHub token, shared by every worker. Env: HARROW_GITHUB_REQUESTS_PER_HOUR.")
    var githubRequestsPerHour = Int(ProcessInfo.processInfo.environment["HARROW_GITHUB_REQUESTS_PER_HOUR"] ?? "") ?? 5000

    @Option(
        help: """
            The mail server: smtp://HOST[:PORT] (STARTTLS when offered) or smtps://HOST[:PORT]. Without it \
            this worker does not send mail. Env: SMTP_URL; credentials in SMTP_USERNAME and SMTP_PASSWORD.
            """)
    var smtpURL = ProcessInfo.processInfo.environment["SMTP_URL"]

    @Option(help: "The sender of Harrow's mails, `Name <address>` or `address`. Env: MAIL_FROM.")
    var mailFrom = ProcessInfo.processInfo.environment["MAIL_FROM"] ?? "Harrow <harrow@localhost>"

    @Option(help: "Where operations get their workspaces. Env: HARROW_WORKSPACE_DIR.")
    var workspaceDir = ProcessInfo.processInfo.environment["HARROW_WORKSPACE_DIR"] ?? "/tmp/harrow/workspaces"

    @Option(
        help: """
            Where bare mirrors of the projects' repositories are kept between runs, hidden from scripts. Default: \
            `mirrors` next to the workspace directory. Env: HARROW_MIRROR_DIR.
            """) var mirrorDir = ProcessInfo.processInfo.environment["HARROW_MIRROR_DIR"]

    @Flag(help: "Keep the workspace of an operation that did not succeed, for a look at what it left.") var keepFailedWorkspaces = false

    @Option(
        help: """
            The account scripts run as when the worker runs as root; root only when named. Env: HARROW_RUN_AS.
            """) var runAs = ProcessInfo.processInfo.environment["HARROW_RUN_AS"] ?? "nobody"

    @Option(
        help: """
            auto (bubblewrap where it works here, else none with a warning), bwrap or none. Env: HARROW_SANDBOX.
            """) var sandbox = ProcessInfo.processInfo.environment["HARROW_SANDBOX"] ?? "auto"

    @Option(
        help: """
            A path scripts must not see in the sandbox (the worker's data, say); repeatable. The workspace and mirror \
            directories are always hidden. Env: HARROW_SANDBOX_HIDE (colon-separated).
            """) var sandboxHide: [String] = []

    @Option(help: "The most log text one operation keeps, in bytes; later output is dropped. Env: HARROW_LOG_CAP.")
    var logCap = Int(ProcessInfo.processInfo.environment["HARROW_LOG_CAP"] ?? "") ?? 64 << 20

    @Option(help: "Seconds a running operation's claim holds without renewal: a run whose worker died fails this long after.")
    var operationLease: Double = 30

    @Option(help: "Key prefix of every Redis key. Env: HARROW_KEY_PREFIX.") var keyPrefix: String =
        ProcessInfo.processInfo.environment["HARROW_KEY_PREFIX"] ?? "harrow"

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard prefetch == "auto" || (Int(prefetch).map { $0 >= 0 } ?? false) else {
            throw ValidationError("--prefetch must be auto or a number of jobs, 0 or more")
        }
        guard rsaConcurrency >= 1 else { throw ValidationError("--rsa-concurrency must be at least 1") }
        guard shutdownTimeout >= 0 else { throw ValidationError("--shutdown-timeout must not be negative") }
        guard cancellationGrace >= 0 else { throw ValidationError("--cancellation-grace must not be negative") }
        guard heartbeatInterval > 0, deadWorkerAfter > heartbeatInterval * 2 else {
            throw ValidationError("--dead-worker-after must be more than twice --heartbeat-interval")
        }
        guard URL(string: publicURL)?.scheme != nil else { throw ValidationError("--public-url must be an absolute URL") }
        guard let api = URL(string: githubAPIURL), api.scheme == "https" || api.scheme == "http", api.host != nil else {
            throw ValidationError("--github-api-url must be an http(s) URL")
        }
        if let githubHosts, Self.hosts(githubHosts).isEmpty { throw ValidationError("--github-hosts must name at least one host") }
        guard githubRequestsPerHour >= 1 else { throw ValidationError("--github-requests-per-hour must be at least 1") }
        guard ScriptSandbox.Mode(rawValue: sandbox) != nil else { throw ValidationError("--sandbox must be auto, bwrap or none") }
        guard logCap >= 1024 else { throw ValidationError("--log-cap must be at least 1024 bytes") }
        guard operationLease >= 2 else { throw ValidationError("--operation-lease must be at least 2 seconds") }
        guard !workspaceDir.isEmpty else { throw ValidationError("--workspace-dir must not be empty") }
        do {
            _ = try smtpConfiguration()
            _ = try Self.mailAddress(mailFrom)
        } catch { throw ValidationError("\(error)") }
        do {
            _ = try queueSelection()
            _ = try RedisConfiguration(url: redisURL)
        } catch { throw ValidationError("\(error)") }
    }

    func smtpConfiguration() throws -> SMTPConfiguration? {
        guard let smtpURL, !smtpURL.isEmpty else { return nil }
        let environment = ProcessInfo.processInfo.environment
        return try SMTPConfiguration(url: smtpURL, username: environment["SMTP_USERNAME"], password: environment["SMTP_PASSWORD"])
    }

    /// The host names of `--github-hosts`: comma-separated, blanks ignored.
    static func hosts(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// `Name <address>` or a bare address.
    static func mailAddress(_ text: String) throws -> MailAddress {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard text.hasSuffix(">"), let open = text.lastIndex(of: "<") else { return try MailAddress(text) }
        let name = text[..<open].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        return try MailAddress(
            String(text[text.index(after: open)..<text.index(before: text.endIndex)]), displayName: name.isEmpty ? nil : name)
    }

    /// The queues named by `--queues` or `HARROW_QUEUES`, if either is given.
    var explicitQueues: String? {
        if let queues { return queues }
        if let queues = ProcessInfo.processInfo.environment["HARROW_QUEUES"], !queues.isEmpty { return queues }
        return nil
    }

    /// `--queues`, else `HARROW_QUEUES`; else, with a database, every queue where a platform
    /// job's contract has a handler in this worker (`handled`), then `default`: one command runs
    /// the whole platform. A queue none of whose jobs this worker can run is left alone, so its
    /// jobs wait for a worker that can (rather than fail here as an unknown type). Without a
    /// database, `default`.
    func queueList(handled: [String]) throws -> String {
        if let explicitQueues { return explicitQueues }
        guard try database.configuration() != nil else { return "default" }
        return (PlatformContracts.queues(servedBy: handled) + ["default"]).joined(separator: ",")
    }

    func queueSelection(handled: [String] = PlatformContracts.all.map { $0.name }) throws -> QueueSelection {
        var selection = try QueueSelection(parsing: try queueList(handled: handled))
        if let queueConcurrency { try selection.applyLimits(parsing: queueConcurrency) }
        return selection
    }

    /// Whether this worker may read `operations`: by default it does; when `--queues` leaves the
    /// queue out, nothing of operations is set up (no sandbox probe that could refuse a start).
    var readsOperations: Bool {
        guard let explicitQueues else { return true }
        return (try? QueueSelection(parsing: explicitQueues))?.names.contains(RunOperation.queue) ?? true
    }

    /// The runner's options and the sandbox, probed on this host and said in the log.
    func operationRunning(logger: Logger) async throws -> (options: OperationRunner.Options, sandbox: ScriptSandbox) {
        let root = URL(fileURLWithPath: workspaceDir, isDirectory: true).standardizedFileURL
        let mirrors =
            mirrorDir.flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0, isDirectory: true).standardizedFileURL }
            ?? root.deletingLastPathComponent().appendingPathComponent("mirrors", isDirectory: true)
        // Only the worker reads mirrors (they hold every project's code); parents keep their modes.
        try FileManager.default.createDirectory(at: mirrors, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: mirrors.path)
        let hidden =
            [root.path, mirrors.path] + sandboxHide
            + (ProcessInfo.processInfo.environment["HARROW_SANDBOX_HIDE"] ?? "").split(separator: ":").map(String.init)
        let sandbox = try await ScriptSandbox.prepare(
            mode: ScriptSandbox.Mode(rawValue: self.sandbox) ?? .auto, runAs: runAs,
            hiddenPaths: hidden.map { URL(fileURLWithPath: $0).standardizedFileURL.path }, workspaceRoot: root, logger: logger)
        logger.info(
            "operations run here",
            metadata: [
                "sandbox": "\(sandbox.mode.rawValue)", "run_as": "\(sandbox.account.name)", "workspace_dir": "\(root.path)",
                "mirror_dir": "\(mirrors.path)",
                "hidden": "\(sandbox.hiddenPaths.joined(separator: ":"))",
            ])
        let lease = Duration.milliseconds(Int64(operationLease * 1000))
        return (
            OperationRunner.Options(
                workspaceRoot: root, mirrorRoot: mirrors, keepFailedWorkspaces: keepFailedWorkspaces, logCap: logCap, lease: lease,
                leaseRenewal: min(.seconds(5), lease / 4), publicURL: publicURL),
            sandbox
        )
    }

    func run() async throws {
        // Tasks run on the event loops that do the I/O: no hop between NIO's threads and the
        // concurrency pool for every reply. Handlers must not block either way (see README).
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        let logger = logging.bootstrap()
        let redis = RedisClient(configuration: try RedisConfiguration(url: redisURL), logger: logger)
        let jobQueue = JobQueue(redis: redis, options: JobQueue.Options(keyPrefix: keyPrefix))
        // The outbox relay's durable enqueues on a client of their own: a WAIT holds its
        // connection until a replica confirms (up to a second), and must not hold up the
        // fetches and acknowledgements that share the worker's.
        let durableRedis = durableEnqueue ? RedisClient(configuration: try RedisConfiguration(url: redisURL), logger: logger) : nil
        let relayQueue =
            durableRedis.map { JobQueue(redis: $0, options: JobQueue.Options(keyPrefix: keyPrefix, replicasToConfirm: 1)) } ?? jobQueue
        if durableEnqueue {
            // Without a replica every WAIT fails: the outbox would never drain, and once its
            // deduplication window passed, the same jobs would be written again.
            let lonely: [RedisConfiguration.Address]
            do { lonely = try await redis.mastersWithoutReplicas() } catch {
                logger.warning("could not check that every master has a replica for --durable-enqueue", metadata: ["error": "\(error)"])
                lonely = []
            }
            guard lonely.isEmpty else {
                throw ValidationError(
                    "--durable-enqueue needs a replica of every Redis master, and \(lonely.map(\.description).joined(separator: ", ")) has none"
                )
            }
        }
        let heartbeat = Duration.milliseconds(Int64(heartbeatInterval * 1000))
        // Checks each type's visibility timeout against this worker's heartbeat.
        var registry = JobRegistry(heartbeatInterval: heartbeat)
        try registry.registerDiagnosticJobs()
        let databaseConfiguration = try database.configuration()
        let client = databaseConfiguration.map { Database.makeClient($0, logger: logger) }
        if let client {
            // Checked before anything runs: a worker never starts without the key to the
            // secrets it will handle (nor, below, against the wrong schema).
            let keyring = try SecretKeyring(environment: ProcessInfo.processInfo.environment)
            let configuration = PlatformJobs.Configuration(
                publicURL: publicURL, gitHubAPIURL: githubAPIURL, gitHubRequestsPerHour: githubRequestsPerHour, keyPrefix: keyPrefix,
                smtp: try smtpConfiguration(), mailFrom: try Self.mailAddress(mailFrom),
                operations: readsOperations ? try await operationRunning(logger: logger) : nil, gitHubHosts: githubHosts.map(Self.hosts),
                rsaConcurrency: rsaConcurrency, webhooksAllowPrivate: webhooksAllowPrivate)
            try PlatformJobs(database: client, redis: redis, keyring: keyring, configuration: configuration, logger: logger)
                .register(in: &registry)
        }
        let selection = try queueSelection(handled: registry.typeNames)
        if client != nil {
            // Said at once: jobs of these types either fail here as an unknown type (a queue read
            // by --queues) or wait for another worker (a queue the default leaves alone).
            let read = explicitQueues == nil ? PlatformContracts.queues : selection.names
            for contract in PlatformContracts.withoutHandlers(onQueues: read, handled: registry.typeNames) {
                let consequence =
                    selection.names.contains(contract.queue)
                    ? "yet this worker reads their queue \(contract.queue): they fail here as an unknown type"
                    : "so this worker leaves their queue \(contract.queue) alone: they wait for a worker that has one"
                logger.error(
                    "no handler for \(contract.name) jobs, \(consequence)",
                    metadata: ["job_type": "\(contract.name)", "queue": "\(contract.queue)"])
            }
        }
        let worker = Worker(
            queue: jobQueue, registry: registry,
            options: Worker.Options(
                queues: selection, concurrency: concurrency, prefetch: prefetch == "auto" ? nil : Int(prefetch),
                shutdownTimeout: .milliseconds(Int64(shutdownTimeout * 1000)),
                cancellationGrace: .milliseconds(Int64(cancellationGrace * 1000)),
                heartbeatInterval: heartbeat,
                deadWorkerAfter: .milliseconds(Int64(deadWorkerAfter * 1000)), runsMaintenance: !noMaintenance), logger: logger)
        // The Redis client first: the group stops services in reverse order, so it closes last,
        // also when another service throws.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: redis)]
        if let durableRedis { services.append(.init(service: durableRedis)) }
        if let client {
            let migrator = Migrator(client: client, logger: logger)
            let ready = DatabaseReadiness(migrator: migrator, migrate: migrate)
            services.append(.init(service: client))
            services.append(.init(service: CheckedService(worker) { try await ready.wait() }))
            if !noScheduler {
                services.append(.init(service: CheckedService(Scheduler(client: client, logger: logger)) { try await ready.wait() }))
            }
            if !noMaintenance {
                let relay = OutboxRelay(
                    client: client, jobQueue: relayQueue, options: OutboxRelay.Options(holder: worker.options.workerID), logger: logger)
                services.append(.init(service: CheckedService(relay) { try await ready.wait() }))
                let sweeper = LostRunSweeper(
                    operations: OperationStore(client: client, logger: logger),
                    log: OperationLog(redis: redis, keyPrefix: keyPrefix),
                    archive: OperationLogArchive(client: client, logger: logger), jobQueue: jobQueue, holder: worker.options.workerID,
                    publicURL: publicURL, logger: logger)
                services.append(.init(service: CheckedService(sweeper) { try await ready.wait() }))
            }
            if runsPoller {
                services.append(.init(service: CheckedService(RepositoryPoller(client: client, logger: logger)) { try await ready.wait() }))
            }
        } else {
            if migrate { throw ValidationError("--migrate needs a database: set DATABASE_URL or --database-url") }
            services.append(.init(service: worker))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
