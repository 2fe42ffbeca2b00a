import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Sends commands to the masters of a Redis Cluster, each by the slot of its key.
///
/// The slot map comes from `CLUSTER SHARDS` (asked of a known master, or else of a seed). A
/// `MOVED` reply updates the map for its slot and sends the command again to the node it
/// names, and asks for a fresh map; `ASK` sends it once to the named node after `ASKING`,
/// without touching the map; `TRYAGAIN` waits a moment. A node that cannot be reached also
/// asks for a fresh map, which after a failover names the promoted replica. Nothing is read
/// from replicas.
final class ClusterRouter: Sendable {
    typealias Address = RedisConfiguration.Address

    private let configuration: RedisConfiguration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        var topology: ClusterTopology?
        var pools: [Address: [ConnectionSlot]] = [:]
        var nextConnection = 0
        var refresh: Task<ClusterTopology, any Error>?
        var refreshedAt: ContinuousClock.Instant?
    }

    /// How often one command may be redirected before its last reply is returned as is.
    static let maxRedirects = 5

    init(configuration: RedisConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    // MARK: Nodes and the slot map

    /// A pooled connection to `node` (``RedisConfiguration/poolSize`` of them per node).
    func connection(to node: Address) async throws(RedisError) -> RedisConnection {
        let slot = state.withLockedValue { state -> ConnectionSlot in
            let pool =
                state.pools[node]
                ?? {
                    let pool = (0..<configuration.poolSize).map { _ in ConnectionSlot(configuration: configuration) }
                    state.pools[node] = pool
                    return pool
                }()
            state.nextConnection &+= 1
            return pool[state.nextConnection % pool.count]
        }
        return try await slot.connection(configuration: configuration.aimed(at: node), eventLoopGroup: eventLoopGroup, logger: logger)
    }

    /// The master serving `key`'s slot; any master for a command without a key.
    func node(forKey key: String?) async throws(RedisError) -> Address {
        var topology = try await currentTopology()
        guard let key else { return topology.masters[Int.random(in: 0..<topology.masters.count)] }
        let slot = ClusterSlot.of(key)
        if let node = topology.master(forSlot: slot) { return node }
        topology = try await refresh()
        if let node = topology.master(forSlot: slot) { return node }
        throw RedisError(code: .unreachable, message: "no master of the cluster serves slot \(slot)")
    }

    /// Every master the slot map knows.
    func masters() async throws(RedisError) -> [Address] {
        try await currentTopology().masters
    }

    private func currentTopology() async throws(RedisError) -> ClusterTopology {
        if let topology = state.withLockedValue({ $0.topology }) { return topology }
        return try await refresh()
    }

    /// Reads the slot map again; callers that arrive while a read is under way share it.
    @discardableResult
    func refresh() async throws(RedisError) -> ClusterTopology {
        let task = state.withLockedValue { state -> Task<ClusterTopology, any Error> in
            if let running = state.refresh { return running }
            var candidates = state.topology?.masters ?? []
            for seed in configuration.clusterSeeds where !candidates.contains(seed) { candidates.append(seed) }
            let task = Task { try await self.readTopology(asking: candidates) }
            state.refresh = task
            return task
        }
        let result = await task.result
        let gone = state.withLockedValue { state -> [ConnectionSlot] in
            if state.refresh == task { state.refresh = nil }
            guard case .success(let topology) = result else { return [] }
            state.topology = topology
            state.refreshedAt = .now
            // Pools of nodes that are no longer masters (failed over, removed) go.
            let left = state.pools.keys.filter { !topology.masters.contains($0) }
            return left.flatMap { state.pools.removeValue(forKey: $0) ?? [] }
        }
        for slot in gone { await slot.close() }
        switch result {
        case .success(let topology): return topology
        case .failure(let error as RedisError): throw error
        case .failure(let error): throw RedisError(code: .unreachable, command: "CLUSTER SHARDS", message: "\(error)")
        }
    }

    /// Refreshes the map in the background, at most every 100 ms: after a redirect or a node
    /// that did not answer.
    func refreshSoon() {
        let due = state.withLockedValue { state in
            state.refresh == nil && (state.refreshedAt.map { .now - $0 > .milliseconds(100) } ?? true)
        }
        if due { Task { _ = try? await self.refresh() } }
    }

    /// Asks every candidate at once and takes the first map that comes back: a dead or hung
    /// master among them (the usual reason for a refresh) must not hold it up.
    private func readTopology(asking candidates: [Address]) async throws(RedisError) -> ClusterTopology {
        let outcome = NIOLockedValueBox((done: false, failures: [String]()))
        let result: Result<ClusterTopology, RedisError> = await withCheckedContinuation { continuation in
            guard !candidates.isEmpty else {
                continuation.resume(returning: .failure(RedisError(code: .unreachable, message: "no seed nodes")))
                return
            }
            for node in candidates {
                Task {
                    let answer: Result<ClusterTopology, RedisError>
                    do {
                        let reply = try await self.connection(to: node).send(RedisCommand("CLUSTER", ["SHARDS"]))
                        answer = .success(try ClusterTopology(shards: reply))
                    } catch {
                        answer = .failure((error as? RedisError) ?? RedisError(code: .unreachable, message: "\(error)"))
                    }
                    let resume = outcome.withLockedValue { outcome -> Result<ClusterTopology, RedisError>? in
                        guard !outcome.done else { return nil }
                        switch answer {
                        case .success:
                            outcome.done = true
                            return answer
                        case .failure(let error):
                            outcome.failures.append("\(node): \(error)")
                            guard outcome.failures.count == candidates.count else { return nil }
                            outcome.done = true
                            return .failure(
                                RedisError(
                                    code: .unreachable, command: "CLUSTER SHARDS",
                                    message: "no node of the cluster answered (\(outcome.failures.joined(separator: "; ")))"))
                        }
                    }
                    if let resume { continuation.resume(returning: resume) }
                }
            }
        }
        return try result.get()
    }

    /// Whether a redirect may be followed to `node`: only to a master of the slot map, read
    /// again when it does not know the node. A reply naming any other host (a compromised or
    /// misconfigured node) is not followed: the client would send it commands, and its
    /// credentials.
    private func isKnownMaster(_ node: Address) async -> Bool {
        if state.withLockedValue({ $0.topology?.masters.contains(node) ?? false }) { return true }
        return (try? await refresh().masters.contains(node)) ?? false
    }

    private func learn(slot: Int, servedBy node: Address) {
        state.withLockedValue { state in state.topology?.assign(slot: slot, to: node) }
        refreshSoon()
    }

    // MARK: Sending

    private enum Route: Sendable {
        case byKey
        case moved(Address)
        case ask(Address)
    }

    /// Sends `items` to the nodes their keys belong to, at once to every node concerned, and
    /// returns the replies in order. Redirected commands are sent again where the reply says.
    func pipeline(_ items: [RedisPipelineItem], client: RedisClient) async throws(RedisError) -> [RESPValue] {
        var replies = [RESPValue](repeating: .null, count: items.count)
        var pending = items.indices.map { ($0, Route.byKey) }
        let transactions = Self.transactions(of: items)
        let routingKeys = Self.routingKeys(of: items)
        for round in 0...Self.maxRedirects {
            var groups: [Address: [(index: Int, asking: Bool)]] = [:]
            var order: [Address] = []
            for (index, route) in pending {
                let node: Address
                var asking = false
                switch route {
                case .byKey: node = try await self.node(forKey: routingKeys[index])
                case .moved(let target): node = target
                case .ask(let target):
                    node = target
                    asking = true
                }
                if groups[node] == nil { order.append(node) }
                groups[node, default: []].append((index, asking))
            }
            let answered = try await send(groups: order.map { ($0, groups[$0]!) }, items: items, client: client)
            var redirected: [Int: Route] = [:]
            var wait = false
            for (node, index, reply) in answered {
                replies[index] = reply
                guard round < Self.maxRedirects, case .error(let message) = reply, let redirect = Redirect(message, from: node) else {
                    continue
                }
                switch redirect {
                case .moved(let slot, let target):
                    guard await isKnownMaster(target) else { continue }
                    learn(slot: slot, servedBy: target)
                    redirected[index] = .moved(target)
                case .ask(let target):
                    guard await isKnownMaster(target) else { continue }
                    redirected[index] = .ask(target)
                case .tryAgain:
                    wait = true
                    redirected[index] = .byKey
                }
            }
            if redirected.isEmpty { return replies }
            for (index, route) in redirected {
                // A transaction goes again as a whole (its EXEC failed with EXECABORT); during a
                // migration (ASK) it waits for the slot to settle rather than follow.
                if let block = transactions[index] {
                    for member in block { redirected[member] = { if case .ask = route { return .byKey } else { return route } }() }
                    if case .ask = route { wait = true }
                }
            }
            // A WAIT covers the writes before it on its connection: one whose slot's writes went
            // elsewhere goes again after them, where they went.
            let movedSlots = Dictionary(
                redirected.compactMap { index, route in routingKeys[index].map { (ClusterSlot.of($0), route) } },
                uniquingKeysWith: { first, _ in first })
            for (index, item) in items.enumerated() where redirected[index] == nil {
                guard case .command(let command) = item, command.name == "WAIT", let key = routingKeys[index],
                    let route = movedSlots[ClusterSlot.of(key)]
                else { continue }
                redirected[index] = { if case .ask(let target) = route { return .moved(target) } else { return route } }()
            }
            if wait { try? await Task.sleep(for: .milliseconds(25)) }
            pending = redirected.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
        return replies
    }

    /// For each item inside a transaction (`MULTI` … `EXEC` or `DISCARD`), the indices of the
    /// whole transaction.
    static func transactions(of items: [RedisPipelineItem]) -> [Int: ClosedRange<Int>] {
        var blocks: [Int: ClosedRange<Int>] = [:]
        var start: Int?
        for (index, item) in items.enumerated() {
            guard case .command(let command) = item else { continue }
            switch command.name.uppercased() {
            case "MULTI": start = index
            case "EXEC", "DISCARD":
                if let first = start { for member in first...index { blocks[member] = first...index } }
                start = nil
            default: break
            }
        }
        return blocks
    }

    /// Each item's routing key; a transaction (`MULTI` … `EXEC` or `DISCARD`) goes as a whole
    /// where its first key belongs.
    static func routingKeys(of items: [RedisPipelineItem]) -> [String?] {
        var keys = items.map(\.routingKey)
        for block in Set(transactions(of: items).values) {
            let key = keys[block].lazy.compactMap { $0 }.first
            for member in block { keys[member] = key }
        }
        return keys
    }

    /// Sends each node its commands (`ASKING` before those redirected by `ASK`), the nodes at
    /// once. Returns (node, item index, reply) for every command.
    private func send(
        groups: [(node: Address, members: [(index: Int, asking: Bool)])], items: [RedisPipelineItem], client: RedisClient
    ) async throws(RedisError) -> [(Address, Int, RESPValue)] {
        if groups.count == 1 {
            return try await send(to: groups[0].node, groups[0].members, items: items, client: client)
        }
        let outcomes = await withTaskGroup(of: Result<[(Address, Int, RESPValue)], RedisError>.self) { group in
            for (node, members) in groups {
                group.addTask {
                    do { return .success(try await self.send(to: node, members, items: items, client: client)) } catch {
                        return .failure((error as? RedisError) ?? RedisError(code: .connectionClosed, message: "\(error)"))
                    }
                }
            }
            var all: [Result<[(Address, Int, RESPValue)], RedisError>] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        // One node that did not answer fails its own commands only: the others' ran, and their
        // replies must not be hidden (a caller retrying the whole pipeline would repeat them).
        var answered: [(Address, Int, RESPValue)] = []
        var failures: [RedisError] = []
        for outcome in outcomes {
            switch outcome {
            case .success(let replies): answered += replies
            case .failure(let error): failures.append(error)
            }
        }
        if let first = failures.first, answered.isEmpty { throw first }
        if !failures.isEmpty {
            let failed = groups.filter { group in !answered.contains { $0.0 == group.node } }
            for (index, group) in failed.enumerated() {
                let error = failures[min(index, failures.count - 1)]
                let reply = RESPValue.error("UNREACHABLE \(group.node): \(error)")
                answered += group.members.map { (group.node, $0.index, reply) }
            }
        }
        return answered
    }

    private func send(
        to node: Address, _ members: [(index: Int, asking: Bool)], items: [RedisPipelineItem], client: RedisClient
    ) async throws(RedisError) -> [(Address, Int, RESPValue)] {
        var batch: [RedisPipelineItem] = []
        batch.reserveCapacity(members.count)
        for member in members {
            if member.asking { batch.append(.command(RedisCommand("ASKING"))) }
            batch.append(items[member.index])
        }
        let replies: [RESPValue]
        do {
            replies = try await client.pipeline(batch, on: connection(to: node))
        } catch {
            if error.code == .unreachable || error.code == .connectionClosed || error.code == .timeout { refreshSoon() }
            throw error
        }
        var answered: [(Address, Int, RESPValue)] = []
        answered.reserveCapacity(members.count)
        var position = 0
        for member in members {
            if member.asking { position += 1 }
            answered.append((node, member.index, position < replies.count ? replies[position] : .null))
            position += 1
        }
        return answered
    }

    /// Closes every pooled connection; later commands reconnect.
    func close() async {
        let pools = state.withLockedValue { $0.pools.values.flatMap { $0 } }
        for slot in pools { await slot.close() }
    }
}

/// What a `MOVED`, `ASK` or `TRYAGAIN` error reply tells the client to do.
enum Redirect: Equatable {
    case moved(slot: Int, to: RedisConfiguration.Address)
    case ask(to: RedisConfiguration.Address)
    case tryAgain

    /// Parses `MOVED <slot> <host>:<port>` and `ASK <slot> <host>:<port>` (an empty host means
    /// the host of `node`, the one that answered), or `TRYAGAIN …`; `nil` for any other reply.
    init?(_ message: String, from node: RedisConfiguration.Address) {
        if message.hasPrefix("TRYAGAIN") {
            self = .tryAgain
            return
        }
        let parts = message.split(separator: " ")
        guard parts.count >= 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]),
            (0..<ClusterSlot.count).contains(slot), let colon = parts[2].lastIndex(of: ":"),
            let port = Int(parts[2][parts[2].index(after: colon)...])
        else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty, case .tcp(let sameHost, _) = node { host = sameHost }
        let target = RedisConfiguration.Address.tcp(host: host, port: port)
        self = parts[0] == "MOVED" ? .moved(slot: slot, to: target) : .ask(to: target)
    }
}
