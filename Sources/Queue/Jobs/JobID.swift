import FoundationEssentials
import NIOConcurrencyHelpers

/// Job ids are UUIDv7 (RFC 9562): time-ordered, so ids sort roughly by creation.
public enum JobID {
    /// A new UUIDv7 in its canonical lowercase text form.
    public static func make(now: Date = Date()) -> String {
        make(count: 1, now: now)[0]
    }

    /// The random bits of every id this process makes. The system generator costs a system
    /// call per 8 bytes, so it only seeds this xoshiro256** generator, once (ids need to be
    /// unique, not secret): seeding one per call cost single-job enqueues 5 % of their CPU.
    private static let generator = NIOLockedValueBox(Xoshiro256StarStar())

    /// `count` new UUIDv7s.
    public static func make(count: Int, now: Date = Date()) -> [String] {
        let milliseconds = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        var random = [UInt8](repeating: 0, count: count * 10 + 8)
        generator.withLockedValue { generator in
            var offset = 0
            while offset < count * 10 {
                let word = generator.next()
                for shift in 0..<8 { random[offset + shift] = UInt8(truncatingIfNeeded: word >> UInt64(shift * 8)) }
                offset += 8
            }
        }
        let hex = Array("0123456789abcdef".utf8)
        var ids: [String] = []
        ids.reserveCapacity(count)
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<count {
            for position in 0..<6 { bytes[position] = UInt8(truncatingIfNeeded: milliseconds >> UInt64(40 - position * 8)) }
            for position in 6..<16 { bytes[position] = random[index * 10 + position - 6] }
            bytes[6] = (bytes[6] & 0x0F) | 0x70
            bytes[8] = (bytes[8] & 0x3F) | 0x80
            ids.append(
                String(unsafeUninitializedCapacity: 36) { text in
                    var cursor = 0
                    for (position, byte) in bytes.enumerated() {
                        if position == 4 || position == 6 || position == 8 || position == 10 {
                            text[cursor] = UInt8(ascii: "-")
                            cursor += 1
                        }
                        text[cursor] = hex[Int(byte >> 4)]
                        text[cursor + 1] = hex[Int(byte & 0x0F)]
                        cursor += 2
                    }
                    return cursor
                })
        }
        return ids
    }
}

/// xoshiro256** (Blackman and Vigna), seeded from the system generator.
struct Xoshiro256StarStar: RandomNumberGenerator {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    init() {
        var system = SystemRandomNumberGenerator()
        state = (system.next(), system.next(), system.next(), system.next())
        if state == (0, 0, 0, 0) { state.0 = 0x9E37_79B9_7F4A_7C15 }
    }

    mutating func next() -> UInt64 {
        let result = rotate(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotate(state.3, 45)
        return result
    }

    private func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }
}
