import Foundation
import HTTPTypes
import Hummingbird
import Store

/// Organizations and their projects.
struct OrganizationRoutes: Sendable {
    let organizations: OrganizationStore
    let projects: ProjectStore
    let access: Access
    let configuration: APIConfiguration

    struct NameBody: RequestBody {
        static let fields: Set<String> = ["name"]
        var name: String
    }

    func addRoutes(to router: some RouterMethods<APIContext>) {
        router.post("organizations") { request, context -> EditedResponse<Organization> in
            let caller = try context.caller()
            let body = try await request.json(NameBody.self, limit: configuration.bodyLimit)
            return EditedResponse(status: .created, response: try await organizations.create(name: body.name, owner: caller.user.id))
        }
        router.get("organizations") { request, context -> PageBody<Organization> in
            PageBody(try await organizations.list(visibleTo: try context.caller().user.id, page: try request.pageRequest()))
        }
        router.get("organizations/:organization") { _, context -> Organization in
            let id = try context.id("organization")
            try await access.require(.read, organization: id, caller: try context.caller(), visibleThroughProjects: true)
            return try await organizations.find(id)
        }
        router.patch("organizations/:organization") { request, context -> Organization in
            let id = try context.id("organization")
            let caller = try context.caller()
            try await access.require(.manageMembers, organization: id, caller: caller)
            let body = try await request.json(NameBody.self, limit: configuration.bodyLimit)
            return try await organizations.update(id, name: body.name, actor: caller.user.id)
        }
        router.delete("organizations/:organization") { _, context -> HTTPResponse.Status in
            let id = try context.id("organization")
            let caller = try context.caller()
            try await access.require(.archive, organization: id, caller: caller)
            try await organizations.archive(id, actor: caller.user.id)
            return .noContent
        }
        router.post("organizations/:organization/projects") { request, context -> EditedResponse<Project> in
            let id = try context.id("organization")
            let caller = try context.caller()
            try await access.require(.manageMembers, organization: id, caller: caller)
            let body = try await request.json(NameBody.self, limit: configuration.bodyLimit)
            return EditedResponse(
                status: .created, response: try await projects.create(organization: id, name: body.name, actor: caller.user.id))
        }
        router.get("organizations/:organization/projects") { request, context -> PageBody<Project> in
            let id = try context.id("organization")
            try await access.require(.read, organization: id, caller: try context.caller())
            return PageBody(try await projects.list(organization: id, page: try request.pageRequest()))
        }
        router.get("projects/:project") { _, context -> Project in
            let id = try context.id("project")
            try await access.require(.read, project: id, caller: try context.caller())
            return try await projects.find(id)
        }
        router.patch("projects/:project") { request, context -> Project in
            let id = try context.id("project")
            let caller = try context.caller()
            try await access.require(.manageMembers, project: id, caller: caller)
            let body = try await request.json(NameBody.self, limit: configuration.bodyLimit)
            return try await projects.update(id, name: body.name, actor: caller.user.id)
        }
        router.delete("projects/:project") { _, context -> HTTPResponse.Status in
            let id = try context.id("project")
            let caller = try context.caller()
            try await access.require(.archive, project: id, caller: caller)
            try await projects.archive(id, actor: caller.user.id)
            return .noContent
        }
    }
}
