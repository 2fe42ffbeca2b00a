import Foundation
import NIOCore
import Testing

@testable import Queue

/// The envelope's wire format and job ids, without Redis.
@Suite("Job envelope and ids")
struct JobEnvelopeTests {
    @Test func jobIDsAreUUIDv7CarryingTheirTime() {
        let date = Date(timeIntervalSince1970: 1_700_000_000.125)
        let id = JobID.make(now: date)
        #expect(isUUIDv7(id), "\(id)")
        #expect(uuidv7Milliseconds(id) == 1_700_000_000_125)
        #expect(id.hasPrefix("018bcfe5-687d-7"))
        let ids = (0..<1000).map { _ in JobID.make() }
        #expect(Set(ids).count == 1000)
        #expect(ids.allSatisfy(isUUIDv7))
        // Ids made a millisecond apart sort in time order.
        let earlier = JobID.make(now: date)
        let later = JobID.make(now: date.addingTimeInterval(0.001))
        #expect(earlier < later)
    }

    @Test func fieldsRoundTripThroughTheWireForm() throws {
        let envelope = JobEnvelope(
            id: "0190a6e4-0000-7000-8000-000000000001", type: "post-status", queue: "status",
            payload: json(#"{"sha":"abc"}"#),
            attempt: 3, maxAttempts: 9, enqueuedAt: 1_700_000_000_000, timeout: 30_000, visibilityTimeout: 90_000,
            uniqueKey: "status:abc", traceparent: "00-aa-bb-01")
        var wire: [String: ByteBuffer] = [:]
        let arguments = envelope.fieldArguments
        #expect(arguments.count % 2 == 0)
        for index in stride(from: 0, to: arguments.count, by: 2) {
            guard case .string(let name) = arguments[index] else {
                Issue.record("field name \(arguments[index]) is not a string")
                continue
            }
            switch arguments[index + 1] {
            case .string(let text): wire[name] = ByteBuffer(string: text)
            case .bytes(let bytes): wire[name] = bytes
            case .int(let value): wire[name] = ByteBuffer(string: String(value))
            }
        }
        #expect(Set(wire.keys) == Set(envelope.fields.keys))
        #expect(wire.mapValues { String(buffer: $0) } == envelope.fields)
        let decoded = try JobEnvelope(fields: wire, queue: "status", fallbackID: "1-0")
        #expect(decoded == envelope)
    }

    @Test func optionalFieldsAreLeftOutAndDefaulted() throws {
        let envelope = JobEnvelope(type: "t", queue: "q", payload: json("{}"))
        #expect(
            Set(envelope.fields.keys) == ["id", "type", "queue", "payload", "attempt", "max_attempts", "enqueued_at"])
        let minimal = try JobEnvelope(
            fields: ["type": ByteBuffer(string: "t"), "payload": ByteBuffer(string: "[]"), "id": ByteBuffer()],
            queue: "q",
            fallbackID: "1700000000000-0")
        #expect(minimal.id == "1700000000000-0")
        #expect(minimal.attempt == 1)
        #expect(minimal.maxAttempts == nil)
        #expect(minimal.attemptsAllowed == JobEnvelope.defaultMaxAttempts)
        #expect(minimal.enqueuedAt == 0)
        #expect(minimal.timeout == nil)
        #expect(minimal.visibilityTimeout == nil)
        #expect(minimal.uniqueKey == nil)
        #expect(minimal.traceparent == nil)
    }

    @Test(
        "invalid fields are rejected with the field's name",
        arguments: [
            (["payload": "{}"], "type"),
            (["type": "t"], "payload"),
            (["type": "t", "payload": "{}", "attempt": "abc"], "attempt"),
            (["type": "t", "payload": "{}", "attempt": "0"], "attempt"),
            (["type": "t", "payload": "{}", "max_attempts": "x"], "max_attempts"),
            (["type": "t", "payload": "{}", "max_attempts": "0"], "max_attempts"),
            (["type": "t", "payload": "{}", "enqueued_at": "yesterday"], "enqueued_at"),
            (["type": "t", "payload": "{}", "timeout": "0"], "timeout"),
            (["type": "t", "payload": "{}", "visibility_timeout": "-1"], "visibility_timeout"),
        ])
    func invalidFields(fields: [String: String], field: String) {
        let error = #expect(throws: QueueError.self) {
            try JobEnvelope(fields: fields.mapValues { ByteBuffer(string: $0) }, queue: "q", fallbackID: "1-0")
        }
        #expect(error?.code == .invalidJob)
        #expect(error?.message.contains(field) == true, "\(String(describing: error))")
    }

    @Test func queueNames() {
        for valid in ["a", "mail", "Q-1_x.y:z", String(repeating: "n", count: 100)] {
            #expect(throws: Never.self) { try QueueName.validate(valid) }
        }
        for invalid in ["", " ", "a b", "{a}", "a\n", "ü", String(repeating: "n", count: 101)] {
            let error = #expect(throws: QueueError.self, "\(invalid)") { try QueueName.validate(invalid) }
            #expect(error?.code == .invalidQueueName)
        }
    }

    @Test func keysShareTheQueuesHashTag() {
        let keys = QueueKeys(prefix: "harrow", queue: "mail")
        #expect(keys.stream == "harrow:{mail}:stream")
        #expect(keys.delayed == "harrow:{mail}:delayed")
        #expect(keys.dead == "harrow:{mail}:dead")
        #expect(keys.paused == "harrow:{mail}:paused")
        #expect(keys.unique("k") == "harrow:{mail}:unique:k")
        #expect(keys.job("j") == "harrow:{mail}:job:j")
        let global = GlobalKeys(prefix: "harrow")
        #expect(global.queues == "harrow:queues")
        #expect(global.workers == "harrow:workers")
        #expect(global.lease("promoter") == "harrow:lease:promoter")
    }
}
