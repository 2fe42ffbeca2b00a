/// Every platform job's contract, for the worker to know which queues the platform uses and
/// which job types it should have handlers for.
public enum PlatformContracts {
    /// The contracts in the order of their queues' priority: what a person waits for first
    /// (mail, keys, operations), then what runs in the background (statuses, polls).
    public static let all: [any JobContract.Type] = [
        SendMail.self, GenerateKey.self, RunOperation.self, PostStatus.self, PollRepo.self,
    ]

    /// The queues the contracts name, in that order, each once.
    public static var queues: [String] {
        var seen = Set<String>()
        return all.map { $0.queue }.filter { seen.insert($0).inserted }
    }
}
