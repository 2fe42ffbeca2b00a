import Foundation

/// Sends the activities whose name matches a glob (`operation.*`) to a notifier: those of one
/// job, or of the whole project when `jobID` is `nil`.
public struct NotificationRule: Sendable, Hashable, Codable {
    public var id: UUID
    public var projectID: UUID
    public var notifierID: UUID
    public var jobID: UUID?
    /// A glob over activity names: `*` matches any run of characters, `?` one character.
    public var activityPattern: String
    public var createdAt: Date
    public var updatedAt: Date
    public var archivedAt: Date?
}

extension NotificationRule {
    /// Whether `name` matches the rule's glob as a whole.
    public func matches(activity name: String) -> Bool {
        Self.glob(Array(activityPattern.unicodeScalars), matches: Array(name.unicodeScalars))
    }

    /// Iterative glob matching with backtracking to the last `*` only: linear in practice,
    /// never exponential, whatever the pattern.
    static func glob(_ pattern: [Unicode.Scalar], matches text: [Unicode.Scalar]) -> Bool {
        var p = 0
        var t = 0
        var star: (pattern: Int, text: Int)?
        while t < text.count {
            if p < pattern.count, pattern[p] == "*" {
                star = (p, t)
                p += 1
            } else if p < pattern.count, pattern[p] == "?" || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if let last = star {
                p = last.pattern + 1
                t = last.text + 1
                star = (last.pattern, last.text + 1)
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}
