import Foundation
import HarrowTestSupport
import PostgresNIO
import Testing

@testable import Store

@Suite struct OrganizationProjectStoreTests {
    @Test func anOrganizationIsCreatedWithItsOwnerFoundUpdatedAndAudited() async throws {
        try await Stores.with("org_crud") { stores in
            let ada = try await stores.user()
            let organization = try await stores.organizations.create(name: "  Acme  ", owner: ada.id)
            #expect(organization.name == "Acme")
            #expect(try await stores.organizations.find(organization.id) == organization)
            let role = try await stores.client.value(
                "SELECT role FROM organization_memberships WHERE organization_id = \(organization.id) AND user_id = \(ada.id)",
                as: String.self)
            #expect(role == "owner")
            let renamed = try await stores.organizations.update(organization.id, name: "Acme Inc", actor: ada.id)
            #expect(renamed.name == "Acme Inc" && renamed.updatedAt >= organization.updatedAt)
            let activities = try await stores.client.value(
                "SELECT string_agg(name, ',' ORDER BY id) FROM activities WHERE organization_id = \(organization.id)", as: String.self)
            #expect(activities == "organization.created,organization.updated")

            await #expect(throws: StoreError.notFound("organization")) { try await stores.organizations.find(UUID()) }
            let empty = await #expect(throws: StoreError.self) { try await stores.organizations.create(name: " \t", owner: ada.id) }
            #expect(empty?.code == .invalid && empty?.field == "name")
            await #expect(throws: StoreError.self) { try await stores.organizations.update(UUID(), name: "x", actor: nil) }
        }
    }

