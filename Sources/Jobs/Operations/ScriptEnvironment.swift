import Foundation
import Store

/// The environment a script starts with, built from nothing: no variable of the worker
/// reaches it. Later sources win over earlier ones:
/// 1. `PATH`, `HOME`, `LANG=C.UTF-8`, the `HARROW_` variables describing the run, and
///    `GIT_SSH_COMMAND` naming the workspace's ssh config (an absolute path) when there is one;
/// 2. the environment's variables (which may set `PATH`);
/// 3. the environment's `env` secrets;
/// 4. the operation's parameters as `HARROW_PARAM_<NAME>`.
///
/// Values only ever travel in the process environment, never in a command line or the
/// script's text: nothing is interpolated by a shell.
enum ScriptEnvironment {
    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// - Parameters:
    ///   - workspace: `HARROW_WORKSPACE`; nil on a remote target, where the launcher sets it.
    ///   - home: `HOME`; nil on a remote target, where the login's home is used.
    ///   - sshConfig: the workspace's `~/.ssh/config`: `GIT_SSH_COMMAND` names it, since OpenSSH
    ///     reads the account's home from the user database, not `HOME`.
    static func variables(for plan: RunPlan, workspace: String?, home: String?, sshConfig: String? = nil) -> [String: String] {
        var variables = [
            "PATH": defaultPath, "LANG": "C.UTF-8",
            "HARROW_OPERATION_ID": plan.operation.id.uuidString.lowercased(), "HARROW_JOB": plan.jobName,
            "HARROW_JOB_ID": plan.operation.jobID.uuidString.lowercased(), "HARROW_PROJECT": plan.projectName,
            "HARROW_PROJECT_ID": plan.operation.projectID.uuidString.lowercased(), "HARROW_ENVIRONMENT": plan.environment.name,
        ]
        variables["HOME"] = home
        variables["HARROW_WORKSPACE"] = workspace
        // Quoted for the shell git runs it with; a path with a quote (an odd workspace root) gets none.
        if let sshConfig, !sshConfig.contains("'") { variables["GIT_SSH_COMMAND"] = "ssh -F '\(sshConfig)'" }
        // Refused when written; dropped here too, for rows written before the rule (the runner
        // says which in the log): `setpriv` and `bwrap` read them while still privileged.
        for (name, value) in plan.environment.variables where EnvironmentStore.refusedVariableName(name) == nil {
            variables[name] = value
        }
        for (name, value) in plan.secretVariables where EnvironmentStore.refusedVariableName(name) == nil { variables[name] = value }
        for (name, value) in plan.operation.parameters { variables["HARROW_PARAM_\(name.uppercased())"] = value }
        return variables
    }

    /// How the script file is run: directly when it starts with `#!` (its interpreter), else
    /// with bash, strict and without start-up files.
    static func command(for script: String, at path: String) -> [String] {
        script.hasPrefix("#!") ? [path] : ["/bin/bash", "--noprofile", "--norc", "-eo", "pipefail", path]
    }

    /// The environment's variable and secret names the run leaves out (see ``variables(for:workspace:home:sshConfig:)``).
    static func refusedNames(in plan: RunPlan) -> [String] {
        (Array(plan.environment.variables.keys) + Array(plan.secretVariables.keys))
            .filter { EnvironmentStore.refusedVariableName($0) != nil }.sorted()
    }
}
