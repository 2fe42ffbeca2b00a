import FoundationEssentials
import NIOCore
import NIOFoundationEssentialsCompat
import Queue

/// The job types a worker can run, each with its handler.
public struct JobRegistry: Sendable {
    /// A registered job type with its payload decoding folded into the handler.
    struct Entry: Sendable {
        let name: String
        let retryPolicy: RetryPolicy
        let timeout: Duration
        let visibilityTimeout: Duration?
        let run: @Sendable (_ payload: ByteBuffer, _ context: JobContext) async throws -> Void
    }

    private(set) var entries: [String: Entry] = [:]
    /// The heartbeat interval of the workers that will run these types: a type's visibility
    /// timeout must be at least three of them.
    public let heartbeatInterval: Duration

    /// A registry for workers that heartbeat every `heartbeatInterval` (the worker checks again
    /// against its own at start).
    public init(heartbeatInterval: Duration = Worker.defaultHeartbeatInterval) {
        self.heartbeatInterval = heartbeatInterval
    }

    /// One decoder for every job: making one per job showed in profiles.
    private static let decoder = JSONDecoder()

    /// Registers `handler` for jobs of type `J`.
    ///
    /// - Throws: ``WorkerError`` `duplicateJobType` when `J.name` is already registered;
    ///   `invalidOptions` when its timeout is not positive or its visibility timeout is shorter
    ///   than three heartbeat intervals (its jobs would be redelivered while they run).
    public mutating func register<J: Job>(
        _ type: J.Type, handler: @escaping @Sendable (J, JobContext) async throws -> Void
    ) throws(WorkerError) {
        guard entries[J.name] == nil else {
            throw WorkerError(code: .duplicateJobType, message: "job type \(J.name) is registered twice")
        }
        guard J.timeout > .zero else {
            throw WorkerError(code: .invalidOptions, message: "job type \(J.name) has a timeout of \(J.timeout); it must be positive")
        }
        if let visibility = J.visibilityTimeout, visibility < heartbeatInterval * 3 {
            throw WorkerError(
                code: .invalidOptions,
                message: """
                    job type \(J.name) has a visibility timeout of \(visibility), less than three heartbeat intervals \
                    (3 × \(heartbeatInterval)): its jobs would be redelivered while they run
                    """)
        }
        entries[J.name] = Entry(
            name: J.name, retryPolicy: J.retryPolicy, timeout: J.timeout, visibilityTimeout: J.visibilityTimeout
        ) { payload, context in
            let job: J
            do {
                job = try Self.decoder.decode(J.self, from: payload)
            } catch {
                throw JobFailure.permanent("payload does not decode as \(J.name): \(Self.describe(error))")
            }
            try await handler(job, context)
        }
    }

    /// The names of every registered type.
    public var typeNames: [String] { entries.keys.sorted() }

    /// Every registered type's policy, by name, as workers publish it for the reclaimer.
    public var policies: [String: JobPolicy] {
        entries.mapValues {
            JobPolicy(maxAttempts: $0.retryPolicy.maxAttempts, timeout: $0.timeout, visibilityTimeout: $0.visibilityTimeout)
        }
    }

    /// The registered type named `name`.
    subscript(name: String) -> Entry? { entries[name] }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context):
            return "invalid JSON: \(context.debugDescription)"
        case DecodingError.keyNotFound(let key, _):
            return "missing field \(key.stringValue)"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "wrong type at \(path.isEmpty ? "top level" : path): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }
}

/// A worker misconfiguration.
public struct WorkerError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        public static let duplicateJobType = Code(name: "duplicateJobType")
        public static let invalidOptions = Code(name: "invalidOptions")
    }

    public var code: Code
    public var message: String
    public var description: String { message }
}
