import ArgumentParser
import CommandSupport
import Foundation
import HummingbirdBcrypt
import Logging
import Store

/// `api-server user`: operator commands for accounts.
struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Create users and grant platform admin.", subcommands: [Create.self, Admin.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a verified user; the password is read from standard input (one line).")

        @Option var email: String
        @Option var name: String?
        @Flag(help: "Read the password from standard input (required: never from the command line).") var passwordStdin = false
        @Flag(help: "Make the user a platform admin.") var admin = false
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            guard passwordStdin else { throw ValidationError("pass --password-stdin and the password on standard input") }
        }

        func run() async throws {
            let logger = logging.bootstrap(label: "harrow.api")
            guard let password = readLine(strippingNewline: true), password.count >= 10, password.utf8.count <= 72 else {
                throw ValidationError("the password on standard input must be 10 characters to 72 bytes")
            }
            let hash = Bcrypt.hash(password, cost: 12)
            let user = try await Database.withClient(try database.requiredConfiguration(), logger: logger) { client in
                try await Migrator(client: client, logger: logger).requireCurrent()
                return try await UserStore(client: client, logger: logger).create(
                    email: email, name: name ?? String(email.prefix { $0 != "@" }), passwordHash: hash, verified: true, admin: admin)
            }
            print("user: created \(user.id.uuidString.lowercased()) \(user.email)\(admin ? " (admin)" : "")")
        }
    }

    struct Admin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Grant or revoke platform admin.")

        @Option var email: String
        @Flag(exclusivity: .exclusive) var change: Change
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var logging: LoggingOptions

        enum Change: String, EnumerableFlag {
            case grant, revoke
        }

        func run() async throws {
            let logger = logging.bootstrap(label: "harrow.api")
            try await Database.withClient(try database.requiredConfiguration(), logger: logger) { client in
                let users = UserStore(client: client, logger: logger)
                guard let (user, _) = try await users.findForLogin(email: email) else {
                    throw ValidationError("no user with email \(email)")
                }
                try await users.setAdmin(user.id, change == .grant)
            }
            print("user: \(email) is \(change == .grant ? "now" : "no longer") a platform admin")
        }
    }
}
