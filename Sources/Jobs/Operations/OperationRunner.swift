import Foundation
import JobContracts
import Logging
import NIOCore
import NIOPosix
import OperationLogs
import Store
import WorkerPool

/// Runs `run-operation` jobs: claims the operation once, builds its workspace, runs the task's
/// script under the sandbox with a clean environment, streams its log, enforces its time limit,
/// honours cancellation, and records the outcome with everything it causes.
///
/// A redelivered job never runs a script twice: it finds the operation claimed, and either
/// leaves it to its live runner or fails it as `worker_lost`. Failures before the script
/// starts (the database away, say) give the operation back and retry with the contract's
/// backoff; the last attempt fails it instead.
public struct OperationRunner: Sendable {
    /// How operations run on this worker.
    public struct Options: Sendable {
        /// Where workspaces are made (`--workspace-dir`).
        public var workspaceRoot: URL
        /// Where the bare mirrors of repositories live (`--mirror-dir`), shared by runs.
        public var mirrorRoot: URL
        /// Keep the workspace of an operation that did not succeed (`--keep-failed-workspaces`).
        public var keepFailedWorkspaces: Bool
        /// The most log text an operation keeps (`--log-cap`); later output is dropped.
        public var logCap: Int
        /// How long a claim holds without renewal: a run whose worker died is failed as
        /// `worker_lost` this long after its last renewal.
        public var lease: Duration
        /// How often a running operation's lease is renewed.
        public var leaseRenewal: Duration
        /// How often the runner looks for a cancel request.
        public var cancelCheck: Duration
        /// Between SIGTERM and SIGKILL when the time limit is up.
        public var timeLimitGrace: Duration
        /// Between SIGTERM and SIGKILL on cancel.
        public var cancelGrace: Duration
        /// The web app's address, for links in mails.
        public var publicURL: String

        public init(
            workspaceRoot: URL, mirrorRoot: URL? = nil, keepFailedWorkspaces: Bool = false, logCap: Int = 64 << 20,
            lease: Duration = .seconds(30),
            leaseRenewal: Duration = .seconds(5), cancelCheck: Duration = .milliseconds(500), timeLimitGrace: Duration = .seconds(10),
            cancelGrace: Duration = .seconds(3), publicURL: String = "http://localhost:8080"
        ) {
            self.workspaceRoot = workspaceRoot
            self.mirrorRoot = mirrorRoot ?? workspaceRoot.deletingLastPathComponent().appendingPathComponent("mirrors")
            self.keepFailedWorkspaces = keepFailedWorkspaces
            self.logCap = logCap
            self.lease = lease
            self.leaseRenewal = leaseRenewal
            self.cancelCheck = cancelCheck
            self.timeLimitGrace = timeLimitGrace
            self.cancelGrace = cancelGrace
            self.publicURL = publicURL
        }
    }

    let operations: OperationStore
    let plans: RunPlanStore
    let log: OperationLog
    let closer: LostRunCloser
    let sandbox: ScriptSandbox
    let options: Options

    public init(
        operations: OperationStore, plans: RunPlanStore, log: OperationLog, archive: OperationLogArchive, sandbox: ScriptSandbox,
        options: Options
    ) {
        self.operations = operations
        self.plans = plans
        self.log = log
        closer = LostRunCloser(log: log, archive: archive)
        self.sandbox = sandbox
        self.options = options
    }

    /// Registers the handler for ``RunOperation``.
    public func register(in registry: inout JobRegistry) throws {
        try registry.register(RunOperation.self) { job, context in try await run(job, context: context) }
    }

    func run(_ job: RunOperation, context: JobContext) async throws {
        let logger = context.logger
        let claim = try await operations.claim(
            job.operationID, runner: context.workerID, lease: options.lease, publicURL: options.publicURL)
        switch claim {
        case .heldElsewhere(let runner):
            logger.info("run-operation: the operation is running on \(runner); nothing to do here")
        case .over(let operation):
            logger.info("run-operation: the operation is \(operation.status.rawValue); nothing to run")
        case .lost(let operation):
            logger.warning(
                "run-operation: the operation's runner stopped renewing its lease; it failed as worker_lost and is not run again",
                metadata: ["runner": "\(operation.runner ?? "")"])
            await closer.close(operation, logger: logger)
        case .claimed(let operation):
            try await execute(operation, context: context)
        }
    }

