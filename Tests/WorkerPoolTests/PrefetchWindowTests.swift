import Testing

@testable import WorkerPool

/// The window of automatic prefetch, from the pace jobs finish at.
@Suite struct PrefetchWindowTests {
    @Test func aFixedWindowIsWhatItSays() {
        let window = PrefetchWindow(fixed: 7, concurrency: 10, horizon: .milliseconds(10), maximum: 100)
        #expect(window.size == 7)
        window.stall()
        #expect(window.size == 7, "a fixed window is the operator's: no stall changes it")
    }

    @Test func automaticWindowsFollowThePace() {
        let window = PrefetchWindow(fixed: nil, concurrency: 10, horizon: .milliseconds(10), maximum: 100)
        #expect(window.size == 0, "no pace known yet")
        for _ in 0..<PrefetchWindow.warmUp { window.record(.milliseconds(2)) }
        // 10 slots × 10 ms ÷ 2 ms a job: 50 jobs start within the horizon.
        #expect(window.size == 50)
        for _ in 0..<200 { window.record(.microseconds(20)) }
        #expect(window.size == 100, "capped at the maximum")
        for _ in 0..<200 { window.record(.seconds(2)) }
        #expect(window.size == 0, "jobs of seconds get none")
    }

    @Test func aStallStopsPrefetchUntilAJobFinishes() {
        let window = PrefetchWindow(fixed: nil, concurrency: 4, horizon: .milliseconds(10), maximum: 100)
        for _ in 0..<PrefetchWindow.warmUp { window.record(.milliseconds(1)) }
        #expect(window.size == 40)
        window.stall()
        #expect(window.size == 0)
        window.record(.milliseconds(1))
        #expect(window.size == 40)
    }

    @Test func theCeilingGrowsWithConcurrency() {
        #expect(Worker.automaticPrefetchMaximum(concurrency: 1) == 100)
        #expect(Worker.automaticPrefetchMaximum(concurrency: 10) == 100)
        #expect(Worker.automaticPrefetchMaximum(concurrency: 50) == 500)
        #expect(Worker.automaticPrefetchMaximum(concurrency: 1000) == 1000)
    }
}
