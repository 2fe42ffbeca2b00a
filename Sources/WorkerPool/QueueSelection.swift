import FoundationEssentials
import Queue

/// Which queues a worker reads and in what order.
///
/// Parsed from `mail,keys` (strict: always try `mail` first) or `mail:3,keys:1` (weighted: each
/// fetch orders the queues at random, `mail` three times as likely to come first).
public struct QueueSelection: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        public var name: String
        public var weight: Int
        /// At most this many jobs of this queue at once in this worker; `nil` for no limit
        /// beyond the worker's concurrency.
        public var concurrencyLimit: Int?

        public init(name: String, weight: Int = 1, concurrencyLimit: Int? = nil) {
            self.name = name
            self.weight = weight
            self.concurrencyLimit = concurrencyLimit
        }
    }

    public var entries: [Entry]
    /// Whether any weight was given; without weights the order is strict.
    public var isWeighted: Bool

    public init(entries: [Entry], weighted: Bool) {
        self.entries = entries
        self.isWeighted = weighted
    }

    /// Parses `a,b,c` or `a:3,b:1`.
    public init(parsing text: String) throws {
        var entries: [Entry] = []
        var weighted = false
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let pieces = part.trimmingSpaces.split(separator: ":")
            let name: String
            var weight = 1
            if pieces.count >= 2, let value = Int(pieces[pieces.count - 1]) {
                name = pieces.dropLast().joined(separator: ":")
                guard value >= 1 else {
                    throw WorkerError(code: .invalidOptions, message: "queue weight for \(name) must be at least 1")
                }
                weight = value
                weighted = true
            } else {
                name = pieces.joined(separator: ":")
            }
            try QueueName.validate(name)
            guard !entries.contains(where: { $0.name == name }) else {
                throw WorkerError(code: .invalidOptions, message: "queue \(name) is listed twice")
            }
            entries.append(Entry(name: name, weight: weight))
        }
        guard !entries.isEmpty else {
            throw WorkerError(code: .invalidOptions, message: "no queues given")
        }
        self.init(entries: entries, weighted: weighted)
    }

    public var names: [String] { entries.map(\.name) }

    /// Applies per-queue concurrency limits given as `mail=5,keys=2`.
    public mutating func applyLimits(parsing text: String) throws {
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let pieces = part.split(separator: "=")
            guard pieces.count == 2, let limit = Int(pieces[1].trimmingSpaces), limit >= 1 else {
                throw WorkerError(code: .invalidOptions, message: "queue limit \"\(part)\" is not queue=N with N at least 1")
            }
            let name = pieces[0].trimmingSpaces
            guard let index = entries.firstIndex(where: { $0.name == name }) else {
                throw WorkerError(code: .invalidOptions, message: "queue limit for \(name), which is not among the queues read")
            }
            entries[index].concurrencyLimit = limit
        }
    }

    /// The order to serve the queues in for one fetch.
    func order<G: RandomNumberGenerator>(using generator: inout G) -> [Entry] {
        guard isWeighted else { return entries }
        var remaining = entries
        var ordered: [Entry] = []
        ordered.reserveCapacity(entries.count)
        while !remaining.isEmpty {
            let total = remaining.reduce(0) { $0 + $1.weight }
            var pick = Int.random(in: 0..<total, using: &generator)
            var index = 0
            while pick >= remaining[index].weight {
                pick -= remaining[index].weight
                index += 1
            }
            ordered.append(remaining.remove(at: index))
        }
        return ordered
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    fileprivate var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