    /// Runs a claimed operation to its end and records the outcome.
    private func execute(_ operation: Store.Operation, context: JobContext) async throws {
        let logger = context.logger
        let plan: RunPlan
        do {
            plan = try await plans.plan(for: operation)
        } catch {
            try await giveBack(operation, because: error, lines: [], context: context)
            return
        }
        let writer = OperationLogWriter(
            operation: operation.id, log: log, masker: SecretMasker(plan.secretValues), cap: options.logCap,
            after: (try? await log.lastID(operation.id)) ?? "0", logger: logger)
        let (end, workspace) = await withTaskGroup(of: Void.self) { group in
            group.addTask { await writer.run() }
            for name in ScriptEnvironment.refusedNames(in: plan) {
                await writer.note(
                    "[harrow] \(name) is left out of the script's environment: \(EnvironmentStore.refusedVariableName(name) ?? "")")
            }
            let result = await perform(plan, writer: writer, context: context)
            // Given back for a retry, the operation goes on: its live log must not say it ended.
            var givenBack = false
            if case .retryLater = result.0, !context.isLastAttempt { givenBack = true }
            _ = await writer.finish(endingLog: !givenBack)
            return result
        }
        let lines = await writer.lines.map { OperationLogArchive.Line(id: $0.id, stream: $0.stream, text: $0.text, t: $0.t) }
        var outcome: OperationStore.Outcome
        switch end {
        case .leaseLost:
            logger.warning("run-operation: this worker lost its claim on the operation; another worker recorded it as worker_lost")
            await workspace?.remove(using: sandbox)
            return
        case .retryLater(let error, let failure):
            await workspace?.remove(using: sandbox)
            guard context.isLastAttempt else {
                _ = try await operations.release(operation.id, runner: operation.runner ?? "")
                throw error
            }
            outcome = failure
            outcome.logTail = await writer.tail
            _ = try await record(operation, outcome: outcome, lines: lines, logger: logger)
            throw JobFailure.permanent("run-operation: \(error)")
        case .finished(let finished):
            outcome = finished
        }
        outcome.logTail = outcome.status == .succeeded ? [] : await writer.tail
        let finished = try await record(operation, outcome: outcome, lines: lines, logger: logger)
        if let workspace {
            if finished?.status != .succeeded && options.keepFailedWorkspaces {
                logger.info("run-operation: the workspace is kept", metadata: ["workspace": "\(workspace.path)"])
            } else {
                await workspace.remove(using: sandbox)
            }
        }
    }

    /// How a run ended before its outcome is recorded.
    private enum RunEnd {
        /// The script ran (or set-up failed for good): record this.
        case finished(OperationStore.Outcome)
        /// Another worker recorded the operation as `worker_lost` meanwhile.
        case leaseLost
        /// Infrastructure away before the script started (a git host, a target): give the
        /// operation back so the job's retry runs it; on the last attempt record `failure`.
        case retryLater(any Error, failure: OperationStore.Outcome)
    }

