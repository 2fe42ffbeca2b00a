import Foundation
import HarrowTestSupport
import PostgresNIO

@testable import Store

/// The stores of environments, secrets, tasks, jobs, memberships, invitations and sessions,
/// with fixtures their tests share.
extension Stores {
    /// One keyring for the test run: values sealed through one `secrets` store open through
    /// another.
    static let secretsKeyring = SecretKeyring(current: .generate())

    var environments: EnvironmentStore { EnvironmentStore(client: client, logger: logger) }
    var secrets: SecretStore { SecretStore(client: client, keyring: Self.secretsKeyring, logger: logger) }
    var tasks: TaskStore { TaskStore(client: client, logger: logger) }
    var jobs: JobStore { JobStore(client: client, logger: logger) }
    var memberships: MembershipStore { MembershipStore(client: client, logger: logger) }
    var invitations: InvitationStore { InvitationStore(client: client, logger: logger) }
    var sessions: SessionStore { SessionStore(client: client, logger: logger) }

    /// A user, an organization they own and a project in it (with its default environment).
    func ownedProject(_ name: String = "Web") async throws -> (user: User, organization: Organization, project: Project) {
        let user = try await self.user()
        let organization = try await organizations.create(name: "Acme", owner: user.id)
        let project = try await projects.create(organization: organization.id, name: name, actor: user.id)
        return (user, organization, project)
    }

    /// The project's live default environment.
    func defaultEnvironment(of project: UUID) async throws -> Environment {
        let page = try await environments.list(project: project, page: try PageRequest(limit: 200))
        guard let environment = page.items.first(where: \.isDefault) else { throw StoreError.notFound("default environment") }
        return environment
    }

    /// The names of the activities recorded about `project`, in order.
    func activityNames(project: UUID) async throws -> [String] {
        let names = try await client.value(
            "SELECT coalesce(string_agg(name, ',' ORDER BY id), '') FROM activities WHERE project_id = \(project)", as: String.self)
        return (names ?? "").split(separator: ",").map(String.init)
    }

    /// Reads every page of a list, `limit` records at a time; returns the records and how many
    /// pages it took.
    func allPages<Item: Sendable>(limit: Int, _ read: (PageRequest) async throws -> Page<Item>) async throws -> (items: [Item], pages: Int)
    {
        var items: [Item] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try await read(try PageRequest(limit: limit, cursor: cursor))
            items += page.items
            cursor = page.nextCursor
            pages += 1
        } while cursor != nil && pages < 100
        return (items, pages)
    }
}
