import HarrowTestSupport
import Logging
import Queue
import ServiceLifecycle
import ServiceLifecycleTestKit
import Testing
import UnixSignals
import WorkerPool

/// The README's example, statement for statement, against the test Redis.
struct ReadmeExampleTests {
    struct ResizeImage: Job {
        static let name = "resize-image"  // the type on the wire
        static let queue = "images"
        static let retryPolicy = RetryPolicy(maxAttempts: 5, backoff: .exponential(base: .seconds(2)))
        static let timeout: Duration = .seconds(60)

        var path: String
        var width: Int
    }

    @Test("the README's queue example enqueues, runs and shuts down")
    func readmeExample() async throws {
        let logger = Logger(label: "images")
        let redis = RedisClient(configuration: try RedisConfiguration(url: TestRedis.url), logger: logger)
        let prefix = TestRedis.uniqueKeyPrefix("readme")
        let queue = JobQueue(redis: redis, options: JobQueue.Options(keyPrefix: prefix))

        // Enqueue: now, later, or once per key.
        try await queue.enqueue(ResizeImage(path: "cat.png", width: 200))
        try await queue.enqueue(ResizeImage(path: "dog.png", width: 200), options: .delayed(by: .seconds(30)))
        try await queue.enqueue(ResizeImage(path: "cow.png", width: 200), options: EnqueueOptions(uniqueKey: "cow.png"))

        let resized = Recorder()
        // Run them.
        var registry = JobRegistry()
        try registry.register(ResizeImage.self) { job, context in
            context.logger.info("resizing \(job.path)")
            guard job.width > 0 else { throw JobFailure.permanent("width must be positive") }  // straight to dead
            await resized.add(job.path)
        }
        let worker = Worker(
            queue: queue, registry: registry,
            options: Worker.Options(queues: try QueueSelection(parsing: "images"), concurrency: 20),
            logger: logger)
        try await testGracefulShutdown { trigger in
            let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            async let run: Void = group.run()
            try await eventually("both immediate jobs ran", timeout: .seconds(10)) { await resized.paths.count == 2 }
            trigger.triggerGracefulShutdown()
            try await run
        }
        #expect(await Set(resized.paths) == ["cat.png", "cow.png"])
        let stats = try await queue.stats(queues: ["images"])[0]
        #expect(stats.delayed == 1 && stats.ready == 0 && stats.pending == 0)
        try await TestRedis.deleteKeys(prefix: prefix, on: redis)
        await redis.close()
    }

    actor Recorder {
        var paths: [String] = []
        func add(_ path: String) { paths.append(path) }
    }
}
