import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// The samples behind the dashboard's throughput chart, and their minutes.
@Suite("Throughput")
struct ThroughputTests {
    @Test func samplesCountWhatEnteredAndLeftTheStream() async throws {
        try await TestRedis.withJobQueue("throughput") { queue in
            let name = TestRedis.uniqueQueueName("throughput")
            let never = TestRedis.uniqueQueueName("throughput-none")
            // A queue whose stream does not exist yet is skipped, not an error.
            try await queue.sampleThroughput(queues: [never])
            #expect(try await queue.redis.send("EXISTS", [.string(queue.keys(never).throughput)]).int == 0)

            try await queue.enqueueNumbered(1, queue: name)
            try await queue.sampleThroughput(queues: [name])
            try await queue.enqueueNumbered(3, queue: name)
            let jobs = try await queue.fetchJobs(name, consumer: "c1", limit: 2)
            try await queue.acknowledge(jobs)
            try await queue.sampleThroughput(queues: [name])

            let minutes = try #require(try await queue.throughput(queues: [name, never])[name])
            #expect(minutes.count == 60)
            let current = try #require(minutes.last)
            #expect(current.added == 3 && current.finished == 2, "\(current)")
            #expect(minutes.dropLast().allSatisfy { $0.added == nil && $0.finished == nil })
            #expect(try await queue.throughput(queues: [never])[never]?.allSatisfy { $0.added == nil } == true)
            // Kept for a little over an hour, then gone with the samples.
            let ttl = try await queue.redis.send("PTTL", [.string(queue.keys(name).throughput)]).int ?? 0
            #expect(ttl > 60 * 60_000 && ttl <= 65 * 60_000)
        }
    }

    /// One queue whose key is not a sorted set does not take the others' figures down.
    @Test func aBrokenKeyLeavesTheOtherQueuesFigures() async throws {
        try await TestRedis.withJobQueue("throughput-broken") { queue in
            let good = TestRedis.uniqueQueueName("throughput-good")
            let broken = TestRedis.uniqueQueueName("throughput-broken")
            try await queue.enqueueNumbered(1, queue: good)
            try await queue.sampleThroughput(queues: [good])
            try await queue.enqueueNumbered(2, queue: good)
            try await queue.sampleThroughput(queues: [good])
            _ = try await queue.redis.send("SET", [.string(queue.keys(broken).throughput), "not a sorted set"])
            let minutes = try await queue.throughput(queues: [broken, good])
            #expect(minutes[good]?.last?.added == 2)
            #expect(minutes[broken]?.count == 60 && minutes[broken]?.allSatisfy { $0.added == nil } == true)
        }
    }

    @Test func samplesOlderThanTheSpanAreDropped() async throws {
        try await TestRedis.withJobQueue("throughput-old") { queue in
            let name = TestRedis.uniqueQueueName("throughput-old")
            try await queue.enqueueNumbered(1, queue: name)
            let key = queue.keys(name).throughput
            _ = try await queue.redis.send("ZADD", [.string(key), "1000", "1000:5:5"])
            try await queue.sampleThroughput(queues: [name])
            let members = try await queue.redis.send("ZRANGE", [.string(key), "0", "-1"]).array?.compactMap(\.string) ?? []
            #expect(members.count == 1 && members[0].hasSuffix(":1:0"), "\(members)")
        }
    }

    @Test func minutesFromSamples() {
        let minute: Int64 = 60_000
        let now: Int64 = 100 * minute
        // Every 10 s through the last three minutes: 6 added and 5 finished in each sample.
        var samples: [ThroughputSample] = []
        for step in 0...18 {
            let at = now - 3 * minute + Int64(step) * 10_000
            samples.append(ThroughputSample(at: at, added: Int64(step) * 6, finished: Int64(step) * 5))
        }
        var minutes = ThroughputSample.perMinute(samples, now: now, minutes: 4)
        #expect(minutes.map(\.start) == [96, 97, 98, 99].map { $0 * minute })
        #expect(minutes.map(\.added) == [nil, 36, 36, 36])
        #expect(minutes.map(\.finished) == [nil, 30, 30, 30])

        // The sampler away for the middle minute: that minute is unknown, not a burst.
        let gap = samples.filter { $0.at <= now - 2 * minute - 10_000 || $0.at > now - minute }
        minutes = ThroughputSample.perMinute(gap, now: now, minutes: 3)
        #expect(minutes[1].added == nil, "\(minutes)")
        #expect(minutes[2].added != nil)

        // A stream made again counts from zero.
        let reset = [
            ThroughputSample(at: now - 50_000, added: 900, finished: 900), ThroughputSample(at: now - 10_000, added: 4, finished: 3),
        ]
        #expect(ThroughputSample.perMinute(reset, now: now, minutes: 1) == [ThroughputMinute(start: now - minute, added: 4, finished: 3)])
        #expect(ThroughputSample.perMinute([], now: now, minutes: 2).allSatisfy { $0.added == nil })
        // Members the sampler never writes (negative counters) are not read: huge opposite values
        // would overflow the difference.
        #expect(ThroughputSample(member: "1000:-9000000000000000000:0") == nil)
        #expect(ThroughputSample(member: "1000:5:5") == ThroughputSample(at: 1000, added: 5, finished: 5))
        #expect(ThroughputSample(member: "x:1:1") == nil && ThroughputSample(member: "1:1") == nil)
    }
}
