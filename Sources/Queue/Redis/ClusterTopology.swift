/// Which master serves each slot of a Redis Cluster, as `CLUSTER SHARDS` reported it.
struct ClusterTopology: Sendable {
    /// The masters, in the order the cluster listed them.
    private(set) var masters: [RedisConfiguration.Address]
    /// For each slot, the index of its master in ``masters``; -1 where none serves it.
    private var owners: [Int16]

    /// Reads the reply of `CLUSTER SHARDS` (RESP2: each shard a flat list of names and values,
    /// `slots` as start and end pairs, `nodes` as such lists). Only masters that are online
    /// serve slots; replicas are never read from.
    init(shards reply: RESPValue) throws(RedisError) {
        func unexpected() -> RedisError { RedisError.unexpected(reply, command: "CLUSTER SHARDS") }
        guard let shards = reply.array else { throw unexpected() }
        masters = []
        owners = Array(repeating: -1, count: ClusterSlot.count)
        for shard in shards {
            let fields = try Self.fields(of: shard, unexpected: unexpected)
            guard let ranges = fields["slots"]?.array, let nodes = fields["nodes"]?.array else { throw unexpected() }
            var master: RedisConfiguration.Address?
            for node in nodes {
                let node = try Self.fields(of: node, unexpected: unexpected)
                guard node["role"]?.string == "master", node["health"]?.string ?? "online" == "online" else { continue }
                let endpoint = node["endpoint"]?.string.flatMap { $0.isEmpty || $0 == "?" ? nil : $0 } ?? node["ip"]?.string
                // No TLS here: a node that only has a `tls-port` is one this client cannot reach.
                guard let host = endpoint, let port = node["port"]?.int else { throw unexpected() }
                master = .tcp(host: host, port: port)
            }
            // A master without slots (a node still becoming a replica, or an empty one) serves
            // nothing: it is not a master to route to, nor one whose replicas a WAIT counts.
            guard let master, !ranges.isEmpty, ranges.count % 2 == 0 else { continue }
            let index = Int16(masters.count)
            masters.append(master)
            for pair in stride(from: 0, to: ranges.count, by: 2) {
                guard let start = ranges[pair].int, let end = ranges[pair + 1].int, 0 <= start, start <= end,
                    end < ClusterSlot.count
                else { throw unexpected() }
                for slot in start...end { owners[slot] = index }
            }
        }
        guard !masters.isEmpty else {
            throw RedisError(code: .unreachable, command: "CLUSTER SHARDS", message: "the cluster reports no master online")
        }
    }

    private static func fields(of value: RESPValue, unexpected: () -> RedisError) throws(RedisError) -> [String: RESPValue] {
        guard let flat = value.array, flat.count % 2 == 0 else { throw unexpected() }
        var fields: [String: RESPValue] = [:]
        for index in stride(from: 0, to: flat.count, by: 2) {
            guard let name = flat[index].string else { throw unexpected() }
            fields[name] = flat[index + 1]
        }
        return fields
    }

    /// The master serving `slot`, if the map knows one.
    func master(forSlot slot: Int) -> RedisConfiguration.Address? {
        let index = owners[slot]
        return index < 0 ? nil : masters[Int(index)]
    }

    /// Records what a `MOVED` reply said: `slot` is now served by `node`.
    mutating func assign(slot: Int, to node: RedisConfiguration.Address) {
        if let index = masters.firstIndex(of: node) {
            owners[slot] = Int16(index)
        } else {
            owners[slot] = Int16(masters.count)
            masters.append(node)
        }
    }
}
