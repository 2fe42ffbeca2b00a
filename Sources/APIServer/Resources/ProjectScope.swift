import Foundation
import Hummingbird
import Store

extension APIContext {
    /// The `:project` of the path, when the caller's role there allows `permission`: else 404
    /// (no role) or 403 (too low).
    func project(_ permission: Permission, access: Access) async throws -> (project: UUID, caller: Caller) {
        let project = try id("project")
        let caller = try caller()
        try await access.require(permission, project: project, caller: caller)
        return (project, caller)
    }

    /// The UUID path parameter `name`; 400 when it is none, without echoing what was sent.
    func id(_ name: String = "id") throws -> UUID {
        guard let id = parameters.get(name, as: UUID.self) else { throw Problem.badRequest("\(name) in the path must be an id (a UUID)") }
        return id
    }
}
