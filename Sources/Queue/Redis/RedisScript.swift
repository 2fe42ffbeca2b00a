/// A Lua script run by its SHA1 (`EVALSHA`), with its source at hand for when Redis does not
/// know it yet (`NOSCRIPT` after a restart or `SCRIPT FLUSH`).
public struct RedisScript: Sendable {
    /// A short name used in errors and logs.
    public let name: String
    public let source: String
    public let sha1: String

    public init(name: String, source: String) {
        self.name = name
        self.source = source
        self.sha1 = SHA1.hexDigest(of: Array(source.utf8))
    }

    /// One invocation of a script, for ``RedisClient/pipeline(scripts:)``.
    public struct Call: Sendable {
        public var script: RedisScript
        public var keys: [String]
        public var arguments: [RESPArgument]

        public init(_ script: RedisScript, keys: [String], arguments: [RESPArgument]) {
            self.script = script
            self.keys = keys
            self.arguments = arguments
        }
    }

    func evalSHA(keys: [String], arguments: [RESPArgument]) -> RedisCommand {
        RedisCommand("EVALSHA", [.string(sha1), .int(keys.count)] + keys.map { .string($0) } + arguments)
    }

    func eval(keys: [String], arguments: [RESPArgument]) -> RedisCommand {
        RedisCommand("EVAL", [.string(source), .int(keys.count)] + keys.map { .string($0) } + arguments)
    }
}

/// SHA-1, only to name Lua scripts the way Redis does (not for security).
enum SHA1 {
    static func hexDigest(of message: [UInt8]) -> String {
        var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
        var data = message
        let bitLength = UInt64(message.count) * 8
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { data.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        var w = [UInt32](repeating: 0, count: 80)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                let b = chunk + i * 4
                w[i] = UInt32(data[b]) << 24 | UInt32(data[b + 1]) << 16 | UInt32(data[b + 2]) << 8 | UInt32(data[b + 3])
            }
            for i in 16..<80 {
                let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                w[i] = (x << 1) | (x >> 31)
            }
            var (a, b, c, d, e) = h
            for i in 0..<80 {
                let f: UInt32
                let k: UInt32
                switch i {
                case 0..<20: f = (b & c) | (~b & d); k = 0x5A82_7999
                case 20..<40: f = b ^ c ^ d; k = 0x6ED9_EBA1
                case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1B_BCDC
                default: f = b ^ c ^ d; k = 0xCA62_C1D6
                }
                let temp = ((a << 5) | (a >> 27)) &+ f &+ e &+ k &+ w[i]
                e = d
                d = c
                c = (b << 30) | (b >> 2)
                b = a
                a = temp
            }
            h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
        }
        let words = [h.0, h.1, h.2, h.3, h.4]
        let hexDigits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for word in words {
            for shift in stride(from: 28, through: 0, by: -4) {
                out.append(hexDigits[Int((word >> UInt32(shift)) & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// One element of a mixed pipeline: a plain command or a script call.
public enum RedisPipelineItem: Sendable {
    case command(RedisCommand)
    case script(RedisScript.Call)

    var command: RedisCommand {
        switch self {
        case .command(let command): return command
        case .script(let call): return call.script.evalSHA(keys: call.keys, arguments: call.arguments)
        }
    }

    /// The name to use in errors.
    public var name: String {
        switch self {
        case .command(let command): return command.name
        case .script(let call): return "EVALSHA \(call.script.name)"
        }
    }
}
