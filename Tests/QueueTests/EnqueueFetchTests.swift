import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// Lifecycle steps 1 and 2: enqueue (now or later) and fetch, without and with blocking.
@Suite("Enqueue and fetch")
struct EnqueueFetchTests {
    /// JSON around every byte value: the queue must carry payloads as bytes, not text.
    static let binaryPayload = ByteBuffer(
        bytes: Array(#"{"text":"h\u00e9llo \ud83d\ude80","raw":""#.utf8) + (0...255).map { UInt8($0) }
            + Array(#""}"#.utf8))

    @Test func enqueuedJobIsFetchedWithItsEnvelopeIntact() async throws {
        try await TestRedis.withJobQueue("enqueue-one") { queue in
            let name = TestRedis.uniqueQueueName("one")
            let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            let before = nowMilliseconds()
            let result = try await queue.enqueue(
                type: "send-mail", queue: name, payload: Self.binaryPayload,
                options: EnqueueOptions(
                    maxAttempts: 7, timeout: .seconds(90), visibilityTimeout: .milliseconds(1500),
                    traceparent: traceparent))
            let after = nowMilliseconds()
            #expect(result.enqueued)
            #expect(isUUIDv7(result.id), "\(result.id)")
            #expect(uuidv7Milliseconds(result.id).map { (before...after).contains($0) } == true)

            let deliveries = try await queue.fetch(name)
            try #require(deliveries.count == 1)
            let job = try #require(deliveries[0].job)
            #expect(job.entryID.wholeMatch(of: /[0-9]+-[0-9]+/) != nil)
            #expect(job.queue == name)
            let envelope = job.envelope
            #expect(envelope.id == result.id)
            #expect(envelope.type == "send-mail")
            #expect(envelope.queue == name)
            #expect(envelope.payload == Self.binaryPayload)
            #expect(envelope.attempt == 1)
            #expect(envelope.maxAttempts == 7)
            #expect((before...after).contains(envelope.enqueuedAt))
            #expect(envelope.timeout == 90_000)
            #expect(envelope.visibilityTimeout == 1500)
            #expect(envelope.uniqueKey == nil)
            #expect(envelope.traceparent == traceparent)

            // Delivered once: it is pending now, not ready.
            #expect(try await queue.fetch(name).isEmpty)
            #expect(try await queue.knownQueues().contains(name))
        }
    }

    @Test func batchEnqueueReturnsResultsInRequestOrder() async throws {
        try await TestRedis.withJobQueue("enqueue-batch") { queue in
            let name = TestRedis.uniqueQueueName("batch")
            let other = TestRedis.uniqueQueueName("batch-other")
            let fixedID = JobID.make()
            let requests = (0..<30).map { index -> EnqueueRequest in
                var options = EnqueueOptions()
                if index == 5 { options.id = fixedID }
                if index % 10 == 3 { options.uniqueKey = "u\(index)" }
                if index % 10 == 7 { options.runAt = nowMilliseconds() + 3_600_000 }
                return EnqueueRequest(
                    type: "t", queue: index == 29 ? other : name, json: #"{"n":\#(index)}"#, options: options)
            }
            let results = try await queue.enqueue(batch: requests)
            try #require(results.count == 30)
            #expect(results.allSatisfy { $0.enqueued })
            #expect(results[5].id == fixedID)
            #expect(results.allSatisfy { isUUIDv7($0.id) })
            #expect(Set(results.map(\.id)).count == 30)

            // Every job is where its request put it, under the id its result gave.
            let ready = try await queue.fetchJobs(name)
            let expectedReady = (0..<29).filter { $0 % 10 != 7 }
            #expect(Set(ready.map(\.envelope.id)) == Set(expectedReady.map { results[$0].id }))
            for job in ready {
                let index = try #require(results.firstIndex { $0.id == job.envelope.id })
                #expect(job.envelope.payloadString == #"{"n":\#(index)}"#)
            }
            // Plain jobs of a batch enter the stream in request order.
            let plain = ready.filter { $0.envelope.uniqueKey == nil }.map(\.envelope.id)
            #expect(plain == expectedReady.filter { $0 % 10 != 3 }.map { results[$0].id })
            #expect(try await queue.stats(name).delayed == 3)
            #expect(try await queue.fetchJobs(other).map(\.envelope.id) == [results[29].id])
            #expect(try await queue.enqueue(batch: []) == [])
        }
    }

    @Test func payloadBytesSurviveTheScriptedEnqueuePaths() async throws {
        try await TestRedis.withJobQueue("enqueue-script-bytes") { queue in
            let name = TestRedis.uniqueQueueName("bytes")
            let unique = try await queue.enqueue(
                type: "t", queue: name, payload: Self.binaryPayload, options: EnqueueOptions(uniqueKey: "k"))
            let delayed = try await queue.enqueue(
                type: "t", queue: name, payload: Self.binaryPayload,
                options: EnqueueOptions(delay: .milliseconds(300)))
            try await eventually("the delayed job is promoted") { try await queue.promoteDue(queue: name).moved == 1 }
            let jobs = try await queue.fetchJobs(name)
            #expect(Set(jobs.map(\.envelope.id)) == [unique.id, delayed.id])
            #expect(jobs.allSatisfy { $0.envelope.payload == Self.binaryPayload })
        }
    }

    /// `deduplicateFor` adds a job id once: a retried enqueue whose answer was lost (the
    /// outbox relay's case) adds nothing, now or delayed, until the marker expires.
    @Test func aDeduplicatedEnqueueAddsEachIdOnce() async throws {
        try await TestRedis.withJobQueue("enqueue-dedupe") { queue in
            let name = TestRedis.uniqueQueueName("dedupe")
            let options = EnqueueOptions(id: "job-1", deduplicateFor: .seconds(30))
            let request = EnqueueRequest(type: "t", queue: name, json: #"{"n":1}"#, options: options)
            let results = try await queue.enqueue(batch: [request, request])
            #expect(results.map(\.enqueued) == [true, false])
            #expect(results.map(\.id) == ["job-1", "job-1"])
            var delayed = options
            delayed.runAt = WallClock.system.milliseconds() + 60_000
            #expect(try await queue.enqueue(EnqueueRequest(type: "t", queue: name, json: "{}", options: delayed)).enqueued == false)
            var stats = try await queue.stats(name)
            #expect(stats.ready == 1 && stats.delayed == 0)
            // The marker lives as long as asked; once it is gone the id may be added again.
            let marker = queue.keys(name).enqueued("job-1")
            let ttl = try await queue.redis.send("PTTL", [.string(marker)]).int ?? -1
            #expect(ttl > 25_000 && ttl <= 30_000)
            _ = try await queue.redis.send("DEL", [.string(marker)])
            #expect(try await queue.enqueue(request).enqueued)
            stats = try await queue.stats(name)
            #expect(stats.ready == 2)

            let noID = await #expect(throws: QueueError.self) {
                try await queue.enqueue(
                    EnqueueRequest(type: "t", queue: name, json: "{}", options: EnqueueOptions(deduplicateFor: .seconds(1))))
            }
            #expect(noID?.code == .invalidJob)
        }
    }

    @Test func invalidRequestsAreRejectedBeforeAnythingIsSent() async throws {
        try await TestRedis.withJobQueue("enqueue-invalid") { queue in
            let name = TestRedis.uniqueQueueName("valid")
            let valid = EnqueueRequest(type: "t", queue: name, json: "{}")
            for badName in ["", "has space", "brace{s}", "tab\t", "é", String(repeating: "q", count: 101)] {
                let error = await #expect(throws: QueueError.self, "\(badName)") {
                    try await queue.enqueue(batch: [valid, EnqueueRequest(type: "t", queue: badName, json: "{}")])
                }
                #expect(error?.code == .invalidQueueName)
            }
            let noType = await #expect(throws: QueueError.self) {
                try await queue.enqueue(batch: [valid, EnqueueRequest(type: "", queue: name, json: "{}")])
            }
            #expect(noType?.code == .invalidJob)
            let noAttempts = await #expect(throws: QueueError.self) {
                try await queue.enqueue(
                    batch: [
                        valid,
                        EnqueueRequest(type: "t", queue: name, json: "{}", options: EnqueueOptions(maxAttempts: 0)),
                    ])
            }
            #expect(noAttempts?.code == .invalidJob)
            let stats = try await queue.stats(name)
            #expect(stats.ready == 0)
            // The longest valid name and every allowed character are fine.
            let longest = String(repeating: "q", count: 90) + "-_.:AZaz09"
            let result = try await queue.enqueue(type: "t", queue: longest, payload: json("{}"))
            #expect(result.enqueued)
        }
    }

    /// ``JobQueue`` remembers which queues it registered (SADD `queues` + XGROUP CREATE) to
    /// skip that on later enqueues. It marks them registered before the batch is validated and
    /// sent, so when the batch fails, its queues are never registered by this process: they
    /// are missing from ``JobQueue/knownQueues()``, which the dead-worker reclaimer and
    /// `queue-inspect` go by.
    @Test func aRejectedBatchDoesNotLeaveItsQueuesUnregistered() async throws {
        try await TestRedis.withJobQueue("enqueue-registration") { queue in
            let name = TestRedis.uniqueQueueName("registered")
            await #expect(throws: QueueError.self) {
                try await queue.enqueue(batch: [
                    EnqueueRequest(type: "t", queue: name, json: "{}"),
                    EnqueueRequest(type: "t", queue: "not valid", json: "{}"),
                ])
            }
            try await queue.enqueue(type: "t", queue: name, payload: json("{}"))
            #expect(try await queue.knownQueues().contains(name))
        }
    }

