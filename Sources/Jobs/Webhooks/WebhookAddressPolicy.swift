import Foundation
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// Which addresses a webhook notifier may POST to. By default only public ones: a project's
/// manager must not be able to make the worker reach its own network (Redis, Postgres, a
/// cloud's metadata service at 169.254.169.254) and read what answers through the dead
/// letters. `--webhook-allow-private` lifts that for installations whose receivers are on the
/// LAN.
public struct WebhookAddressPolicy: Sendable {
    /// Why a URL's host may not be reached.
    public struct Refusal: Error, Sendable, CustomStringConvertible {
        public var host: String
        public var address: String
        public var description: String {
            "\(host) resolves to \(address), a private, loopback, link-local or reserved address (--webhook-allow-private allows those)"
        }
    }

    /// Whether private, loopback, link-local and reserved addresses may be reached.
    public let allowsPrivate: Bool

    public init(allowsPrivate: Bool) {
        self.allowsPrivate = allowsPrivate
    }

    /// The addresses `host` resolves to, in the resolver's order, each checked: throws
    /// ``Refusal`` when any is not public (unless allowed), so that a name with one public and
    /// one private address cannot reach the private one on the second try.
    public func addresses(of host: String) async throws -> [IPAddress] {
        let addresses = try await Self.resolve(host)
        if !allowsPrivate, let refused = addresses.first(where: { !$0.isPublic }) {
            throw Refusal(host: host, address: refused.description)
        }
        return addresses
    }

    /// A failed name lookup (retried: DNS trouble passes).
    public struct LookupFailure: Error, Sendable, CustomStringConvertible {
        public var host: String
        public var reason: String
        public var description: String { "could not resolve \(host): \(reason)" }
    }

    /// Threads of their own for lookups: a name under a nameserver that never answers holds one
    /// for the resolver's whole timeout, and on NIO's shared pool (a thread per core) that would
    /// stall workspace hand-over and key generation with it.
    static let lookupThreadPool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        return pool
    }()

    /// `getaddrinfo` on ``lookupThreadPool``; a literal address comes back as itself.
    static func resolve(_ host: String) async throws -> [IPAddress] {
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return try await lookupThreadPool.runIfActive {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(name, nil, &hints, &list)
            guard status == 0, let first = list else {
                throw LookupFailure(host: host, reason: String(cString: gai_strerror(status)))
            }
            defer { freeaddrinfo(first) }
            var addresses: [IPAddress] = []
            var entry: UnsafeMutablePointer<addrinfo>? = first
            while let current = entry {
                if let address = IPAddress(current.pointee.ai_addr), !addresses.contains(address) { addresses.append(address) }
                entry = current.pointee.ai_next
            }
            guard !addresses.isEmpty else { throw LookupFailure(host: host, reason: "no address") }
            return addresses
        }
    }
}
