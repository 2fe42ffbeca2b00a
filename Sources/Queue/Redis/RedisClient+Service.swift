import ServiceLifecycle

extension RedisClient: Service {
    /// Keeps the pool until the service group shuts down (gracefully, or by cancellation when
    /// another service throws), then closes every connection. Put the client first in the group:
    /// services stop in reverse order, so it closes after everything that uses it.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}