    @Test func prepareRegistersQueuesAndIsIdempotent() async throws {
        try await TestRedis.withJobQueue("prepare") { queue in
            let names = [TestRedis.uniqueQueueName("p1"), TestRedis.uniqueQueueName("p2")]
            try await queue.prepare(queues: names)
            try await queue.prepare(queues: names)
            #expect(try await queue.knownQueues() == names.sorted())
            let groups = try await queue.redis.send("XINFO", ["GROUPS", .string(queue.keys(names[0]).stream)])
            #expect(groups.array?.count == 1)
            await #expect(throws: QueueError.self) { try await queue.prepare(queues: ["bad name"]) }
        }
    }

    @Test func delayedJobIsNotFetchableBeforeItIsDueAndIsAfterPromotion() async throws {
        try await TestRedis.withJobQueue("delayed") { queue in
            let name = TestRedis.uniqueQueueName("delayed")
            let later = try await queue.enqueue(
                type: "later", queue: name, payload: json(#"{"a":1}"#), options: .delayed(by: .seconds(3600)))
            #expect(later.enqueued)
            #expect(try await queue.fetch(name).isEmpty)
            var stats = try await queue.stats(name)
            #expect(stats.delayed == 1)
            #expect(stats.ready == 0)
            let promotion = try await queue.promoteDue(queue: name)
            #expect(promotion.moved == 0)
            let wait = try #require(promotion.nextDueIn)
            #expect(wait > .seconds(3500) && wait <= .seconds(3600))
            #expect(try await queue.fetch(name).isEmpty)

            let soon = try await queue.enqueue(
                type: "soon", queue: name, payload: json(#"{"b":2}"#), options: .delayed(by: .milliseconds(100)))
            try await eventually("the job due in 100 ms is promoted") {
                try await queue.promoteDue(queue: name).moved == 1
            }
            let jobs = try await queue.fetchJobs(name)
            try #require(jobs.count == 1)
            #expect(jobs[0].envelope.id == soon.id)
            #expect(jobs[0].envelope.type == "soon")
            #expect(jobs[0].envelope.payloadString == #"{"b":2}"#)
            #expect(jobs[0].envelope.attempt == 1)
            stats = try await queue.stats(name)
            #expect(stats.delayed == 1)
            #expect(try await queue.find(queue: name, id: soon.id)?.state == .pending)
            // Promoting removes the job's hash: only the one still waiting keeps one.
            #expect(try await queue.redis.send("EXISTS", [.string(queue.keys(name).job(soon.id))]) == .integer(0))
            #expect(try await queue.redis.send("EXISTS", [.string(queue.keys(name).job(later.id))]) == .integer(1))
        }
    }

    @Test func runAtInThePastEnqueuesForNow() async throws {
        try await TestRedis.withJobQueue("run-at-past") { queue in
            let name = TestRedis.uniqueQueueName("past")
            let result = try await queue.enqueue(
                type: "t", queue: name, payload: json("{}"), options: EnqueueOptions(runAt: nowMilliseconds() - 60_000))
            #expect(try await queue.fetchJobs(name).map(\.envelope.id) == [result.id])
            #expect(try await queue.stats(name).delayed == 0)
        }
    }

    @Test func promoteRespectsItsLimit() async throws {
        try await TestRedis.withJobQueue("promote-limit") { queue in
            let name = TestRedis.uniqueQueueName("limit")
            try await queue.enqueueNumbered(5, queue: name, options: EnqueueOptions(delay: .milliseconds(300)))
            try await eventually("all five are due") {
                try await queue.promoteDue(queue: name, limit: 0).nextDueIn == .zero
            }
            #expect(try await queue.promoteDue(queue: name, limit: 2) == (2, .zero))
            #expect(try await queue.promoteDue(queue: name, limit: 10).moved == 3)
            #expect(try await queue.promoteDue(queue: name).nextDueIn == nil)
            #expect(try await queue.fetchJobs(name).count == 5)
        }
    }

    @Test func fetchBlockingReturnsAJobEnqueuedWhileItWaits() async throws {
        try await TestRedis.withJobQueue("fetch-blocking") { queue in
            let name = TestRedis.uniqueQueueName("blocking")
            try await queue.prepare(queues: [name])
            let connection = try await queue.redis.makeDedicatedConnection(forKey: queue.keys(name).stream)
            let fetch = Task {
                try await queue.fetchBlocking(
                    queues: [name], count: 5, block: .seconds(10), consumer: "c1", connection: connection)
            }
            try await Task.sleep(for: .milliseconds(100))
            let id = try await queue.enqueue(type: "t", queue: name, payload: json(#"{"x":1}"#)).id
            let deliveries = try await withDeadline(.seconds(15), "blocking fetch") { try await fetch.value }
            #expect(deliveries.compactMap(\.job).map(\.envelope.id) == [id])
            #expect(deliveries.first?.job?.envelope.payloadString == #"{"x":1}"#)
            #expect(try await queue.stats(name).pending == 1)
            await connection.close()
        }
    }

    /// A queue on a private single Redis: one blocking read over several queues is a
    /// single-server feature (a cluster refuses it, see ClusterRoutingTests), so these tests run
    /// on one whatever `REDIS_URL` names.
    static func withSingleServerQueue(_ body: (JobQueue) async throws -> Void) async throws {
        try await RedisServerProcess.withServer { server in
            let client = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            do {
                try await body(JobQueue(redis: client))
                await client.close()
            } catch {
                await client.close()
                throw error
            }
        }
    }

    @Test func fetchBlockingReturnsNothingAfterTheBlockTime() async throws {
        try await Self.withSingleServerQueue { queue in
            let names = [TestRedis.uniqueQueueName("empty-1"), TestRedis.uniqueQueueName("empty-2")]
            try await queue.prepare(queues: names)
            let connection = try await queue.redis.makeDedicatedConnection()
            let deliveries = try await queue.fetchBlocking(
                queues: names, count: 5, block: .milliseconds(200), consumer: "c1", connection: connection)
            #expect(deliveries.isEmpty)
            #expect(
                try await queue.fetchBlocking(
                    queues: [], count: 5, block: .seconds(5), consumer: "c1", connection: connection
                ).isEmpty)
            await connection.close()
        }
    }

    @Test func fetchBlockingTakesUpToCountFromEachQueue() async throws {
        try await Self.withSingleServerQueue { queue in
            let first = TestRedis.uniqueQueueName("first")
            let second = TestRedis.uniqueQueueName("second")
            let firstIDs = try await queue.enqueueNumbered(3, queue: first)
            let secondIDs = try await queue.enqueueNumbered(1, queue: second)
            let connection = try await queue.redis.makeDedicatedConnection()
            let deliveries = try await queue.fetchBlocking(
                queues: [first, second], count: 2, block: .seconds(1), consumer: "c1", connection: connection)
            let jobs = deliveries.compactMap(\.job)
            #expect(jobs.filter { $0.queue == first }.map(\.envelope.id) == Array(firstIDs.prefix(2)))
            #expect(jobs.filter { $0.queue == second }.map(\.envelope.id) == secondIDs)
            await connection.close()
        }
    }

    /// `block` is how long to wait at most; Redis reads `BLOCK 0` as "forever", so a zero (or
    /// sub-millisecond) block must not be sent as `BLOCK 0`. Here the connection's command
    /// timeout (1 s) ends the wait that should not have started.
    @Test func fetchBlockingWithZeroBlockDoesNotWaitForever() async throws {
        try await TestRedis.withJobQueue("fetch-blocking-zero", configure: { $0.commandTimeout = .seconds(1) }) {
            queue in
            let name = TestRedis.uniqueQueueName("zero")
            try await queue.prepare(queues: [name])
            let connection = try await queue.redis.makeDedicatedConnection(forKey: queue.keys(name).stream)
            let deliveries = try await withDeadline(.seconds(10), "fetch with block 0") {
                try await queue.fetchBlocking(
                    queues: [name], count: 1, block: .zero, consumer: "c1", connection: connection)
            }
            #expect(deliveries.isEmpty)
            await connection.close()
        }
    }

    @Test func fetchTakesQueuesInPriorityOrderWithinTheirLimitsAndTheTotal() async throws {
        try await TestRedis.withJobQueue("fetch-priority") { queue in
            let high = TestRedis.uniqueQueueName("high")
            let empty = TestRedis.uniqueQueueName("empty")
            let medium = TestRedis.uniqueQueueName("medium")
            let low = TestRedis.uniqueQueueName("low")
            let highIDs = try await queue.enqueueNumbered(3, queue: high)
            let mediumIDs = try await queue.enqueueNumbered(3, queue: medium)
            let lowIDs = try await queue.enqueueNumbered(3, queue: low)
            let request = FetchRequest(queues: [(high, 2), (empty, 5), (medium, 5), (low, 5)], total: 4)

            let first = try await queue.fetchReady(request, consumer: "c1")
            #expect(first.paused.isEmpty)
            #expect(
                first.deliveries.compactMap(\.job).map(\.envelope.id) == Array(highIDs.prefix(2) + mediumIDs.prefix(2)))
            #expect(first.deliveries.map(\.queue) == [high, high, medium, medium])

            let second = try await queue.fetchReady(request, consumer: "c1")
            #expect(
                second.deliveries.compactMap(\.job).map(\.envelope.id) == [highIDs[2], mediumIDs[2]] + lowIDs.prefix(2))

            let none = try await queue.fetchReady(FetchRequest(queues: [(low, 5)], total: 0), consumer: "c1")
            #expect(none.deliveries.isEmpty)
            // One queue at a limit of 0 takes nothing (`XREADGROUP COUNT 0` would take all).
            let capped = try await queue.fetchReady(FetchRequest(queues: [(low, 0)], total: 5), consumer: "c1")
            #expect(capped.deliveries.isEmpty)
            let last = try await queue.fetchReady(
                FetchRequest(queues: [(low, 0), (high, 5)], total: 5), consumer: "c1")
            #expect(last.deliveries.isEmpty)
            #expect(try await queue.fetch(low).compactMap(\.job).map(\.envelope.id) == [lowIDs[2]])
        }
    }

    @Test func malformedEntriesComeBackAsMalformedWithAReason() async throws {
        try await TestRedis.withJobQueue("malformed") { queue in
            let name = TestRedis.uniqueQueueName("malformed")
            let stream = queue.keys(name).stream
            try await queue.redis.send("XADD", [.string(stream), "*", "garbage", "1"])
            try await queue.redis.send("XADD", [.string(stream), "*", "type", "t", "payload", "{}", "attempt", "abc"])
            try await queue.redis.send(
                "XADD", [.string(stream), "*", "type", "t", "payload", "{}", "max_attempts", "0"])
            try await queue.redis.send("XADD", [.string(stream), "*", "type", "t", "payload", "{}", "timeout", "-5"])
            try await queue.redis.send("XADD", [.string(stream), "*", "type", "", "payload", "{}"])
            try await queue.redis.send("XADD", [.string(stream), "*", "type", "t"])
            // The documented minimal wire format: another language enqueues with a plain XADD.
            let minimalEntry = try await queue.redis.send(
                "XADD", [.string(stream), "*", "type", "hello", "payload", #"{"x":1}"#])

            let deliveries = try await queue.fetch(name)
            try #require(deliveries.count == 7)
            let malformed = deliveries.prefix(6).compactMap(\.malformedEntry)
            try #require(malformed.count == 6, "\(deliveries)")
            for (entry, word) in zip(malformed, ["type", "attempt", "max_attempts", "timeout", "type", "payload"]) {
                #expect(entry.queue == name)
                #expect(entry.reason.hasPrefix("malformed job entry"))
                #expect(entry.reason.contains(word), "\(entry.reason) should name \(word)")
            }
            #expect(malformed[0].fields == ["garbage": "1"])
            #expect(malformed[1].fields["attempt"] == "abc")

            let minimal = try #require(deliveries[6].job)
            #expect(minimal.entryID == minimalEntry.string)
            #expect(minimal.envelope.id == minimalEntry.string)
            #expect(minimal.envelope.type == "hello")
            #expect(minimal.envelope.payloadString == #"{"x":1}"#)
            #expect(minimal.envelope.attempt == 1)
            // No max_attempts: the worker gives it its type's policy.
            #expect(minimal.envelope.maxAttempts == nil)
            #expect(minimal.envelope.attemptsAllowed == JobEnvelope.defaultMaxAttempts)

            // A malformed entry can be dead-lettered with its raw fields.
            #expect(
                try await queue.deadLetter(
                    queue: name, entryID: malformed[0].entryID, fields: malformed[0].fields, error: malformed[0].reason,
                    worker: "c1"))
            let letters = try await queue.deadLetters(queue: name)
            #expect(letters.first?.fields == ["garbage": "1"])
            #expect(letters.first?.error == malformed[0].reason)
        }
    }

    @Test func fetchRecreatesAStreamAndGroupThatVanished() async throws {
        try await TestRedis.withJobQueue("nogroup") { queue in
            let name = TestRedis.uniqueQueueName("nogroup")
            let stream = queue.keys(name).stream
            try await queue.enqueue(type: "t", queue: name, payload: json("{}"))
            try await queue.acknowledge(try await queue.fetchJobs(name))

            try await queue.redis.send("DEL", [.string(stream)])
            #expect(try await queue.fetch(name).isEmpty)
            let afterDelete = try await queue.enqueue(type: "t", queue: name, payload: json("{}")).id
            #expect(try await queue.fetchJobs(name).map(\.envelope.id) == [afterDelete])

            try await queue.redis.send("DEL", [.string(stream)])
            let connection = try await queue.redis.makeDedicatedConnection(forKey: queue.keys(name).stream)
            #expect(
                try await queue.fetchBlocking(
                    queues: [name], count: 1, block: .milliseconds(50), consumer: "c1", connection: connection
                )
                .isEmpty)
            try await queue.redis.send("DEL", [.string(stream)])
            let id = try await queue.enqueue(type: "t", queue: name, payload: json("{}")).id
            let deliveries = try await queue.fetchBlocking(
                queues: [name], count: 1, block: .milliseconds(500), consumer: "c1", connection: connection)
            #expect(deliveries.compactMap(\.job).map(\.envelope.id) == [id])
            await connection.close()
        }
    }
}
