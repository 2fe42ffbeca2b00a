import Testing
import WorkerPool

@Suite struct JobRegistryTests {
    @Test func registeringATypeTwiceThrows() throws {
        var registry = JobRegistry()
        try registry.register(Greeting.self) { _, _ in }
        #expect {
            try registry.register(Greeting.self) { _, _ in }
        } throws: { error in
            guard let error = error as? WorkerError else { return false }
            return error.code == .duplicateJobType && error.message.contains("greeting")
        }
        #expect(registry.typeNames == ["greeting"])
    }

    @Test func diagnosticJobsRegisterOnce() throws {
        var registry = JobRegistry()
        try registry.registerDiagnosticJobs()
        #expect(registry.typeNames == ["noop", "sleep"])
        #expect(throws: WorkerError.self) { try registry.registerDiagnosticJobs() }
        // A type of another name but the same wire name is a duplicate too.
        struct Impostor: Job { static let name = "noop" }
        #expect(throws: WorkerError.self) { try registry.register(Impostor.self) { _, _ in } }
    }
}
