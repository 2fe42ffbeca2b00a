import ArgumentParser
import CommandSupport

/// `api-server`: serves the HTTP/JSON API (the default), and the operator commands.
@main struct APIServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api-server", abstract: "Harrow's HTTP/JSON API for the web app.",
        subcommands: [ServeCommand.self, MigrateCommand.self, UserCommand.self], defaultSubcommand: ServeCommand.self)
}
