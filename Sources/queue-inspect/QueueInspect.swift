import ArgumentParser

@main
struct QueueInspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue-inspect",
        abstract: "Look into Harrow's Redis queues: stats, jobs, dead letters, pauses, workers, the outbox.",
        subcommands: [
            Stats.self, Queues.self, Jobs.self, Show.self, Dead.self, Pause.self, Resume.self, Workers.self, Enqueue.self,
            Delete.self, OutboxCommand.self,
        ])
}
