import ArgumentParser
import CommandSupport

/// `worker`: runs jobs (the default), and the operator commands that need the worker's view of
/// the database.
@main struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Runs Harrow jobs from Redis queues.",
        subcommands: [RunCommand.self, MigrateCommand.self, RotateSecretsCommand.self, KeysCommand.self], defaultSubcommand: RunCommand.self
    )
}
