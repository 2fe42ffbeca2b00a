import NIOConcurrencyHelpers
import NIOCore

/// Counts the listener's open connections per client address (an IPv6 client per /64, as
/// ``AddressBucket`` groups it) and refuses one more than `limit`, so a single client cannot
/// take every connection `--max-connections` allows. Trusted proxies are not counted: every
/// client behind them shares their address.
final class ConnectionsPerAddress: Sendable {
    let limit: Int
    let proxies: TrustedProxies
    private let open = NIOLockedValueBox([String: Int]())

    init(limit: Int, proxies: TrustedProxies) {
        self.limit = limit
        self.proxies = proxies
    }

    /// Counts `channel` against its address until it closes, or returns `false` (counting
    /// nothing) when its address holds `limit` connections already.
    func admit(_ channel: any Channel) -> Bool {
        guard let address = channel.remoteAddress?.ipAddress, !proxies.isTrusted(address) else { return true }
        let bucket = AddressBucket.of(address)
        let admitted = open.withLockedValue { open in
            guard open[bucket, default: 0] < limit else { return false }
            open[bucket, default: 0] += 1
            return true
        }
        guard admitted else { return false }
        channel.closeFuture.whenComplete { [open] _ in
            open.withLockedValue { open in
                let remaining = open[bucket, default: 1] - 1
                open[bucket] = remaining > 0 ? remaining : nil
            }
        }
        return true
    }

    /// How many connections `address`'s bucket holds now.
    func count(for address: String) -> Int {
        open.withLockedValue { $0[AddressBucket.of(address), default: 0] }
    }
}

/// The connection was refused: its address holds as many connections as it may.
struct TooManyConnectionsFromAddress: Error {}
