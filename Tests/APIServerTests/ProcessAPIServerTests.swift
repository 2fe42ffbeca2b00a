import Foundation
import HarrowTestSupport
import Store
import Testing

/// `api-server`'s operator commands and start-up checks, as processes.
@Suite struct ProcessAPIServerTests {
    static func environment(_ configuration: DatabaseConfiguration) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] =
            "postgres://\(configuration.username)@\(configuration.host):\(configuration.port)/\(configuration.database)"
        environment["HARROW_SECRET_KEY"] = SecretKeyring.Key.generate().base64
        return environment
    }

    @Test func operatorCommandsCreateUsersAndGrantAdmin() async throws {
        try await TestDatabase.withDatabase("proc_api_user") { client, configuration in
            let environment = Self.environment(configuration)
            let unmigrated = try await BuiltExecutables.run(
                "api-server", ["user", "create", "--email", "root@example.com", "--password-stdin"], environment: environment,
                input: "a long enough password\n")
            #expect(unmigrated.status != 0)
            #expect(unmigrated.stderr.contains("run `migrate`"))
            let migrate = try await BuiltExecutables.run("api-server", ["migrate"], environment: environment)
            #expect(migrate.status == 0, "\(migrate.stderr)")

            let noStdin = try await BuiltExecutables.run(
                "api-server", ["user", "create", "--email", "root@example.com"], environment: environment)
            #expect(noStdin.status != 0)
            let short = try await BuiltExecutables.run(
                "api-server", ["user", "create", "--email", "root@example.com", "--password-stdin"], environment: environment,
                input: "short\n")
            #expect(short.status != 0)
            let created = try await BuiltExecutables.run(
                "api-server", ["user", "create", "--email", "Root@Example.com", "--password-stdin", "--admin"], environment: environment,
                input: "a long enough password\n")
            #expect(created.status == 0, "\(created.stderr)")
            #expect(!created.stdout.contains("a long enough password") && !created.stderr.contains("a long enough password"))

            let users = UserStore(client: client, logger: TestRedis.logger())
            let found = try #require(try await users.findForLogin(email: "root@example.com"))
            #expect(found.user.isAdmin && found.user.emailVerifiedAt != nil)
            #expect(found.passwordHash.hasPrefix("$2"))

            let revoked = try await BuiltExecutables.run(
                "api-server", ["user", "admin", "--email", "root@example.com", "--revoke"], environment: environment)
            #expect(revoked.status == 0, "\(revoked.stderr)")
            #expect(try await users.find(found.user.id).isAdmin == false)
            let unknown = try await BuiltExecutables.run(
                "api-server", ["user", "admin", "--email", "nobody@example.com", "--grant"], environment: environment)
            #expect(unknown.status != 0)
        }
    }

    @Test func theServerRefusesToStartAgainstAnUnmigratedDatabaseOrWithoutAKey() async throws {
        try await TestDatabase.withDatabase("proc_api_refuse") { _, configuration in
            var environment = Self.environment(configuration)
            let arguments = ["serve", "--port", "0", "--redis-url", TestRedis.url]
            let unmigrated = try await BuiltExecutables.run("api-server", arguments, environment: environment)
            #expect(unmigrated.status != 0)
            #expect(unmigrated.stderr.contains("run `migrate`"), "\(unmigrated.stderr)")
            environment["HARROW_SECRET_KEY"] = nil
            let noKey = try await BuiltExecutables.run("api-server", arguments, environment: environment)
            #expect(noKey.status != 0)
            #expect(noKey.stderr.contains("HARROW_SECRET_KEY is not set"))
        }
    }
}
