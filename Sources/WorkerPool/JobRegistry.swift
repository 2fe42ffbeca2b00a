import FoundationEssentials
import NIOCore
import NIOFoundationEssentialsCompat

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

    public init() {}

    /// One decoder for every job: making one per job showed in profiles.
    private static let decoder = JSONDecoder()

    /// Registers `handler` for jobs of type `J`.
    ///
    /// - Throws: ``WorkerError`` `duplicateJobType` when `J.name` is already registered.
    public mutating func register<J: Job>(
        _ type: J.Type, handler: @escaping @Sendable (J, JobContext) async throws -> Void
    ) throws(WorkerError) {
        guard entries[J.name] == nil else {
            throw WorkerError(code: .duplicateJobType, message: "job type \(J.name) is registered twice")
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

    /// The default queues of the registered types.
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
