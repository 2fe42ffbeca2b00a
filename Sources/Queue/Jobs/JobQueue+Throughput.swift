extension JobQueue {
    /// How far back throughput samples are kept: an hour and a little, so the oldest minute of
    /// the last hour has a reading before it.
    public static let throughputSpan: Duration = .seconds(65 * 60)

    /// Records a throughput sample of each of `queues` (one pipeline). Workers' maintenance
    /// calls it every few seconds; a queue whose stream does not exist yet is skipped.
    public func sampleThroughput(queues: [String]) async throws {
        let span = Int(Self.milliseconds(Self.throughputSpan))
        let items = queues.map { queue -> RedisPipelineItem in
            let keys = keys(queue)
            return .script(RedisScript.Call(QueueScripts.sampleThroughput, keys: [keys.stream, keys.throughput], arguments: [.int(span)]))
        }
        for reply in try await redis.pipeline(items) {
            if case .error(let message) = reply { throw RedisError.server(message, command: "EVALSHA sample-throughput") }
        }
    }

    /// What each of `queues` took in and finished in each of the last `minutes` minutes (by
    /// the Redis server's clock), oldest first, the last being the current one.
    public func throughput(queues: [String], minutes: Int = 60) async throws -> [String: [ThroughputMinute]] {
        // One round trip: the clock and every queue's samples (the sampler keeps only the last
        // ``throughputSpan`` of them, so the whole set is what the minutes need).
        let replies = try await redis.pipeline(
            [RedisCommand("TIME", [])] + queues.map { RedisCommand("ZRANGE", [.string(keys($0).throughput), "0", "-1"]) })
        let time = replies[0]
        guard let parts = time.array, parts.count == 2, let seconds = parts[0].string.flatMap({ Int64($0) }),
            let micros = parts[1].string.flatMap({ Int64($0) })
        else { throw RedisError.unexpected(time, command: "TIME") }
        let now = seconds * 1000 + micros / 1000
        var result: [String: [ThroughputMinute]] = [:]
        for (queue, reply) in zip(queues, replies.dropFirst()) {
            // A queue whose key cannot be read (not a sorted set) has no figures; the others do.
            if case .error = reply {
                result[queue] = ThroughputSample.perMinute([], now: now, minutes: minutes)
                continue
            }
            let samples = (reply.array ?? []).compactMap { $0.string.flatMap(ThroughputSample.init(member:)) }
            result[queue] = ThroughputSample.perMinute(samples, now: now, minutes: minutes)
        }
        return result
    }
}
