import Foundation
import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// Small conveniences shared by the queue tests.

func json(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

extension Delivery {
    var job: FetchedJob? {
        if case .job(let job) = self { return job }
        return nil
    }

    var malformedEntry: MalformedEntry? {
        if case .malformed(let entry) = self { return entry }
        return nil
    }
}

extension JobQueue {
    /// Everything ready in one queue (up to `limit`), as `consumer`.
    func fetch(_ queue: String, consumer: String = "c1", limit: Int = 100) async throws -> [Delivery] {
        try await fetchReady(FetchRequest(queues: [(queue, limit)], total: limit), consumer: consumer).deliveries
    }

    /// Like ``fetch(_:consumer:limit:)``, requiring every delivery to be a well-formed job.
    func fetchJobs(
        _ queue: String, consumer: String = "c1", limit: Int = 100, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> [FetchedJob] {
        let deliveries = try await fetch(queue, consumer: consumer, limit: limit)
        let jobs = deliveries.compactMap(\.job)
        #expect(jobs.count == deliveries.count, "malformed deliveries: \(deliveries)", sourceLocation: sourceLocation)
        return jobs
    }

    /// Enqueues `count` jobs of type `type` with payloads `{"n":0}`, `{"n":1}`, ….
    @discardableResult
    func enqueueNumbered(
        _ count: Int, queue: String, type: String = "t", options: EnqueueOptions = EnqueueOptions()
    ) async throws -> [String] {
        let requests = (0..<count).map {
            EnqueueRequest(type: type, queue: queue, json: #"{"n":\#($0)}"#, options: options)
        }
        return try await enqueue(batch: requests).map(\.id)
    }

    func stats(_ queue: String) async throws -> QueueStats {
        try await stats(queues: [queue])[0]
    }

    func acknowledge(_ jobs: [FetchedJob]) async throws {
        try await acknowledge(
            jobs.map {
                Acknowledgement(
                    queue: $0.queue, entryID: $0.entryID, jobID: $0.envelope.id, uniqueKey: $0.envelope.uniqueKey)
            })
    }

    /// The raw field maps of every entry in the queue's stream, oldest first.
    func streamEntries(_ queue: String) async throws -> [[String: String]] {
        let reply = try await redis.send("XRANGE", [.string(keys(queue).stream), "-", "+"])
        return (reply.array ?? []).map { entry in
            let flat = entry.array?.last?.array ?? []
            var fields: [String: String] = [:]
            var index = 0
            while index + 1 < flat.count {
                fields[flat[index].string ?? ""] = flat[index + 1].string ?? ""
                index += 2
            }
            return fields
        }
    }
}

/// Milliseconds since the epoch, by this machine's clock (the same as the test Redis's here).
func nowMilliseconds() -> Int64 { WallClock.system.milliseconds() }

/// Whether `id` is a UUIDv7 in canonical lowercase form.
func isUUIDv7(_ id: String) -> Bool {
    id.wholeMatch(of: /[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/) != nil
}

/// The millisecond timestamp in a UUIDv7's first 48 bits.
func uuidv7Milliseconds(_ id: String) -> Int64? {
    let hex = id.replacingOccurrences(of: "-", with: "").prefix(12)
    return Int64(hex, radix: 16)
}
