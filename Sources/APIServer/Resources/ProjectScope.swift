import Foundation
import Hummingbird
import Store

extension APIContext {
    /// The `:project` of the path, when the caller's role there allows `permission`: else 404
    /// (no role) or 403 (too low).
    func project(_ permission: Permission, access: Access) async throws -> (project: UUID, caller: Caller) {
        let project = try parameters.require("project", as: UUID.self)
        let caller = try caller()
        try await access.require(permission, project: project, caller: caller)
        return (project, caller)
    }

    /// The UUID path parameter `name`.
    func id(_ name: String = "id") throws -> UUID {
        try parameters.require(name, as: UUID.self)
    }
}
