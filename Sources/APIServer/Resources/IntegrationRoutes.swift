import Foundation
import HTTPTypes
import Hummingbird
import Store

/// A project's connections to other services: the GitHub token `post-status` jobs use, and
/// the HTTPS access tokens private repositories are checked out with. Tokens are write-only,
/// like a secret's value.
struct IntegrationRoutes: Sendable {
    let tokens: GitHubTokenStore
    let repositoryTokens: RepositoryTokenStore
    let access: Access
    let configuration: APIConfiguration

    struct TokenBody: RequestBody {
        static let fields: Set<String> = ["token"]
        var token: String
    }

    struct TokenStatus: ResponseEncodable {
        var configured: Bool
        var updatedAt: Date?
    }

    func addRoutes(to router: some RouterMethods<APIContext>) {
        let project = router.group("projects/:project")
        project.get("github-token") { _, context -> TokenStatus in
            let (project, _) = try await context.project(.read, access: access)
            let status = try await tokens.status(project: project)
            return TokenStatus(configured: status.configured, updatedAt: status.updatedAt)
        }
        project.put("github-token") { request, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.writeSecrets, access: access)
            let body = try await request.json(TokenBody.self, limit: configuration.bodyLimit)
            try await tokens.set(project: project, token: body.token, actor: caller.user.id)
            return .noContent
        }
        project.put("repositories/:repository/token") { request, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.writeSecrets, access: access)
            let body = try await request.json(TokenBody.self, limit: configuration.bodyLimit)
            try await repositoryTokens.set(
                repository: try context.id("repository"), project: project, token: body.token, actor: caller.user.id)
            return .noContent
        }
        project.delete("repositories/:repository/token") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.writeSecrets, access: access)
            guard try await repositoryTokens.clear(repository: try context.id("repository"), project: project, actor: caller.user.id) else {
                throw Problem.notFound("the repository has no token")
            }
            return .noContent
        }
        project.delete("github-token") { _, context -> HTTPResponse.Status in
            let (project, caller) = try await context.project(.writeSecrets, access: access)
            guard try await tokens.clear(project: project, actor: caller.user.id) else {
                throw Problem.notFound("the project has no GitHub token")
            }
            return .noContent
        }
    }
}