    /// Sets up and runs the script, here or on the environment's target.
    private func perform(_ plan: RunPlan, writer: OperationLogWriter, context: JobContext) async -> (RunEnd, OperationWorkspace?) {
        if let target = plan.environment.target {
            return (await performRemotely(plan, target: target, writer: writer, context: context), nil)
        }
        let operation = plan.operation
        let workspace: OperationWorkspace
        do {
            workspace = try await OperationWorkspace.create(
                root: options.workspaceRoot, operation: operation.id, plan: plan, sandbox: sandbox)
        } catch {
            await writer.note("[harrow] the workspace could not be set up: \(error)")
            return (.finished(OperationStore.Outcome(status: .failed, failureReason: .setupFailed)), nil)
        }
        let control = RunControl()
        var checkouts: [String: String] = [:]
        do {
            let checkout = RepositoryCheckouts(mirrors: MirrorCache(root: options.mirrorRoot))
            checkouts = try await holdingClaim(operation, control: control, writer: writer, logger: context.logger) {
                try await checkout.checkOut(plan, into: workspace, writer: writer)
            }
        } catch {
            if await control.reason != nil {
                return (await Self.end(of: nil, exitedZero: false, control: control, checkouts: checkouts), workspace)
            }
            return (await Self.checkoutFailure(error, writer: writer), workspace)
        }
        do {
            try await NIOThreadPool.singleton.runIfActive { try workspace.handOver() }
        } catch {
            await writer.note("[harrow] the workspace could not be handed to the script's account: \(error)")
            return (.finished(OperationStore.Outcome(status: .failed, failureReason: .setupFailed, checkouts: checkouts)), workspace)
        }
        let process: LocalProcess
        do {
            let environment = ScriptEnvironment.variables(
                for: plan, workspace: workspace.path, home: workspace.home.path, sshConfig: workspace.sshConfig?.path)
            let command = sandbox.wrap(ScriptEnvironment.command(for: plan.script, at: workspace.script.path), workspace: workspace.path)
            process = try await LocalProcess.launch(command, environment: environment, directory: workspace.path)
        } catch {
            await writer.note("[harrow] the script could not be started: \(error)")
            return (.finished(OperationStore.Outcome(status: .failed, failureReason: .setupFailed, checkouts: checkouts)), workspace)
        }
        let termination = await supervise(
            operation, control: control, writer: writer, logger: context.logger,
            signal: { process.signalGroup($0 == .kill ? SIGKILL : SIGTERM) }
        ) {
            await process.readOutput { stream, buffer in await writer.write(stream, buffer) }
        }
        if await control.reason == nil, case .signaled(let signal) = termination {
            await writer.note("[harrow] the script was ended by signal \(signal)")
        }
        let end = await Self.end(
            of: termination.exitStatus, exitedZero: termination == .exited(0), control: control, checkouts: checkouts)
        return (end, workspace)
    }

