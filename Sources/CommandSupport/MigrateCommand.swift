import ArgumentParser
import Store

/// `migrate`, in `worker` and `api-server` alike: applies pending migrations and exits.
public struct MigrateCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Apply pending database migrations and exit.",
        discussion: """
            Safe to run from several processes at once: an advisory lock makes them apply each \
            migration once. Refuses a database that has migrations this binary does not know, or \
            whose text differs.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions

    public init() {}

    public func run() async throws {
        let logger = logging.bootstrap(label: "harrow.migrate")
        let applied = try await Database.withClient(try database.requiredConfiguration(), logger: logger) { client in
            try await Migrator(client: client, logger: logger).migrate()
        }
        print(applied.isEmpty ? "migrate: the database is current" : "migrate: applied \(applied.map(String.init).joined(separator: ", "))")
    }
}
