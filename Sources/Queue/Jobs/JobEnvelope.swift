import FoundationEssentials
import NIOCore

/// A job as it travels through Redis: the stream entry's fields.
///
/// On the wire (README, "Wire format") every field is a string; `payload` is JSON; times and
/// durations are integer milliseconds. Only `type` and `payload` are required, so another
/// language can enqueue with a plain `XADD harrow:{q}:stream * type T payload {}`.
public struct JobEnvelope: Sendable, Hashable {
    /// UUIDv7; for an entry added without one, the stream entry id.
    public var id: String
    public var type: String
    public var queue: String
    /// The job's JSON, kept as bytes until a handler decodes it.
    public var payload: ByteBuffer
    /// Which run this is, from 1.
    public var attempt: Int
    /// How many runs are allowed before the job is dead-lettered; `nil` (a job added without
    /// the field) takes its type's policy, else ``defaultMaxAttempts``.
    public var maxAttempts: Int?
    /// When the job was first enqueued (ms since the epoch).
    public var enqueuedAt: Int64
    /// How long one run may take, in milliseconds; `nil` uses the job type's default.
    public var timeout: Int64?
    /// How long an in-flight job may go without a heartbeat before it is redelivered (ms);
    /// `nil` uses ``JobQueue/Options/defaultVisibilityTimeout``.
    public var visibilityTimeout: Int64?
    public var uniqueKey: String?
    /// W3C trace context of whoever enqueued the job.
    public var traceparent: String?

    public static let defaultMaxAttempts = 25
    /// The most runs a job may have: beyond it, backoffs overflow.
    public static let maximumAttempts = 1000
    /// The most fields an entry may have (Redis's Lua cannot re-add a much larger one).
    public static let maximumFieldCount = 64

    public init(
        id: String = JobID.make(),
        type: String,
        queue: String,
        payload: ByteBuffer,
        attempt: Int = 1,
        maxAttempts: Int? = JobEnvelope.defaultMaxAttempts,
        enqueuedAt: Int64 = WallClock.system.milliseconds(),
        timeout: Int64? = nil,
        visibilityTimeout: Int64? = nil,
        uniqueKey: String? = nil,
        traceparent: String? = nil
    ) {
        self.id = id
        self.type = type
        self.queue = queue
        self.payload = payload
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.enqueuedAt = enqueuedAt
        self.timeout = timeout
        self.visibilityTimeout = visibilityTimeout
        self.uniqueKey = uniqueKey
        self.traceparent = traceparent
    }

    /// The runs allowed: ``maxAttempts``, else ``defaultMaxAttempts``.
    public var attemptsAllowed: Int { maxAttempts ?? Self.defaultMaxAttempts }

    /// The payload as text (for display).
    public var payloadString: String { String(buffer: payload) }

    /// The envelope as alternating field names and values, as XADD and HSET take them.
    public var fieldArguments: [RESPArgument] {
        var arguments: [RESPArgument] = [
            "id", .string(id), "type", .string(type), "queue", .string(queue), "payload", .bytes(payload),
            "attempt", .int(attempt), "enqueued_at", .int(Int(enqueuedAt)),
        ]
        if let maxAttempts { arguments += ["max_attempts", .int(maxAttempts)] }
        if let timeout { arguments += ["timeout", .int(Int(timeout))] }
        if let visibilityTimeout { arguments += ["visibility_timeout", .int(Int(visibilityTimeout))] }
        if let uniqueKey { arguments += ["unique_key", .string(uniqueKey)] }
        if let traceparent { arguments += ["traceparent", .string(traceparent)] }
        return arguments
    }

    /// Appends `XADD <stream> * <fields>` for this envelope to `pipeline`, writing the fields in
    /// place (the batch enqueue's hot path).
    public func appendXADD(to pipeline: inout RedisPipeline, stream: String) {
        var count = 2 + 12
        if maxAttempts != nil { count += 2 }
        if timeout != nil { count += 2 }
        if visibilityTimeout != nil { count += 2 }
        if uniqueKey != nil { count += 2 }
        if traceparent != nil { count += 2 }
        pipeline.append("XADD", key: stream, argumentCount: count) { writer in
            writer.write(stream)
            writer.write("*")
            writer.write("id")
            writer.write(id)
            writer.write("type")
            writer.write(type)
            writer.write("queue")
            writer.write(queue)
            writer.write("payload")
            writer.write(payload)
            writer.write("attempt")
            writer.write(attempt)
            writer.write("enqueued_at")
            writer.write(Int(enqueuedAt))
            if let maxAttempts {
                writer.write("max_attempts")
                writer.write(maxAttempts)
            }
            if let timeout {
                writer.write("timeout")
                writer.write(Int(timeout))
            }
            if let visibilityTimeout {
                writer.write("visibility_timeout")
                writer.write(Int(visibilityTimeout))
            }
            if let uniqueKey {
                writer.write("unique_key")
                writer.write(uniqueKey)
            }
            if let traceparent {
                writer.write("traceparent")
                writer.write(traceparent)
            }
        }
    }

