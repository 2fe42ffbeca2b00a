import Foundation

/// How one ref of a repository changed between two polls: what git triggers match against,
/// and what `repository.ref-added`, `-changed` and `-removed` activities record.
public struct RefChange: Sendable, Hashable, Codable {
    /// The ref's full name, `refs/heads/main`.
    public var ref: String
    public var type: GitTrigger.ChangeType
    /// The commit the ref points at now; empty for a removed ref.
    public var sha: String
    /// The commit it pointed at before; empty for an added ref.
    public var previousSHA: String

    public init(ref: String, type: GitTrigger.ChangeType, sha: String, previousSHA: String) {
        self.ref = ref
        self.type = type
        self.sha = sha
        self.previousSHA = previousSHA
    }

    /// The changes from `old` to `new` (ref name → sha), by ref name. A ref that moved several
    /// times between the two is one change, to where it is now.
    public static func between(_ old: [String: String], _ new: [String: String]) -> [RefChange] {
        var changes: [RefChange] = []
        for (ref, sha) in new {
            switch old[ref] {
            case nil: changes.append(RefChange(ref: ref, type: .add, sha: sha, previousSHA: ""))
            case let previous? where previous != sha: changes.append(RefChange(ref: ref, type: .change, sha: sha, previousSHA: previous))
            default: break
            }
        }
        for (ref, previous) in old where new[ref] == nil {
            changes.append(RefChange(ref: ref, type: .remove, sha: "", previousSHA: previous))
        }
        return changes.sorted { $0.ref < $1.ref }
    }

    /// The activity that records this change.
    public var activityName: String {
        switch type {
        case .add: "repository.ref-added"
        case .change: "repository.ref-changed"
        case .remove: "repository.ref-removed"
        }
    }

    /// The parameters of an operation a git trigger starts for this change.
    public func parameters(repository: UUID) -> [String: String] {
        ["ref": ref, "sha": sha, "previous_sha": previousSHA, "repository_id": repository.uuidString.lowercased()]
    }
}
