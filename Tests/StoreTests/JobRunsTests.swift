import Foundation
import HarrowTestSupport
import Testing

@testable import Store

/// `job_runs`: records in the side effect's transaction, and claims for side effects no
/// transaction covers.
@Suite struct JobRunsTests {
    @Test func aClaimHoldsOffOtherDeliveriesUntilFinishedReleasedOrStale() async throws {
        try await Stores.with("job_runs_claims") { stores in
            let job = UUID().uuidString.lowercased()
            let claim = { (stale: Duration) in
                try await JobRuns.claim(job, type: "send-mail", staleAfter: stale, client: stores.client, logger: stores.logger)
            }
            #expect(try await claim(.seconds(300)) == .claimed)
            #expect(try await claim(.seconds(300)) == .busy, "a second delivery waits")
            try await JobRuns.release(job, client: stores.client, logger: stores.logger)
            #expect(try await claim(.seconds(300)) == .claimed, "a released claim can be taken")
            #expect(try await claim(.zero) == .claimed, "a stale claim is taken over")
            try await JobRuns.finish(job, outcome: "sent", client: stores.client, logger: stores.logger)
            #expect(try await claim(.zero) == .done("sent"), "a finished job is never claimed again")
            try await JobRuns.release(job, client: stores.client, logger: stores.logger)
            #expect(try await JobRuns.outcome(of: job, client: stores.client, logger: stores.logger) == "sent")
        }
    }

    @Test func recordingTwiceSaysSoAndIdsThatAreNoUUIDsMapToOneKey() async throws {
        try await Stores.with("job_runs_record") { stores in
            for id in [UUID().uuidString.lowercased(), "custom-id-\(TestRedis.randomHex())"] {
                let first = try await stores.client.write(logger: stores.logger) { connection in
                    try await JobRuns.record(id, type: "t", outcome: "done", on: connection, logger: stores.logger)
                }
                let second = try await stores.client.write(logger: stores.logger) { connection in
                    try await JobRuns.record(id, type: "t", outcome: "done", on: connection, logger: stores.logger)
                }
                #expect(first && !second, "\(id)")
                #expect(JobRuns.key(id) == JobRuns.key(id))
            }
            #expect(JobRuns.key("a") != JobRuns.key("b"))
        }
    }
}

@Suite struct EncodingTests {
    @Test func hexIsTwoLowercaseDigitsPerByte() {
        #expect(Hex.encode([0x00, 0x0F, 0xAB, 0xFF]) == "000fabff")
        #expect(Hex.encode([UInt8]()) == "")
    }

    @Test func base64URLRoundTripsWithoutPadding() {
        let bytes: [UInt8] = [0xFB, 0xFF, 0x01]
        #expect(Base64URL.encode(bytes) == "-_8B")
        #expect(Base64URL.decode("-_8B") == bytes)
        #expect(Base64URL.decode("not base64!") == nil)
    }
}
