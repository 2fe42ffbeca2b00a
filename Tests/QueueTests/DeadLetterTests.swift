import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// Lifecycle step 5 and what follows: dead letters, their cap, retrying and purging them.
@Suite("Dead letters")
struct DeadLetterTests {
    @Test func deadLetterRecordsTheJobTheErrorTheWorkerAndTheTime() async throws {
        try await TestRedis.withJobQueue("dead") { queue in
            let name = TestRedis.uniqueQueueName("dead")
            let id = try await queue.enqueue(
                type: "doomed", queue: name, payload: json(#"{"to":"a@b.c"}"#), options: EnqueueOptions(maxAttempts: 3)
            ).id
            let job = try #require(try await queue.fetchJobs(name).first)
            let before = nowMilliseconds()
            #expect(
                try await queue.deadLetter(
                    queue: name, entryID: job.entryID, fields: job.envelope.fields,
                    error: "SMTP 550: mailbox unavailable",
                    worker: "worker-7"))
            let after = nowMilliseconds()

            let stats = try await queue.stats(name)
            #expect(stats.dead == 1)
            #expect(stats.pending == 0)
            #expect(stats.ready == 0)
            #expect(try await queue.redis.send("XLEN", [.string(queue.keys(name).stream)]) == .integer(0))

            let letter = try #require(try await queue.deadLetters(queue: name).first)
            #expect(letter.id == id)
            #expect(letter.type == "doomed")
            #expect(letter.payload == #"{"to":"a@b.c"}"#)
            #expect(letter.attempt == 1)
            #expect(letter.fields == job.envelope.fields)
            #expect(letter.error == "SMTP 550: mailbox unavailable")
            #expect(letter.worker == "worker-7")
            #expect((before...after).contains(letter.failedAt))

            let found = try #require(try await queue.find(queue: name, id: id))
            #expect(found.state == .dead)
            #expect(found.deadLetter?.error == "SMTP 550: mailbox unavailable")

            // The entry is no longer this worker's: a second dead-letter changes nothing.
            #expect(
                try await queue.deadLetter(
                    queue: name, entryID: job.entryID, fields: job.envelope.fields, error: "x", worker: "w")
                    == false)
            #expect(try await queue.stats(name).dead == 1)
        }
    }

    @Test func deadLettersAreCappedKeepingTheNewest() async throws {
        try await TestRedis.withJobQueue("dead-cap", options: JobQueue.Options(deadLetterLimit: 3)) { queue in
            let name = TestRedis.uniqueQueueName("dead-cap")
            let ids = try await queue.enqueueNumbered(5, queue: name)
            for job in try await queue.fetchJobs(name) {
                #expect(
                    try await queue.deadLetter(
                        queue: name, entryID: job.entryID, fields: job.envelope.fields,
                        error: "failed \(job.envelope.id)",
                        worker: "w"))
            }
            #expect(try await queue.stats(name).dead == 3)
            let letters = try await queue.deadLetters(queue: name)
            #expect(letters.map(\.id) == Array(ids.suffix(3).reversed()))
            #expect(letters.map(\.error) == ids.suffix(3).reversed().map { "failed \($0)" } as [String])
            #expect(try await queue.deadLetters(queue: name, offset: 1, limit: 1).map(\.id) == [ids[3]])
        }
    }

    @Test func retryDeadPutsOneJobBackWithAFreshAttempt() async throws {
        try await TestRedis.withJobQueue("retry-dead") { queue in
            let name = TestRedis.uniqueQueueName("retry-dead")
            let ids = try await deadLetterJobs(3, on: queue, name: name, maxAttempts: 4)

            #expect(try await queue.retryDead(queue: name, id: ids[1]))
            #expect(try await queue.retryDead(queue: name, id: ids[1]) == false)
            #expect(try await queue.retryDead(queue: name, id: "no-such-job") == false)
            #expect(try await queue.deadLetters(queue: name).map(\.id) == [ids[2], ids[0]])

            let jobs = try await queue.fetchJobs(name)
            try #require(jobs.count == 1)
            #expect(jobs[0].envelope.id == ids[1])
            #expect(jobs[0].envelope.attempt == 1)
            #expect(jobs[0].envelope.maxAttempts == 4)
            #expect(jobs[0].envelope.payloadString == #"{"n":1}"#)
            #expect(jobs[0].envelope.type == "t")
            // The dead-letter fields do not travel with the job.
            let fields = try await queue.streamEntries(name)
            #expect(fields.first?["error"] == nil)
            #expect(fields.first?["worker"] == nil)
            #expect(fields.first?["failed_at"] == nil)
        }
    }

    @Test func retryAllDeadPutsEveryReadableJobBackOldestFirst() async throws {
        try await TestRedis.withJobQueue("retry-all-dead") { queue in
            let name = TestRedis.uniqueQueueName("retry-all")
            let ids = try await deadLetterJobs(4, on: queue, name: name, maxAttempts: 3)
            try await queue.redis.send("LPUSH", [.string(queue.keys(name).dead), "this is not json"])

            #expect(try await queue.retryAllDead(queue: name) == 4)
            let letters = try await queue.deadLetters(queue: name)
            #expect(letters.count == 1)
            #expect(letters.first?.raw == "this is not json")
            #expect(letters.first?.error == "unreadable dead letter")

            let jobs = try await queue.fetchJobs(name)
            #expect(jobs.map(\.envelope.id) == ids)
            #expect(jobs.allSatisfy { $0.envelope.attempt == 1 && $0.envelope.maxAttempts == 3 })
            #expect(jobs.map(\.envelope.payloadString) == (0..<4).map { #"{"n":\#($0)}"# })
            #expect(try await queue.retryAllDead(queue: name) == 0)
        }
    }

    @Test func retryAllDeadHandlesMoreThanOneBatch() async throws {
        try await TestRedis.withJobQueue("retry-all-many") { queue in
            let name = TestRedis.uniqueQueueName("retry-many")
            // 1500 dead letters (written directly: the batch size of the retry is 1000).
            let records = (0..<1500).map { index in
                DeadLetter.encode(
                    fields: ["id": "job-\(index)", "type": "t", "payload": "{}", "attempt": "9"], error: "e",
                    failedAt: 1, worker: "w")
            }
            try await queue.redis.send("RPUSH", [.string(queue.keys(name).dead)] + records.map { .string($0) })
            #expect(try await queue.retryAllDead(queue: name) == 1500)
            #expect(try await queue.stats(name).dead == 0)
            #expect(try await queue.redis.send("XLEN", [.string(queue.keys(name).stream)]) == .integer(1500))
        }
    }

    /// The retry script takes up to 1000 records a call and keeps unreadable ones;
    /// ``JobQueue/retryAllDead(queue:)`` stops as soon as a call retried fewer than 1000. One
    /// unreadable record among the first 1000 therefore ends the loop early, and every dead
    /// letter beyond them stays dead although the call promises to retry them all.
    @Test func retryAllDeadIsNotStoppedEarlyByAnUnreadableRecord() async throws {
        try await TestRedis.withJobQueue("retry-all-unreadable") { queue in
            let name = TestRedis.uniqueQueueName("retry-unreadable")
            let records = (0..<1499).map { index in
                DeadLetter.encode(
                    fields: ["id": "job-\(index)", "type": "t", "payload": "{}", "attempt": "9"], error: "e",
                    failedAt: 1, worker: "w")
            }
            // Oldest at the tail: the unreadable record is the oldest of all.
            try await queue.redis.send(
                "RPUSH", [.string(queue.keys(name).dead)] + records.map { .string($0) } + ["not json"])
            #expect(try await queue.retryAllDead(queue: name) == 1499)
            #expect(try await queue.deadLetters(queue: name).map(\.raw) == ["not json"])
        }
    }

    @Test func purgeDeadDeletesEveryDeadLetter() async throws {
        try await TestRedis.withJobQueue("purge-dead") { queue in
            let name = TestRedis.uniqueQueueName("purge")
            try await deadLetterJobs(3, on: queue, name: name)
            #expect(try await queue.purgeDead(queue: name) == 3)
            #expect(try await queue.stats(name).dead == 0)
            #expect(try await queue.deadLetters(queue: name).isEmpty)
            #expect(try await queue.purgeDead(queue: name) == 0)
        }
    }

    @Test func deadLetterDecodesWhatItEncodes() {
        let raw = DeadLetter.encode(
            fields: ["id": "j1", "type": "t", "payload": #"{"a":"\"q\""}"#, "attempt": "3", "unique_key": "u"],
            error: "boom\nline two", failedAt: 1_700_000_000_123, worker: "w-1")
        let letter = DeadLetter(raw: raw)
        #expect(
            letter.fields == ["id": "j1", "type": "t", "payload": #"{"a":"\"q\""}"#, "attempt": "3", "unique_key": "u"])
        #expect(letter.error == "boom\nline two")
        #expect(letter.failedAt == 1_700_000_000_123)
        #expect(letter.worker == "w-1")
        #expect(letter.raw == raw)
        #expect(letter.attempt == 3)

        let unreadable = DeadLetter(raw: "[1,2")
        #expect(unreadable.payload == "[1,2")
        #expect(unreadable.error == "unreadable dead letter")
        #expect(unreadable.id == "")
    }

    /// Enqueues `count` jobs, fetches them and dead-letters each, oldest first. Returns their ids.
    @discardableResult
    func deadLetterJobs(_ count: Int, on queue: JobQueue, name: String, maxAttempts: Int = 25) async throws -> [String] {
        let ids = try await queue.enqueueNumbered(count, queue: name, options: EnqueueOptions(maxAttempts: maxAttempts))
        for job in try await queue.fetchJobs(name) {
            try await queue.deadLetter(
                queue: name, entryID: job.entryID, fields: job.envelope.fields, error: "e", worker: "w")
        }
        #expect(try await queue.stats(name).dead == count)
        return ids
    }
}
