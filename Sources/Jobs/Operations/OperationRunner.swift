import Foundation
import JobContracts
import Logging
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
            workspaceRoot: URL, keepFailedWorkspaces: Bool = false, logCap: Int = 64 << 20, lease: Duration = .seconds(30),
            leaseRenewal: Duration = .seconds(5), cancelCheck: Duration = .milliseconds(500), timeLimitGrace: Duration = .seconds(10),
            cancelGrace: Duration = .seconds(3), publicURL: String = "http://localhost:8080"
        ) {
            self.workspaceRoot = workspaceRoot
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
            try await giveBack(operation, because: error, context: context)
            return
        }
        let writer = OperationLogWriter(
            operation: operation.id, log: log, masker: SecretMasker(plan.secretValues), cap: options.logCap,
            after: (try? await log.lastID(operation.id)) ?? "0", logger: logger)
        let (outcome, workspace) = await withTaskGroup(of: Void.self) { group in
            group.addTask { await writer.run() }
            let result = await perform(plan, writer: writer, context: context)
            _ = await writer.finish()
            return result
        }
        guard let outcome else {
            logger.warning("run-operation: this worker lost its claim on the operation; another worker recorded it as worker_lost")
            workspace?.remove()
            return
        }
        var recorded = outcome
        recorded.logTail = outcome.status == .succeeded ? [] : await writer.tail
        let lines = await writer.lines.map { OperationLogArchive.Line(id: $0.id, stream: $0.stream, text: $0.text, t: $0.t) }
        let finished = try await record(operation, outcome: recorded, lines: lines, logger: logger)
        if let workspace {
            if finished?.status != .succeeded && options.keepFailedWorkspaces {
                logger.info("run-operation: the workspace is kept", metadata: ["workspace": "\(workspace.path)"])
            } else {
                workspace.remove()
            }
        }
    }

    /// Sets up and runs the script; the outcome, or `nil` when the claim was lost meanwhile.
    private func perform(
        _ plan: RunPlan, writer: OperationLogWriter, context: JobContext
    ) async -> (OperationStore.Outcome?, OperationWorkspace?) {
        let operation = plan.operation
        let workspace: OperationWorkspace
        let process: LocalProcess
        do {
            workspace = try OperationWorkspace.create(
                root: options.workspaceRoot, operation: operation.id, plan: plan, account: sandbox.account)
        } catch {
            await writer.note("[harrow] the workspace could not be set up: \(error)")
            return (OperationStore.Outcome(status: .failed, failureReason: .setupFailed), nil)
        }
        do {
            let environment = ScriptEnvironment.variables(for: plan, workspace: workspace.path, home: workspace.home.path)
            let command = sandbox.wrap(ScriptEnvironment.command(for: plan.script, at: workspace.script.path), workspace: workspace.path)
            process = try await LocalProcess.launch(command, environment: environment, directory: workspace.path)
        } catch {
            await writer.note("[harrow] the script could not be started: \(error)")
            return (OperationStore.Outcome(status: .failed, failureReason: .setupFailed), workspace)
        }
        let control = RunControl()
        let termination = await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: .seconds(operation.timeLimitSeconds))
                guard !Task.isCancelled, await control.stop(.timedOut) else { return }
                await writer.note("[harrow] the time limit of \(operation.timeLimitSeconds) s is up: stopping the script")
                await Self.terminate(process, grace: options.timeLimitGrace)
            }
            group.addTask {
                await watch(operation, process: process, control: control, writer: writer, logger: context.logger)
            }
            let termination = await process.readOutput { stream, buffer in await writer.write(stream, buffer) }
            group.cancelAll()
            return termination
        }
        switch await control.reason {
        case .leaseLost?:
            return (nil, workspace)
        case .canceled?:
            return (OperationStore.Outcome(status: .canceled, exitStatus: termination.exitStatus), workspace)
        case .timedOut?:
            return (OperationStore.Outcome(status: .timedOut, exitStatus: termination.exitStatus), workspace)
        case nil:
            let succeeded = termination == .exited(0)
            if case .signaled(let signal) = termination {
                await writer.note("[harrow] the script was ended by signal \(signal)")
            }
            return (
                OperationStore.Outcome(
                    status: succeeded ? .succeeded : .failed, exitStatus: termination.exitStatus,
                    failureReason: succeeded ? nil : .scriptFailed), workspace
            )
        }
    }

    /// Renews the lease while the script runs and stops it when a cancel is asked for (a
    /// Redis key the API sets, or the operation's status at renewal) or the claim is lost.
    private func watch(
        _ operation: Store.Operation, process: LocalProcess, control: RunControl, writer: OperationLogWriter, logger: Logger
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
                    ? "[harrow] the operation was canceled: stopping the script"
                    : "[harrow] this worker lost its claim on the operation: stopping the script")
            await Self.terminate(process, grace: options.cancelGrace)
            return
        }
    }

    /// SIGTERM to the script's process group, SIGKILL after `grace` if it is still there.
    static func terminate(_ process: LocalProcess, grace: Duration) async {
        process.signalGroup(SIGTERM)
        try? await Task.sleep(for: grace)
        if !Task.isCancelled { process.signalGroup(SIGKILL) }
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
    private func giveBack(_ operation: Store.Operation, because error: any Error, context: JobContext) async throws {
        if context.isLastAttempt {
            let outcome = OperationStore.Outcome(status: .failed, failureReason: .setupFailed)
            _ = try await record(operation, outcome: outcome, lines: [], logger: context.logger)
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
