/// A member's role in an organization or project, ordered: guest < member < manager < owner.
/// A user's role in a project is the higher of their project and organization roles.
public enum Role: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case guest, member, manager, owner

    var rank: Int {
        switch self {
        case .guest: 10
        case .member: 20
        case .manager: 30
        case .owner: 40
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }
}