    /// The envelope as a string map, the form dead letters keep.
    public var fields: [String: String] {
        var fields: [String: String] = [
            "id": id, "type": type, "queue": queue, "payload": payloadString, "attempt": String(attempt),
            "enqueued_at": String(enqueuedAt),
        ]
        if let maxAttempts { fields["max_attempts"] = String(maxAttempts) }
        if let timeout { fields["timeout"] = String(timeout) }
        if let visibilityTimeout { fields["visibility_timeout"] = String(visibilityTimeout) }
        if let uniqueKey { fields["unique_key"] = uniqueKey }
        if let traceparent { fields["traceparent"] = traceparent }
        return fields
    }

    /// Reads an envelope from a stream entry's or hash's fields.
    ///
    /// - Parameters:
    ///   - fallbackID: the id to use when the entry has none (the stream entry id).
    /// - Throws: a ``QueueError`` with code `invalidJob` saying which field is wrong.
    public init(fields: [String: ByteBuffer], queue: String, fallbackID: String) throws(QueueError) {
        func invalid(_ why: String) -> QueueError {
            QueueError(code: .invalidJob, message: "malformed job entry: \(why)")
        }
        func text(_ name: String) -> String? { fields[name].map { String(buffer: $0) } }
        func integer(_ name: String) throws(QueueError) -> Int64? {
            guard let value = text(name) else { return nil }
            guard let number = Int64(value) else { throw invalid("field \(name) is not an integer") }
            return number
        }
        guard let type = text("type"), !type.isEmpty else { throw invalid("missing field type") }
        guard let payload = fields["payload"] else { throw invalid("missing field payload") }
        self.id = text("id").flatMap { $0.isEmpty ? nil : $0 } ?? fallbackID
        self.type = type
        self.queue = queue
        self.payload = payload
        self.attempt = Int(try integer("attempt") ?? 1)
        self.maxAttempts = try integer("max_attempts").map { Int($0) }
        self.enqueuedAt = try integer("enqueued_at") ?? 0
        self.timeout = try integer("timeout")
        self.visibilityTimeout = try integer("visibility_timeout")
        self.uniqueKey = text("unique_key")
        self.traceparent = text("traceparent")
        guard fields.count <= Self.maximumFieldCount else {
            throw invalid("\(fields.count) fields; a job has at most \(Self.maximumFieldCount)")
        }
        guard attempt >= 1 else { throw invalid("attempt must be at least 1") }
        // Bounded so backoff arithmetic (attempt⁴ seconds, in ms) cannot overflow.
        guard attempt <= Self.maximumAttempts else { throw invalid("attempt must be at most \(Self.maximumAttempts)") }
        if let maxAttempts, maxAttempts > Self.maximumAttempts {
            throw invalid("max_attempts must be at most \(Self.maximumAttempts)")
        }
        guard enqueuedAt >= 0 else { throw invalid("enqueued_at must not be negative") }
        if let maxAttempts, maxAttempts < 1 { throw invalid("max_attempts must be at least 1") }
        if let timeout, timeout <= 0 { throw invalid("timeout must be positive") }
        if let visibilityTimeout, visibilityTimeout <= 0 { throw invalid("visibility_timeout must be positive") }
    }
}

extension Dictionary where Key == String, Value == ByteBuffer {
    /// Builds a field map from a flat `[name, value, name, value, …]` reply.
    init?(flatReply values: [RESPValue]) {
        guard values.count % 2 == 0 else { return nil }
        self.init(minimumCapacity: values.count / 2)
        var index = 0
        while index < values.count {
            guard let name = values[index].string, let value = values[index + 1].bytes else { return nil }
            self[name] = value
            index += 2
        }
    }
}
