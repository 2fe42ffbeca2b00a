/// A failure of a queue operation that is not a Redis failure: bad input, a missing job.
public struct QueueError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }

        public static let invalidQueueName = Code(name: "invalidQueueName")
        public static let invalidJob = Code(name: "invalidJob")
        public static let jobNotFound = Code(name: "jobNotFound")
        public static let jobIsRunning = Code(name: "jobIsRunning")
        /// Another job holds the unique key of the job to retry.
        public static let uniqueKeyHeld = Code(name: "uniqueKeyHeld")
        /// A durable enqueue (``JobQueue/Options/replicasToConfirm``) was written to the master
        /// but not confirmed by enough replicas in time: a failover now could lose it.
        public static let notReplicated = Code(name: "notReplicated")
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
