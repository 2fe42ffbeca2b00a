import JobContracts
import Store

extension SendMail {
    /// An outbox entry for this mail, to enqueue in the transaction of the change that asks for
    /// it; its id becomes the job id, from which the Message-ID derives.
    public func outboxJob() throws -> OutboxJob {
        OutboxJob(queue: Self.queue, type: Self.name, payload: try payload())
    }
}