    @Test func aUsersEmailIsUniqueInAnyCase() async throws {
        try await Stores.with("user_email") { stores in
            let user = try await stores.users.create(email: "Grace@Example.com", name: "Grace", passwordHash: "h", verified: true)
            #expect(user.emailVerifiedAt != nil && !user.isAdmin)
            let duplicate = await #expect(throws: StoreError.self) {
                try await stores.users.create(email: "grace@EXAMPLE.com", name: "Other", passwordHash: "h")
            }
            #expect(duplicate?.code == .duplicate)
            #expect(duplicate?.field == "email")
            #expect(duplicate?.constraint == "users_email_key")
            #expect(duplicate?.message.contains("grace") == false, "no values in messages")
            let login = try await stores.users.findForLogin(email: " GRACE@example.com ")
            #expect(login?.user.id == user.id && login?.passwordHash == "h")
            #expect(try await stores.users.findForLogin(email: "nobody@example.com") == nil)
            await #expect(throws: StoreError.self) { try await stores.users.create(email: "no-at-sign", name: "X", passwordHash: "h") }
            try await stores.users.setAdmin(user.id, true)
            #expect(try await stores.users.find(user.id).isAdmin)
        }
    }

    @Test func projectsLiveInLiveOrganizationsWithUniqueNamesAndADefaultEnvironment() async throws {
        try await Stores.with("project_crud") { stores in
            let ada = try await stores.user()
            let organization = try await stores.organizations.create(name: "Acme", owner: ada.id)
            let project = try await stores.projects.create(organization: organization.id, name: "Web", actor: ada.id)
            #expect(try await stores.projects.find(project.id) == project)
            let environments = try await stores.client.value(
                "SELECT count(*)::int8 FROM environments WHERE project_id = \(project.id) AND is_default AND name = 'default'", as: Int.self
            )
            #expect(environments == 1)

            let duplicate = await #expect(throws: StoreError.self) {
                try await stores.projects.create(organization: organization.id, name: "Web", actor: ada.id)
            }
            #expect(duplicate?.code == .duplicate && duplicate?.field == "name")
            await #expect(throws: StoreError.notFound("organization")) {
                try await stores.projects.create(organization: UUID(), name: "Lost", actor: ada.id)
            }
            // Archived names are free again; an archived project is not found unless asked for.
            try await stores.projects.archive(project.id, actor: ada.id)
            await #expect(throws: StoreError.notFound("project")) { try await stores.projects.find(project.id) }
            #expect(try await stores.projects.find(project.id, includeArchived: true).archivedAt != nil)
            _ = try await stores.projects.create(organization: organization.id, name: "Web", actor: ada.id)
            await #expect(throws: StoreError.notFound("project")) { try await stores.projects.archive(project.id, actor: ada.id) }
        }
    }

    /// Keyset pages: every record exactly once, in creation order, also when records are
    /// added while the pages are read.
    @Test func paginationIsStableUnderInserts() async throws {
        try await Stores.with("pagination") { stores in
            let ada = try await stores.user()
            let organization = try await stores.organizations.create(name: "Acme", owner: ada.id)
            var created: [UUID] = []
            for index in 0..<7 {
                created.append(try await stores.projects.create(organization: organization.id, name: "P\(index)", actor: ada.id).id)
            }
            var seen: [UUID] = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await stores.projects.list(organization: organization.id, page: try PageRequest(limit: 3, cursor: cursor))
                seen += page.items.map(\.id)
                cursor = page.nextCursor
                pages += 1
                if pages == 1 {
                    created.append(try await stores.projects.create(organization: organization.id, name: "Late", actor: ada.id).id)
                }
            } while cursor != nil
            #expect(seen == created)
            #expect(pages == 3)

            #expect(throws: StoreError.self) { try PageRequest(limit: 0) }
            #expect(throws: StoreError.self) { try PageRequest(limit: 201) }
            let bad = await #expect(throws: StoreError.self) {
                try await stores.projects.list(organization: organization.id, page: try PageRequest(cursor: "not-a-cursor"))
            }
            #expect(bad?.field == "cursor")
            let visible = try await stores.organizations.list(visibleTo: ada.id, page: try PageRequest())
            #expect(visible.items.map(\.id) == [organization.id] && visible.nextCursor == nil)
            let stranger = try await stores.user("Eve")
            #expect(try await stores.organizations.list(visibleTo: stranger.id, page: try PageRequest()).items.isEmpty)
        }
    }

    /// Archiving an organization archives everything under it in one transaction: every row
    /// carries the same `archived_at`, the transaction's time.
    @Test func archivingAnOrganizationCascadesInOneTransaction() async throws {
        try await Stores.with("archive_cascade") { stores in
            let ada = try await stores.user()
            let organization = try await stores.organizations.create(name: "Acme", owner: ada.id)
            let other = try await stores.organizations.create(name: "Other", owner: ada.id)
            var projects: [UUID] = []
            for name in ["A", "B"] {
                let project = try await stores.projects.create(organization: organization.id, name: name, actor: ada.id).id
                projects.append(project)
                let environment = try #require(
                    try await stores.client.value("SELECT id FROM environments WHERE project_id = \(project)", as: UUID.self))
                let task = UUID()
                let job = UUID()
                try await stores.write("INSERT INTO tasks (id, project_id, name, script) VALUES (\(task), \(project), 'build', 'make')")
                try await stores.write(
                    "INSERT INTO jobs (id, project_id, task_id, environment_id, name) VALUES (\(job), \(project), \(task), \(environment), 'build')"
                )
                try await stores.write("INSERT INTO schedules (project_id, job_id, cron) VALUES (\(project), \(job), '0 * * * *')")
            }
            let untouched = try await stores.projects.create(organization: other.id, name: "Kept", actor: ada.id)

            try await stores.organizations.archive(organization.id, actor: ada.id)

            await #expect(throws: StoreError.notFound("organization")) { try await stores.organizations.find(organization.id) }
            let stamps = try await stores.client.value(
                """
                SELECT count(DISTINCT archived_at)::int8 + 1000 * count(*) FILTER (WHERE archived_at IS NULL) FROM (
                    SELECT archived_at FROM organizations WHERE id = \(organization.id)
                    UNION ALL SELECT archived_at FROM projects WHERE organization_id = \(organization.id)
                    UNION ALL SELECT archived_at FROM environments WHERE project_id = ANY(\(projects))
                    UNION ALL SELECT archived_at FROM tasks WHERE project_id = ANY(\(projects))
                    UNION ALL SELECT archived_at FROM jobs WHERE project_id = ANY(\(projects))
                    UNION ALL SELECT archived_at FROM schedules WHERE project_id = ANY(\(projects))) stamps
                """, as: Int.self)
            #expect(stamps == 1, "one transaction, one timestamp, no row left live")
            let disabled = try await stores.client.value(
                "SELECT count(*)::int8 FROM schedules WHERE project_id = ANY(\(projects)) AND disabled_at IS NOT NULL", as: Int.self)
            #expect(disabled == 2)
            #expect(try await stores.projects.find(untouched.id).archivedAt == nil)
            await #expect(throws: StoreError.notFound("organization")) {
                try await stores.organizations.archive(organization.id, actor: ada.id)
            }
        }
    }

    /// The schema's rules, as the stores report them.
    @Test func constraintsBecomeTypedErrors() async throws {
        try await Stores.with("constraints") { stores in
            let ada = try await stores.user()
            let organization = try await stores.organizations.create(name: "Acme", owner: ada.id)
            let first = try await stores.projects.create(organization: organization.id, name: "A", actor: ada.id).id
            let second = try await stores.projects.create(organization: organization.id, name: "B", actor: ada.id).id
            let foreignEnvironment = try #require(
                try await stores.client.value("SELECT id FROM environments WHERE project_id = \(second)", as: UUID.self))
            let environment = try #require(
                try await stores.client.value("SELECT id FROM environments WHERE project_id = \(first)", as: UUID.self))
            let task = UUID()
            try await stores.write("INSERT INTO tasks (id, project_id, name, script) VALUES (\(task), \(first), 't', 's')")

            let crossProject = await #expect(throws: StoreError.self) {
                try await stores.write(
                    "INSERT INTO jobs (project_id, task_id, environment_id, name) VALUES (\(first), \(task), \(foreignEnvironment), 'j')")
            }
            #expect(crossProject?.code == .notFound && crossProject?.constraint == "jobs_environment_id_fkey")
            #expect(crossProject?.field == "environment_id")

            let job = UUID()
            try await stores.write(
                "INSERT INTO jobs (id, project_id, task_id, environment_id, name) VALUES (\(job), \(first), \(task), \(environment), 'j')")
            let both = await #expect(throws: StoreError.self) {
                try await stores.write(
                    "INSERT INTO schedules (project_id, job_id, cron, run_at) VALUES (\(first), \(job), '* * * * *', now())")
            }
            #expect(both?.code == .invalid && both?.constraint == "schedules_spec_check")

            let secondDefault = await #expect(throws: StoreError.self) {
                try await stores.write("INSERT INTO environments (project_id, name, is_default) VALUES (\(first), 'prod', true)")
            }
            #expect(secondDefault?.code == .duplicate && secondDefault?.field == "is_default")

            let credentials = await #expect(throws: StoreError.self) {
                try await stores.write(
                    "INSERT INTO repositories (project_id, name, url) VALUES (\(first), 'r', 'https://user:pw@example.com/r.git')")
            }
            #expect(credentials?.code == .invalid && credentials?.field == "url")
            #expect(credentials?.message.contains("pw@") == false)
        }
    }
}
