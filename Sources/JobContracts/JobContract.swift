import Foundation

/// A platform job's contract: its payload (the conforming type, as JSON), its type name on the
/// wire, its queue, how often it is tried, and how long one run may take. The one place these
/// live: the store writes outbox rows from these values, the outbox relay enqueues with their
/// policy, and the worker registers its handlers for these types.
///
/// Every requirement is stated by each contract (none has a default), so that reading the type
/// tells the whole contract.
public protocol JobContract: Codable, Sendable {
    /// The type name on the wire (`type` in the envelope). Stable across deploys.
    static var name: String { get }
    /// The queue jobs of this type go to.
    static var queue: String { get }
    /// How many runs are allowed and how long to wait between them.
    static var retries: Retries { get }
    /// How long one run may take before the worker cancels it.
    static var timeout: Duration { get }
    /// How long a running job may go without a heartbeat before another worker gets it; `nil`
    /// leaves it to the queue (60 seconds). Keep it at least three heartbeats (5 s each) long.
    static var visibilityTimeout: Duration? { get }
    /// While a job with this key waits, is delayed or runs, another with the same key is not
    /// added. `nil` (the default): no uniqueness.
    var uniqueKey: String? { get }
}

extension JobContract {
    public var uniqueKey: String? { nil }

    /// The payload as the queue carries it: JSON with sorted keys, so the same job always has
    /// the same bytes.
    public func payload() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
