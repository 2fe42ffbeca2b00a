import Foundation
import Testing

@testable import Store

/// The scheduler's arithmetic with an injected clock: on-time fires, downtime, catch-up, one-time
/// schedules, nicknames, and daylight saving time in Berlin and New York.
@Suite struct FirePlanTests {
    static func utc(_ text: String) throws -> Date { try Date(text, strategy: .iso8601) }

    static func plan(
        _ cron: String?, in zone: String = "UTC", due: String, now: String, catchUp: Schedule.CatchUp = .once
    ) throws -> FirePlan {
        let spec = try cron.map { try CronSpec($0, timeZone: try #require(TimeZone(identifier: zone))) }
        return FirePlan(cron: spec, due: try utc(due), now: try utc(now), catchUp: catchUp)
    }

    @Test func anOnTimeFireRunsOnceAndMovesToTheNextTime() throws {
        let plan = try Self.plan("* * * * *", due: "2025-07-01T10:00:00Z", now: "2025-07-01T10:00:02Z")
        #expect(plan.fires && plan.missed == 0 && plan.missedSpan == nil)
        #expect(plan.nextFireAt == (try Self.utc("2025-07-01T10:01:00Z")))
        // Late within the grace is still on time.
        let late = try Self.plan("* * * * *", due: "2025-07-01T10:00:00Z", now: "2025-07-01T10:00:59Z")
        #expect(late.fires && late.missed == 0)
    }

    @Test func downtimeFiresOnceForTheWholeSpanAndCountsWhatItMissed() throws {
        // Down from 10:00 to 12:00:30: 10:00 … 11:59 were missed, 12:00 is on time.
        let minutely = try Self.plan("* * * * *", due: "2025-07-01T10:00:00Z", now: "2025-07-01T12:00:30Z")
        #expect(minutely.fires && minutely.missed == 120)
        #expect(minutely.missedSpan == (try Self.utc("2025-07-01T10:00:00Z"))...(try Self.utc("2025-07-01T11:59:00Z")))
        #expect(minutely.nextFireAt == (try Self.utc("2025-07-01T12:01:00Z")))

        // Hourly, down 10:00 to 12:30: three missed, none on time.
        let once = try Self.plan("0 * * * *", due: "2025-07-01T10:00:00Z", now: "2025-07-01T12:30:00Z", catchUp: .once)
        #expect(try once.fires && once.missed == 3 && once.nextFireAt == Self.utc("2025-07-01T13:00:00Z"))
        let none = try Self.plan("0 * * * *", due: "2025-07-01T10:00:00Z", now: "2025-07-01T12:30:00Z", catchUp: .none)
        #expect(!none.fires && none.missed == 3 && none.nextFireAt == once.nextFireAt)
    }

    @Test func aLongOutageIsCountedUpToTheLimit() throws {
        let plan = try Self.plan("* * * * *", due: "2025-01-01T00:00:00Z", now: "2025-12-31T00:00:30Z")
        #expect(plan.fires && plan.missed == FirePlan.missedCountLimit)
        #expect(plan.nextFireAt == (try Self.utc("2025-12-31T00:01:00Z")))
    }

    @Test func aOneTimeScheduleFiresOnceUnlessItsTimeWasMissedWithoutCatchUp() throws {
        let onTime = try Self.plan(nil, due: "2025-07-01T10:00:00Z", now: "2025-07-01T10:00:01Z")
        #expect(onTime.fires && onTime.missed == 0 && onTime.nextFireAt == nil)
        let missed = try Self.plan(nil, due: "2025-07-01T10:00:00Z", now: "2025-07-01T11:00:00Z", catchUp: .none)
        #expect(!missed.fires && missed.missed == 1 && missed.nextFireAt == nil)
        let caughtUp = try Self.plan(nil, due: "2025-07-01T10:00:00Z", now: "2025-07-01T11:00:00Z", catchUp: .once)
        #expect(caughtUp.fires && caughtUp.missed == 1)
    }

    @Test func aSkippedWallTimeFiresOnceAtTheFirstValidMinuteAndARepeatedOneOnce() throws {
        // Berlin, 2025-03-30: 02:00 CET jumps to 03:00 CEST (01:00Z). 02:30 fires at 03:00.
        let spring = try Self.plan("30 2 * * *", in: "Europe/Berlin", due: "2025-03-30T01:00:00Z", now: "2025-03-30T01:00:01Z")
        #expect(try spring.fires && spring.nextFireAt == Self.utc("2025-03-31T00:30:00Z"))
        // New York, 2025-11-02: 01:30 EDT (05:30Z) comes again as 01:30 EST (06:30Z): once.
        let fall = try Self.plan("30 1 * * *", in: "America/New_York", due: "2025-11-02T05:30:00Z", now: "2025-11-02T05:30:01Z")
        #expect(try fall.fires && fall.nextFireAt == Self.utc("2025-11-03T06:30:00Z"))
        // Every minute in Berlin keeps firing each real minute through the repeated hour.
        let minutely = try Self.plan("* * * * *", in: "Europe/Berlin", due: "2025-10-26T00:59:00Z", now: "2025-10-26T00:59:01Z")
        #expect(minutely.nextFireAt == (try Self.utc("2025-10-26T01:00:00Z")))
        // Downtime across the spring jump counts real minutes: 00:50Z … 01:09Z missed, 01:10Z on time.
        let across = try Self.plan("* * * * *", in: "Europe/Berlin", due: "2025-03-30T00:50:00Z", now: "2025-03-30T01:10:30Z")
        #expect(across.missed == 20 && across.fires)
    }

    @Test func nicknamesStandForTheirSpecs() throws {
        let after = try Self.utc("2025-07-01T10:20:00Z")
        for (nickname, spec) in [("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@MIDNIGHT", "0 0 * * *"), ("@weekly", "0 0 * * 0")] {
            let named = try CronSpec(nickname, timeZone: .gmt)
            #expect(named.text == nickname.lowercased())
            #expect(named.nextFireTimes(after: after, count: 3) == (try CronSpec(spec).nextFireTimes(after: after, count: 3)))
        }
        #expect(try CronSpec("@yearly").nextFireTimes(after: after, count: 1) == [try Self.utc("2026-01-01T00:00:00Z")])
        for refused in ["@reboot", "@every 5m", "@"] {
            let error = #expect(throws: StoreError.self) { try CronSpec(refused) }
            #expect(error?.field == "cron")
        }
    }
}
