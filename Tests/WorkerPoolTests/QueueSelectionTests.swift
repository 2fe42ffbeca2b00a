import Foundation
import HarrowTestSupport
import Queue
import Testing

@testable import WorkerPool

/// Which queues a worker reads, in what order, and pauses.
@Suite struct QueueSelectionTests {
    // MARK: Parsing

    @Test func parsesAStrictList() throws {
        let selection = try QueueSelection(parsing: "mail,keys")
        #expect(selection.names == ["mail", "keys"])
        #expect(!selection.isWeighted)
        #expect(selection.entries.map(\.weight) == [1, 1])
        #expect(selection.entries.allSatisfy { $0.concurrencyLimit == nil })
    }

    @Test func parsesWeights() throws {
        let selection = try QueueSelection(parsing: "mail:3,keys:1")
        #expect(selection.names == ["mail", "keys"])
        #expect(selection.isWeighted)
        #expect(selection.entries.map(\.weight) == [3, 1])
    }

    @Test func toleratesSpacesAndKeepsColonsInNames() throws {
        #expect(try QueueSelection(parsing: " mail , keys ").names == ["mail", "keys"])
        let namespaced = try QueueSelection(parsing: "team:mail,team:keys:2")
        #expect(namespaced.names == ["team:mail", "team:keys"])
        #expect(namespaced.entries.map(\.weight) == [1, 2])
        #expect(namespaced.isWeighted)
    }

    @Test(arguments: ["", ",", "a:0", "a:-1", "a,a", "a,a:2", "bad{name}", "has space", "a,b{c}"])
    func rejectsInvalidSelections(_ text: String) {
        #expect(throws: (any Error).self, "\"\(text)\" should not parse") { try QueueSelection(parsing: text) }
    }

    @Test func invalidSelectionsSayWhy() {
        #expect {
            try QueueSelection(parsing: "a:0")
        } throws: { error in
            (error as? WorkerError)?.code == .invalidOptions && "\(error)".contains("at least 1")
        }
        #expect {
            try QueueSelection(parsing: "a,a")
        } throws: { error in
            (error as? WorkerError)?.code == .invalidOptions && "\(error)".contains("twice")
        }
        #expect {
            try QueueSelection(parsing: "")
        } throws: { error in
            (error as? WorkerError)?.code == .invalidOptions
        }
        #expect {
            try QueueSelection(parsing: "bad{name}")
        } throws: { error in
            (error as? QueueError)?.code == .invalidQueueName
        }
    }

    @Test func appliesPerQueueLimits() throws {
        var selection = try QueueSelection(parsing: "mail,keys,git")
        try selection.applyLimits(parsing: "mail=5, git=1")
        #expect(selection.entries.map(\.concurrencyLimit) == [5, nil, 1])
        #expect(throws: WorkerError.self) { try selection.applyLimits(parsing: "other=2") }
        #expect(throws: WorkerError.self) { try selection.applyLimits(parsing: "mail=0") }
        #expect(throws: WorkerError.self) { try selection.applyLimits(parsing: "mail") }
        #expect(throws: WorkerError.self) { try selection.applyLimits(parsing: "mail=x") }
    }

    // MARK: Order

    @Test func strictOrderIsAlwaysTheGivenOrder() throws {
        let selection = try QueueSelection(parsing: "a,b,c")
        var generator = SplitMix64(seed: 7)
        for _ in 0..<100 {
            #expect(selection.order(using: &generator).map(\.name) == ["a", "b", "c"])
        }
    }

    @Test func weightedOrderFollowsTheWeights() throws {
        let selection = try QueueSelection(parsing: "a:3,b:1")
        var generator = SplitMix64(seed: 42)
        let draws = 4000
        var aFirst = 0
        for _ in 0..<draws {
            let order = selection.order(using: &generator).map(\.name)
            #expect(Set(order) == ["a", "b"] && order.count == 2)
            if order.first == "a" { aFirst += 1 }
        }
        // a comes first three times in four.
        #expect((2800...3200).contains(aFirst), "a first \(aFirst) of \(draws) times")

        let three = try QueueSelection(parsing: "a:2,b:1,c:1")
        var counts: [String: Int] = [:]
        for _ in 0..<draws {
            let order = three.order(using: &generator).map(\.name)
            #expect(Set(order) == ["a", "b", "c"] && order.count == 3)
            counts[order[0], default: 0] += 1
        }
        #expect((1800...2200).contains(counts["a"] ?? 0), "\(counts)")
        #expect((800...1200).contains(counts["b"] ?? 0), "\(counts)")
        #expect((800...1200).contains(counts["c"] ?? 0), "\(counts)")
    }

    @Test func aStrictWorkerEmptiesTheFirstQueueBeforeTheSecond() async throws {
        try await TestRedis.withJobQueue("wp-strict") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            // Queued before the worker starts, second queue first.
            try await queue.enqueue(batch: Array(repeating: Nap(ms: 10), count: 4), queue: "b")
            try await queue.enqueue(batch: Array(repeating: Nap(ms: 10), count: 4), queue: "a")
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("a", "b"), concurrency: 1)) { _ in
                try await eventually("all ran") { recorder.count == 8 }
                try await queue.waitUntilDrained("b")
            }
            #expect(recorder.runs.map(\.queue) == ["a", "a", "a", "a", "b", "b", "b", "b"])
            #expect(recorder.maxRunning == 1)
        }
    }

    // MARK: Pause

    @Test func aPausedQueuesJobsWaitUntilItIsResumed() async throws {
        try await TestRedis.withJobQueue("wp-pause") { queue in
            let recorder = RunRecorder()
            var registry = JobRegistry()
            try registry.registerNap(recorder)
            try await queue.pause(queue: "held")
            let held = try await queue.enqueue(batch: Array(repeating: Nap(ms: 1), count: 3), queue: "held").map(\.id)
            try await withWorker(queue: queue, registry: registry, options: .fast(.strict("held", "open"))) { _ in
                // The worker is working: a job of the other queue runs.
                let open = try await queue.enqueue(Nap(ms: 1), queue: "open").id
                try await eventually("the open queue's job ran") { recorder.runs.map(\.id) == [open] }
                // Several fetch rounds later the paused jobs still wait.
                try await Task.sleep(for: .milliseconds(800))
                #expect(recorder.runs(queue: "held").isEmpty)
                let stats = try await queue.stats("held")
                #expect(stats.paused)
                #expect(stats.ready == 3 && stats.pending == 0)

                try await queue.resume(queue: "held")
                try await eventually("paused jobs ran after resume") { recorder.runs(queue: "held").count == 3 }
                try await queue.waitUntilDrained("held")
            }
            #expect(Set(recorder.runs(queue: "held").map(\.id)) == Set(held))
            #expect(try await queue.stats("held").paused == false)
        }
    }
}
