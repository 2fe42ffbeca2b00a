import FoundationEssentials
import NIOCore
import NIOFoundationEssentialsCompat
import Queue

extension JobQueue {
    /// Enqueues a typed job on its type's queue (or `queue`), with the type's retry policy,
    /// timeout and visibility timeout.
    @discardableResult
    public func enqueue<J: Job>(_ job: J, queue: String? = nil, options: EnqueueOptions = EnqueueOptions()) async throws -> EnqueueResult {
        try await enqueue(try Self.request(for: job, queue: queue, options: options))
    }

    /// Enqueues many typed jobs in one round trip.
    @discardableResult
    public func enqueue<J: Job>(batch jobs: [J], queue: String? = nil, options: EnqueueOptions = EnqueueOptions()) async throws -> [EnqueueResult] {
        try await enqueue(batch: jobs.map { try Self.request(for: $0, queue: queue, options: options) })
    }

    static func request<J: Job>(for job: J, queue: String?, options: EnqueueOptions) throws -> EnqueueRequest {
        var options = options
        options.maxAttempts = options.maxAttempts ?? J.retryPolicy.maxAttempts
        options.timeout = options.timeout ?? J.timeout
        options.visibilityTimeout = options.visibilityTimeout ?? J.visibilityTimeout
        let payload = try JSONEncoder().encodeAsByteBuffer(job, allocator: ByteBufferAllocator())
        return EnqueueRequest(type: J.name, queue: queue ?? J.queue, payload: payload, options: options)
    }
}
