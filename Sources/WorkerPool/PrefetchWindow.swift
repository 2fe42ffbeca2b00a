import NIOConcurrencyHelpers

/// How many jobs a worker with automatic prefetch keeps waiting ahead of its free slots.
///
/// The window is what the slots start within a short horizon at the pace jobs have been
/// finishing: `concurrency × horizon ÷ mean run time`, capped. Jobs of a few microseconds get a
/// deep window (one round trip brings many), jobs of seconds get none, so a prefetched job never
/// waits long behind running ones while another worker could run it. Until enough jobs have
/// finished to know their pace, and after a stall (every slot busy for longer than the stall
/// limit, the waiting jobs handed back), the window is 0 until a job finishes again.
final class PrefetchWindow: Sendable {
    private struct State {
        /// Exponentially weighted mean of run times, in nanoseconds; 0 before the first.
        var meanNanoseconds: Double = 0
        var samples = 0
        var stalled = false
    }

    /// Fixed window (`fixed`), or automatic up to `maximum`.
    let fixed: Int?
    let concurrency: Int
    let horizon: Duration
    let maximum: Int
    private let state = NIOLockedValueBox(State())

    /// Samples before the pace counts: a few, so a cold worker starts at once.
    static let warmUp = 8
    /// Weight of the newest run time in the mean.
    static let weight = 0.1

    init(fixed: Int?, concurrency: Int, horizon: Duration, maximum: Int) {
        self.fixed = fixed
        self.concurrency = concurrency
        self.horizon = horizon
        self.maximum = maximum
    }

    /// Jobs to keep waiting ahead of the free slots now.
    var size: Int {
        if let fixed { return fixed }
        let (mean, samples, stalled) = state.withLockedValue { ($0.meanNanoseconds, $0.samples, $0.stalled) }
        guard !stalled, samples >= Self.warmUp else { return 0 }
        let horizonNanoseconds = Double(horizon.components.seconds) * 1e9 + Double(horizon.components.attoseconds) / 1e9
        let size = Double(concurrency) * horizonNanoseconds / max(mean, 1_000)
        return size >= Double(maximum) ? maximum : Int(size)
    }

    /// Records a finished job's run time; a finished job also ends a stall.
    func record(_ duration: Duration) {
        let nanoseconds = Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9
        state.withLockedValue { state in
            state.meanNanoseconds =
                state.samples == 0 ? nanoseconds : state.meanNanoseconds + Self.weight * (nanoseconds - state.meanNanoseconds)
            state.samples += 1
            state.stalled = false
        }
    }

    /// Every slot stayed busy past the stall limit: no prefetch until a job finishes.
    func stall() {
        state.withLockedValue { $0.stalled = true }
    }
}
