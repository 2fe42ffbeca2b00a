import Foundation

/// A five-field cron spec (`minute hour day-of-month month day-of-week`) read in a time zone.
///
/// Each field is `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a comma-separated
/// list of those; months and days of the week may also be named (`jan`, `mon`), and Sunday is
/// 0 or 7. A nickname stands for a whole spec: `@yearly` (or `@annually`), `@monthly`,
/// `@weekly`, `@daily` (or `@midnight`), `@hourly`. As in Vixie cron, when both day fields are restricted (neither starts with `*`), a
/// day matches if either does.
///
/// Daylight saving time, for specs whose hour field is restricted (`30 2 * * *`): a wall time
/// that a spring-forward skips fires once, at the moment the clocks jump, so a daily job is
/// never lost; a wall time that a fall-back repeats fires once, at its first occurrence. A spec
/// that runs every hour (`*/15 * * * *`) follows real time instead: it skips the wall times
/// that do not exist and fires in both passes of a repeated hour, so its interval holds.
public struct CronSpec: Sendable, Hashable {
    /// The spec, fields separated by one space, or its nickname (`@hourly`) in lowercase.
    public let text: String
    public let timeZone: TimeZone

    let minutes: UInt64
    let hours: UInt64
    let days: UInt64
    let months: UInt64
    let weekdays: UInt64
    /// Whether a day must match both day fields (when one starts with `*`) or either.
    let daysMatchBoth: Bool

    /// Parses `text`; throws ``StoreError`` `invalid` on field `cron`, saying which field is
    /// wrong and how, without echoing the input.
    public init(_ text: String, timeZone: TimeZone = .gmt) throws {
        guard text.count <= 200 else { throw StoreError.invalid("cron", "the cron spec must be at most 200 characters") }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        if trimmed.hasPrefix("@") {
            guard let expanded = Self.nicknames[trimmed.lowercased()] else {
                throw StoreError.invalid(
                    "cron", "a cron nickname is one of @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly")
            }
            fields = expanded.split(separator: " ").map(String.init)
        }
        guard fields.count == 5 else {
            throw StoreError.invalid("cron", "a cron spec has 5 fields: minute hour day-of-month month day-of-week")
        }
        self.text = trimmed.hasPrefix("@") ? trimmed.lowercased() : fields.joined(separator: " ")
        self.timeZone = timeZone
        minutes = try Self.parse(fields[0], Self.fields[0])
        hours = try Self.parse(fields[1], Self.fields[1])
        days = try Self.parse(fields[2], Self.fields[2])
        months = try Self.parse(fields[3], Self.fields[3])
        var weekdays = try Self.parse(fields[4], Self.fields[4])
        if weekdays & (1 << 7) != 0 { weekdays = (weekdays | 1) & ~(1 << 7) }
        self.weekdays = weekdays
        daysMatchBoth = fields[2].hasPrefix("*") || fields[4].hasPrefix("*")
        if daysMatchBoth {
            // Every date falls on every weekday in some year, so only the month lengths can
            // make a spec impossible (`0 0 30 2 *`).
            let possible = (1...12).contains { month in
                months & (1 << month) != 0 && (1...Self.longestMonth[month - 1]).contains { days & (1 << $0) != 0 }
            }
            guard possible else { throw StoreError.invalid("cron", "the cron spec never fires: no selected month has the selected days") }
        }
    }

    /// The next `count` times the spec fires strictly after `date`, in order. Fewer when none
    /// comes within a 400-year cycle of the calendar.
    public func nextFireTimes(after date: Date, count: Int) -> [Date] {
        guard count > 0 else { return [] }
        let after = date.timeIntervalSince1970
        let start = Self.floorDivide(Int64(after.rounded(.down)) + Int64(offset(at: Int64(after.rounded(.down)))), 86_400)
        var found: [Date] = []
        // The day before too: near a fall-back, its last wall times may come after `date`.
        var day = start - 1
        while found.count < count, day <= start + 146_097 {
            defer { day += 1 }
            guard matches(day: day) else { continue }
            for instant in instants(on: day) where Double(instant) > after {
                found.append(Date(timeIntervalSince1970: TimeInterval(instant)))
                if found.count == count { break }
            }
        }
        return found
    }

    /// Whether the local date `day` (days since 1970-01-01) matches the day, month and weekday
    /// fields.
    func matches(day: Int64) -> Bool {
        let (_, month, dayOfMonth) = Self.civil(day)
        guard months & (1 << month) != 0 else { return false }
        let weekday = Int((day % 7 + 7 + 4) % 7)  // 1970-01-01 was a Thursday (4).
        let dayMatches = days & (1 << dayOfMonth) != 0
        let weekdayMatches = weekdays & (1 << weekday) != 0
        return daysMatchBoth ? dayMatches && weekdayMatches : dayMatches || weekdayMatches
    }