    /// Runs the script on the environment's target over SSH: same environment (with the
    /// login's home and the run's directory there), time limit and cancel. Repositories are not
    /// checked out for it: the target fetches what it needs with its own keys.
    private func performRemotely(_ plan: RunPlan, target address: String, writer: OperationLogWriter, context: JobContext) async -> RunEnd {
        let unreachable = OperationStore.Outcome(status: .failed, failureReason: .targetUnreachable)
        let executor: RemoteExecutor
        do {
            guard let key = plan.targetKey else {
                await writer.note("[harrow] the environment names a target but no ssh secret to log in with")
                return .finished(OperationStore.Outcome(status: .failed, failureReason: .setupFailed))
            }
            executor = RemoteExecutor(
                target: try SSHTarget(address), privateKey: key.privateKey, knownHosts: try KnownHosts(plan.environment.knownHosts))
        } catch {
            await writer.note("[harrow] the environment's target cannot be used: \(error)")
            return .finished(OperationStore.Outcome(status: .failed, failureReason: .setupFailed))
        }
        await writer.note("[harrow] running on \(executor.target)")
        let control = RunControl()
        let result: Result<RemoteExit, any Error> = await supervise(
            plan.operation, control: control, writer: writer, logger: context.logger,
            signal: { executor.terminate(signal: $0) }
        ) {
            do {
                return .success(
                    try await executor.run(
                        script: plan.script, environment: ScriptEnvironment.variables(for: plan, workspace: nil, home: nil),
                        homeVariable: "HOME", workingDirectoryVariable: "HARROW_WORKSPACE"
                    ) { output in
                        switch output {
                        case .stdout(let bytes): await writer.write(.stdout, ByteBuffer(bytes: bytes))
                        case .stderr(let bytes): await writer.write(.stderr, ByteBuffer(bytes: bytes))
                        }
                    })
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(.exited(let code)):
            return await Self.end(of: Int(code), exitedZero: code == 0, control: control, checkouts: [:])
        case .success(.signaled(let name)):
            if await control.reason == nil { await writer.note("[harrow] the script was ended by signal \(name)") }
            return await Self.end(of: RemoteExit.signaled(name).exitStatus, exitedZero: false, control: control, checkouts: [:])
        case .failure(let error as RemoteExecutionError) where error.code == .terminated:
            // Stopped (canceled, out of time) before the script started.
            return await Self.end(of: nil, exitedZero: false, control: control, checkouts: [:])
        case .failure(let error as RemoteExecutionError) where error.code == .unreachable:
            await writer.note("[harrow] \(executor.target) is unreachable: \(error.message); the operation is tried again later")
            return .retryLater(error, failure: unreachable)
        case .failure(let error as RemoteExecutionError)
        where error.code == .hostKeyRejected || error.code == .authenticationFailed:
            await writer.note("[harrow] \(executor.target) refused: \(error.message)")
            return .finished(unreachable)
        case .failure(let error):
            // The connection broke (or never carried the run): the script's fate is unknown.
            await writer.note("[harrow] the run on \(executor.target) failed: \(error)")
            if await control.reason != nil { return await Self.end(of: nil, exitedZero: false, control: control, checkouts: [:]) }
            return .finished(
                error is RemoteExecutionError ? unreachable : OperationStore.Outcome(status: .failed, failureReason: .setupFailed))
        }
    }

    /// The outcome of a script that ended with `exitStatus`, given why it was stopped (if it was).
    private static func end(of exitStatus: Int?, exitedZero: Bool, control: RunControl, checkouts: [String: String]) async -> RunEnd {
        switch await control.reason {
        case .leaseLost?:
            return .leaseLost
        case .canceled?:
            return .finished(OperationStore.Outcome(status: .canceled, exitStatus: exitStatus, checkouts: checkouts))
        case .timedOut?:
            return .finished(OperationStore.Outcome(status: .timedOut, exitStatus: exitStatus, checkouts: checkouts))
        case nil:
            return .finished(
                OperationStore.Outcome(
                    status: exitedZero ? .succeeded : .failed, exitStatus: exitStatus, failureReason: exitedZero ? nil : .scriptFailed,
                    checkouts: checkouts))
        }
    }

    /// What a failed checkout means: a retry later when the git host was unreachable, else a
    /// failed operation.
    private static func checkoutFailure(_ error: any Error, writer: OperationLogWriter) async -> RunEnd {
        let outcome = OperationStore.Outcome(status: .failed, failureReason: .checkoutFailed)
        guard let failure = error as? RepositoryCheckouts.Failure else {
            await writer.note("[harrow] the repositories could not be checked out: \(error)")
            return .finished(outcome)
        }
        if failure.isRetryable {
            await writer.note("[harrow] the git host is unreachable: the operation is tried again later")
            return .retryLater(failure, failure: outcome)
        }
        return .finished(outcome)
    }

    /// Runs a set-up step (the checkouts) while holding the claim: the lease is renewed, and a
    /// cancel or a lost claim cancels the step (`control` then says which).
    private func holdingClaim<Result: Sendable>(
        _ operation: Store.Operation, control: RunControl, writer: OperationLogWriter, logger: Logger,
        _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        let step = Task { try await body() }
        let watcher = Task {
            await watch(operation, signal: { _ in step.cancel() }, control: control, writer: writer, logger: logger)
        }
        defer { watcher.cancel() }
        return try await withTaskCancellationHandler {
            try await step.value
        } onCancel: {
            step.cancel()
        }
    }

    /// Runs `body` (the script, to its end) while enforcing the time limit and watching for
    /// cancel and a lost claim; `signal` stops the script (TERM, then KILL after a grace).
    private func supervise<Result: Sendable>(
        _ operation: Store.Operation, control: RunControl, writer: OperationLogWriter, logger: Logger,
        signal: @escaping @Sendable (RemoteSignal) -> Void, body: () async -> Result
    ) async -> Result {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: .seconds(operation.timeLimitSeconds))
                guard !Task.isCancelled, await control.stop(.timedOut) else { return }
                await writer.note("[harrow] the time limit of \(operation.timeLimitSeconds) s is up: stopping the script")
                await Self.terminate(signal, grace: options.timeLimitGrace)
            }
            group.addTask {
                await watch(operation, signal: signal, control: control, writer: writer, logger: logger)
            }
            let result = await body()
            group.cancelAll()
            return result
        }
    }

    /// Renews the lease while the script runs and stops it when a cancel is asked for (a
    /// Redis key the API sets, or the operation's status at renewal) or the claim is lost.
    private func watch(
        _ operation: Store.Operation, signal: @escaping @Sendable (RemoteSignal) -> Void, control: RunControl, writer: OperationLogWriter,
        logger: Logger
    ) async {
        var sinceRenewal = Duration.zero
        while !Task.isCancelled {
            try? await Task.sleep(for: options.cancelCheck)
            if Task.isCancelled { return }
            var stop: RunControl.Reason?
            if (try? await log.cancelRequested(operation.id)) == true { stop = .canceled }
            sinceRenewal += options.cancelCheck
            if stop == nil, sinceRenewal >= options.leaseRenewal {
                sinceRenewal = .zero
                do {
                    switch try await operations.renewLease(operation.id, runner: operation.runner ?? "", lease: options.lease) {
                    case .canceled?: stop = .canceled
                    case nil: stop = .leaseLost
                    default: break
                    }
                } catch {
                    logger.warning("run-operation: the lease could not be renewed", metadata: ["error": "\(error)"])
                }
            }
            guard let stop, await control.stop(stop) else { continue }
            await writer.note(
                stop == .canceled
                    ? "[harrow] the operation was canceled: stopping it"
                    : "[harrow] this worker lost its claim on the operation: stopping it")
            await Self.terminate(signal, grace: options.cancelGrace)
            return
        }
    }

    /// TERM to the script, KILL after `grace` if it is still there.
    static func terminate(_ signal: @Sendable (RemoteSignal) -> Void, grace: Duration) async {
        signal(.term)
        try? await Task.sleep(for: grace)
        if !Task.isCancelled { signal(.kill) }
    }

    /// Records the outcome, retrying while the database is away (the script's result must not
    /// be lost to a blip); `nil` when another worker recorded the operation meanwhile.
    private func record(
        _ operation: Store.Operation, outcome: OperationStore.Outcome, lines: [OperationLogArchive.Line], logger: Logger
    ) async throws -> Store.Operation? {
        var delay = Duration.seconds(1)
        let clock = ContinuousClock()
        let giveUp = clock.now.advanced(by: .seconds(600))
        while true {
            do {
                return try await operations.complete(
                    operation.id, runner: operation.runner ?? "", outcome: outcome, log: OperationLogArchive.Log(lines: lines),
                    publicURL: options.publicURL)
            } catch let error as StoreError where error.code == .conflict {
                logger.warning("run-operation: the outcome was not recorded", metadata: ["error": "\(error)"])
                return nil
            } catch {
                guard clock.now < giveUp else { throw error }
                logger.warning("run-operation: the outcome could not be recorded yet; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
    }

    /// Gives the operation back before its script started, so the job's retry claims it
    /// again; on the last attempt, fails it instead.
    private func giveBack(
        _ operation: Store.Operation, because error: any Error, lines: [OperationLogArchive.Line], context: JobContext
    ) async throws {
        if context.isLastAttempt {
            let outcome = OperationStore.Outcome(status: .failed, failureReason: .setupFailed)
            _ = try await record(operation, outcome: outcome, lines: lines, logger: context.logger)
            throw JobFailure.permanent("run-operation: the operation could not be set up: \(error)")
        }
        _ = try await operations.release(operation.id, runner: operation.runner ?? "")
        throw error
    }
}

/// Why a running script is being stopped; the first reason wins.
actor RunControl {
    enum Reason: Sendable, Hashable {
        case canceled, timedOut, leaseLost
    }

    private(set) var reason: Reason?

    /// Records `reason` unless the script is being stopped already; whether it was recorded.
    func stop(_ reason: Reason) -> Bool {
        guard self.reason == nil else { return false }
        self.reason = reason
        return true
    }
}
