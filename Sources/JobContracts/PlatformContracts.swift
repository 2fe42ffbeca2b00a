/// Every platform job's contract, for the worker to know which queues the platform uses and
/// which job types it should have handlers for.
public enum PlatformContracts {
    /// The contracts in the order of their queues' priority: what a person waits for first
    /// (mail, keys, operations), then what runs in the background (statuses, polls, webhooks).
    public static let all: [any JobContract.Type] = [
        SendMail.self, GenerateKey.self, RunOperation.self, PostStatus.self, PollRepo.self, PostWebhook.self,
    ]

    /// The queues the contracts name, in that order, each once.
    public static var queues: [String] {
        var seen = Set<String>()
        return all.map { $0.queue }.filter { seen.insert($0).inserted }
    }
}

extension PlatformContracts {
    /// The queues, in priority order, where at least one contract's type is in `handled`.
    public static func queues(servedBy handled: some Sequence<String>) -> [String] {
        let handled = Set(handled)
        return queues.filter { queue in all.contains { $0.queue == queue && handled.contains($0.name) } }
    }

    /// The contracts whose jobs go to one of `queues` but whose type is not in `handled`: a
    /// worker that reads those queues without the handler fails such jobs as an unknown type.
    public static func withoutHandlers(onQueues queues: some Sequence<String>, handled: some Sequence<String>) -> [any JobContract.Type] {
        let queues = Set(queues)
        let handled = Set(handled)
        return all.filter { queues.contains($0.queue) && !handled.contains($0.name) }
    }
}