    /// The instants (seconds since 1970) the spec fires at on local date `day`, in order.
    func instants(on day: Int64) -> [Int64] {
        let midnight = day * 86_400
        // Offsets a day either side of the local day bracket any transition on it.
        let before = offset(at: midnight - 86_400)
        let after = offset(at: midnight + 2 * 86_400)
        let everyHour = hours == Self.allHours
        var instants: [Int64] = []
        for hour in 0..<24 where hours & (1 << hour) != 0 {
            for minute in 0..<60 where minutes & (1 << minute) != 0 {
                let wall = midnight + Int64(hour * 3600 + minute * 60)
                if before == after {
                    instants.append(wall - Int64(before))
                    continue
                }
                // The larger offset gives the earlier instant: the first pass of a repeated hour.
                let valid = [max(before, after), min(before, after)].map { wall - Int64($0) }.filter {
                    Int64(offset(at: $0)) == wall - $0
                }
                if let first = valid.first {
                    instants.append(first)
                    if everyHour, valid.count == 2 { instants.append(valid[1]) }
                } else if !everyHour, after > before {
                    instants.append(transition(from: wall - Int64(after), to: wall - Int64(before)))
                }
            }
        }
        // Sorted and unique: second passes interleave, and skipped wall times share an instant.
        return Array(Set(instants)).sorted()
    }

    /// The first instant in `(low, high]` whose offset differs from `low`'s: when the clocks
    /// jumped.
    func transition(from low: Int64, to high: Int64) -> Int64 {
        var low = low
        var high = high
        let initial = offset(at: low)
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if offset(at: middle) == initial { low = middle } else { high = middle }
        }
        return high
    }

    func offset(at instant: Int64) -> Int {
        timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant)))
    }
}

extension CronSpec {
    struct Field: Sendable {
        var name: String
        var range: ClosedRange<Int>
        var names: [String] = []
        /// The value of `names[0]`.
        var firstNamed = 0
    }

    static let fields = [
        Field(name: "minute", range: 0...59),
        Field(name: "hour", range: 0...23),
        Field(name: "day-of-month", range: 1...31),
        Field(
            name: "month", range: 1...12, names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
            firstNamed: 1),
        Field(name: "day-of-week", range: 0...7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]),
    ]

    /// Vixie cron's nicknames and the specs they stand for (`@reboot` has no meaning here).
    static let nicknames = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    static let allHours: UInt64 = (1 << 24) - 1
    static let longestMonth = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

    /// One field as a bit set of its values.
    static func parse(_ text: String, _ field: Field) throws -> UInt64 {
        var bits: UInt64 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, !parts[0].isEmpty else { throw malformed(field) }
            var step = 1
            if parts.count == 2 {
                guard let value = number(parts[1]), value >= 1, value <= field.range.count else {
                    throw StoreError.invalid("cron", "a step in the \(field.name) field of the cron spec must be 1 to \(field.range.count)")
                }
                step = value
            }
            let bounds: ClosedRange<Int>
            if parts[0] == "*" {
                bounds = field.range
            } else {
                let ends = parts[0].split(separator: "-", omittingEmptySubsequences: false)
                guard ends.count <= 2, ends.count == 2 || parts.count == 1 else {
                    throw StoreError.invalid("cron", "a step in the \(field.name) field of the cron spec needs * or a range before it")
                }
                let low = try value(ends[0], field)
                let high = ends.count == 2 ? try value(ends[1], field) : low
                guard low <= high else {
                    throw StoreError.invalid("cron", "a range in the \(field.name) field of the cron spec runs backwards")
                }
                bounds = low...high
            }
            for value in stride(from: bounds.lowerBound, through: bounds.upperBound, by: step) { bits |= 1 << value }
        }
        return bits
    }

    static func value(_ text: Substring, _ field: Field) throws -> Int {
        if let named = field.names.firstIndex(of: text.lowercased()) { return named + field.firstNamed }
        guard let value = number(text) else { throw malformed(field) }
        guard field.range.contains(value) else {
            throw StoreError.invalid(
                "cron", "the \(field.name) field of the cron spec must be within \(field.range.lowerBound)-\(field.range.upperBound)")
        }
        return value
    }

    /// Decimal digits only: no sign, no spaces, at most three digits.
    static func number(_ text: Substring) -> Int? {
        guard (1...3).contains(text.count), text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(text)
    }

    static func malformed(_ field: Field) -> StoreError {
        StoreError.invalid("cron", "the \(field.name) field of the cron spec is malformed")
    }

    static func floorDivide(_ value: Int64, _ divisor: Int64) -> Int64 {
        value >= 0 ? value / divisor : -((-value + divisor - 1) / divisor)
    }

    /// The proleptic Gregorian date of `day` days since 1970-01-01 (Howard Hinnant's
    /// `civil_from_days`).
    static func civil(_ day: Int64) -> (year: Int64, month: Int, day: Int) {
        let shifted = day + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let dayOfMonth = Int(dayOfYear - (153 * monthIndex + 2) / 5 + 1)
        let month = Int(monthIndex < 10 ? monthIndex + 3 : monthIndex - 9)
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, dayOfMonth)
    }
}
