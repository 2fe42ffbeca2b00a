import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// ``RedisConnection`` and ``RedisClient`` against a real server: pipelining, concurrency, error
/// replies, scripts, timeouts, unreachable servers, authentication and databases.
@Suite("Redis client")
struct RedisClientTests {
    @Test func pipelineOfAThousandCommandsRepliesInOrder() async throws {
        try await TestRedis.withClient { client in
            let key = TestRedis.uniqueQueueName("pipeline")
            let replies = try await client.pipeline((0..<1000).map { _ in RedisCommand("INCR", [.string(key)]) })
            #expect(replies == (1...1000).map { RESPValue.integer($0) })
            try await client.send("DEL", [.string(key)])
        }
    }

    @Test func pipelineKeepsErrorRepliesInPlace() async throws {
        try await TestRedis.withClient { client in
            let key = TestRedis.uniqueQueueName("pipeline-error")
            let replies = try await client.pipeline([
                RedisCommand("SET", [.string(key), "not a number"]),
                RedisCommand("INCR", [.string(key)]),
                RedisCommand("GET", [.string(key)]),
            ])
            try #require(replies.count == 3)
            #expect(replies[0] == .simpleString(ByteBuffer(string: "OK")))
            guard case .error(let message) = replies[1] else {
                Issue.record("expected an error reply, got \(replies[1])")
                return
            }
            #expect(message.hasPrefix("ERR"))
            #expect(replies[2] == .bulkString(ByteBuffer(string: "not a number")))
            #expect(try await client.pipeline([RedisCommand]()) == [])
            try await client.send("DEL", [.string(key)])
        }
    }

    @Test func concurrentSendsFromManyTasksShareThePool() async throws {
        try await TestRedis.withClient(configure: { $0.poolSize = 3 }) { client in
            let key = TestRedis.uniqueQueueName("concurrent")
            let perTask = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<40 {
                    group.addTask {
                        var seen: [Int] = []
                        for _ in 0..<25 { seen.append(try await client.send("INCR", [.string(key)]).int ?? -1) }
                        return seen
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            // Every INCR ran once, and each task saw its own replies, in order.
            #expect(perTask.flatMap { $0 }.sorted() == Array(1...1000))
            for seen in perTask { #expect(seen == seen.sorted()) }
            #expect(try await client.send("GET", [.string(key)]).int == 1000)
            // Commands are spread over exactly `poolSize` connections (per node, on a cluster,
            // where client ids are counted per node).
            guard !client.isCluster else {
                try await client.send("DEL", [.string(key)])
                return
            }
            let ids = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<30 { group.addTask { try await client.send("CLIENT", ["ID"]).int ?? -1 } }
                return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
            }
            #expect(ids.count == 3)
            try await client.send("DEL", [.string(key)])
        }
    }

    @Test func closedClientReconnectsOnTheNextCommand() async throws {
        try await TestRedis.withClient(configure: { $0.poolSize = 1 }) { client in
            let before = try await client.send("CLIENT", ["ID"]).int
            await client.close()
            let after = try await client.send("CLIENT", ["ID"]).int
            #expect(before != nil && after != nil && before != after)
        }
    }

    @Test func largeValuesRoundTripByteForByte() async throws {
        try await TestRedis.withClient { client in
            let key = TestRedis.uniqueQueueName("large")
            var random = SplitMix64(seed: 7)
            let bytes = (0..<(3 * 1024 * 1024 + 17)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            try await client.send("SET", [.string(key), .bytes(ByteBuffer(bytes: bytes))])
            let reply = try await client.send("GET", [.string(key)])
            #expect(reply.bytes == ByteBuffer(bytes: bytes))
            try await client.send("DEL", [.string(key)])
        }
    }

    @Test func errorReplyIsAServerErrorNamingTheCommandButNotItsArguments() async throws {
        try await TestRedis.withClient { client in
            let key = TestRedis.uniqueQueueName("wrongtype")
            try await client.send("SET", [.string(key), "first-secret-value"])
            let error = await #expect(throws: RedisError.self) {
                try await client.send("LPUSH", [.string(key), "second-secret-value"])
            }
            #expect(error?.code == .serverError)
            #expect(error?.command == "LPUSH")
            #expect(error?.serverErrorPrefix == "WRONGTYPE")
            let description = error.map { "\($0)" } ?? ""
            #expect(description.contains("LPUSH"))
            #expect(description.contains("WRONGTYPE"))
            #expect(!description.contains("secret-value"))
            #expect(!description.contains(key))
            // sendRaw hands the error reply back as a value instead.
            let raw = try await client.sendRaw(RedisCommand("LPUSH", [.string(key), "x"]))
            guard case .error(let message) = raw else {
                Issue.record("expected an error reply, got \(raw)")
                return
            }
            #expect(message.hasPrefix("WRONGTYPE"))
            try await client.send("DEL", [.string(key)])
        }
    }

    /// ``RedisError`` promises that its description "never carries command arguments, so
    /// payloads and passwords stay out of logs". Redis echoes the arguments of an unknown
    /// command in its error message, and the description repeats that message verbatim.
    @Test func serverErrorDescriptionDoesNotEchoArgumentsOfAnUnknownCommand() async throws {
        try await TestRedis.withClient { client in
            let error = await #expect(throws: RedisError.self) {
                try await client.send("NOSUCHCOMMAND", ["password=hunter2-secret"])
            }
            #expect(error?.code == .serverError)
            #expect(error?.command == "NOSUCHCOMMAND")
            #expect(error.map { !"\($0)".contains("hunter2-secret") } == true, "\(String(describing: error))")
        }
    }

    @Test func scriptErrorNamesTheScript() async throws {
        try await TestRedis.withClient { client in
            let script = RedisScript(name: "t-fails", source: "return redis.error_reply('ERR t-fails says no')")
            let error = await #expect(throws: RedisError.self) { try await client.run(script, keys: [], arguments: []) }
            #expect(error?.code == .serverError)
            #expect(error?.command == "EVALSHA t-fails")
            #expect(error?.message.contains("t-fails says no") == true)
        }
    }

    @Test func scriptsAreReloadedAfterScriptFlush() async throws {
        // On a private server: SCRIPT FLUSH would pull the scripts from under parallel tests.
        try await RedisServerProcess.withServer { server in
            let client = RedisClient(configuration: server.configuration(), logger: TestRedis.logger())
            let script = RedisScript(name: "t-add", source: "return tonumber(ARGV[1]) + #KEYS")
            #expect(try await client.run(script, keys: ["a", "b"], arguments: [40]) == .integer(42))
            #expect(try await client.run(script, keys: ["a", "b"], arguments: [41]) == .integer(43))

            try await client.send("SCRIPT", ["FLUSH"])
            #expect(try await client.run(script, keys: ["a"], arguments: [1]) == .integer(2))

            try await client.send("SCRIPT", ["FLUSH"])
            let call = RedisScript.Call(script, keys: [], arguments: [7])
            let replies = try await client.pipeline([
                .script(call), .command(RedisCommand("PING")),
                .script(RedisScript.Call(script, keys: ["k"], arguments: [8])),
            ])
            #expect(replies == [.integer(7), .simpleString(ByteBuffer(string: "PONG")), .integer(9)])
            await client.close()
        }
    }

    @Test func everyQueueScriptCompiles() async throws {
        let scripts: [RedisScript] = [
            QueueScripts.enqueue, QueueScripts.fetch, QueueScripts.retry, QueueScripts.deadLetter,
            QueueScripts.acknowledgeUnique, QueueScripts.releaseUnique, QueueScripts.handBack, QueueScripts.reclaim,
            QueueScripts.deleteIdleConsumer, QueueScripts.promote, QueueScripts.stats, QueueScripts.heartbeat,
            QueueScripts.staleWorkers, QueueScripts.acquireLease, QueueScripts.releaseLease, QueueScripts.retryDead,
            QueueScripts.retryAllDead, QueueScripts.purgeDead, QueueScripts.deleteWaiting,
        ]
        try await TestRedis.withClient { client in
            let replies = try await client.pipeline(scripts.map { RedisCommand("SCRIPT", ["LOAD", .string($0.source)]) })
            for (script, reply) in zip(scripts, replies) {
                #expect(reply.string?.count == 40, "\(script.name): \(reply)")
            }
        }
    }

    /// A command that gets no reply within the command timeout fails with `timeout`, its
    /// connection is dropped, and the very next command must work on a fresh one. Today the
    /// handler fails the pending promises before it closes the channel: the caller resumes,
    /// still sees the old connection as active and sends on it. That command then fails with
    /// the stale error of the other command ("timeout in BLPOP") or, once NIO has removed the
    /// handlers, is dropped with its promise and never returns. Each round is one chance to
    /// lose that race, so ten clients run ten rounds each.
    ///
    /// On a private single Redis whatever `REDIS_URL` names: the race is a connection's, and
    /// on a loaded cluster the 300 ms timeout also cut short the reading of its slot map.
    @Test func commandTimeoutFailsTheCommandAndTheNextCommandSucceeds() async throws {
        let key = TestRedis.uniqueQueueName("timeout")
        let server = try await RedisServerProcess.start()
        let port = server.port
        defer { Task { await server.shutdown() } }
        let failures = try await Self.roundsOnTenClients(configure: {
            $0.clusterSeeds = []
            $0.address = .tcp(host: "127.0.0.1", port: port)
            $0.commandTimeout = .milliseconds(300)
        }) {
            client in
            // BLPOP blocks this connection (not the server) for 2 s: longer than the timeout.
            let error = await #expect(throws: RedisError.self) { try await client.send("BLPOP", [.string(key), 2]) }
            #expect(error?.code == .timeout)
            #expect(error?.command == "BLPOP")
            // The PING must answer, on a fresh connection, with its own reply: not the stale
            // error of the BLPOP, and not never. A PING that itself takes longer than the 300 ms
            // timeout on a loaded machine is not that defect: it is asked again.
            let pong = try await withDeadline(.seconds(5), "PING after a timeout") {
                var attempts = 0
                while true {
                    do { return try await client.send("PING", []) } catch let error as RedisError
                        where error.code == .timeout && error.command == "PING" && attempts < 3
                    { attempts += 1 }
                }
            }
            #expect(pong == .simpleString(ByteBuffer(string: "PONG")))
        }
        #expect(failures.isEmpty, "the command after a timeout failed: \(failures.prefix(3))")
    }

    @Test func unreachableServerFailsFastWithUnreachable() async throws {
        let port = try LoopbackPort.unused()
        let configuration = RedisConfiguration(
            address: .tcp(host: "127.0.0.1", port: port), password: "pw-DoNotLog-42", connectTimeout: .seconds(60),
            reconnectDelay: .seconds(30), maxReconnectDelay: .seconds(30))
        let client = RedisClient(configuration: configuration, logger: TestRedis.logger())
        // A refused connection must not wait for the 60 s connect timeout.
        let first = await #expect(throws: RedisError.self) {
            try await withDeadline(.seconds(10), "PING to a closed port") { try await client.send("PING", []) }
        }
        #expect(first?.code == .unreachable)
        #expect(first.map { !"\($0)".contains("pw-DoNotLog-42") } == true)
        // While reconnecting backs off, commands fail at once with the same error.
        let second = await #expect(throws: RedisError.self) {
            try await withDeadline(.seconds(10), "second PING") { try await client.send("PING", []) }
        }
        #expect(second?.code == .unreachable)
        let direct = await #expect(throws: RedisError.self) {
            try await withDeadline(.seconds(10), "connect") {
                try await RedisConnection.connect(configuration: configuration, logger: TestRedis.logger())
            }
        }
        #expect(direct?.code == .unreachable)
        await client.close()
    }

    @Test func wrongPasswordIsAnAuthenticationFailure() async throws {
        try await RedisServerProcess.withServer(.init(password: "s3cret p@ss:w/rd")) { server in
            let configuration = server.configuration { $0.password = "Wr0ng-Passw0rd-XYZ" }
            let client = RedisClient(configuration: configuration, logger: TestRedis.logger())
            let error = await #expect(throws: RedisError.self) { try await client.send("PING", []) }
            #expect(error?.code == .authenticationFailed)
            #expect(error?.command == "AUTH")
            #expect(error.map { !"\($0)".contains("Wr0ng-Passw0rd-XYZ") } == true)
            let direct = await #expect(throws: RedisError.self) {
                try await RedisConnection.connect(configuration: configuration, logger: TestRedis.logger())
            }
            #expect(direct?.code == .authenticationFailed)
            await client.close()
        }
    }

    @Test func rightPasswordFromTheURLAuthenticates() async throws {
        try await RedisServerProcess.withServer(.init(password: "s3cret p@ss:w/rd")) { server in
            // The URL percent-encodes the password; the configuration decodes it for AUTH.
            var configuration = try RedisConfiguration(url: server.url())
            #expect(configuration.password == "s3cret p@ss:w/rd")
            let client = RedisClient(configuration: configuration, logger: TestRedis.logger())
            #expect(try await client.send("PING", []) == .simpleString(ByteBuffer(string: "PONG")))
            await client.close()

            configuration.username = "default"
            let withUser = RedisClient(configuration: configuration, logger: TestRedis.logger())
            #expect(try await withUser.send("PING", []) == .simpleString(ByteBuffer(string: "PONG")))
            await withUser.close()

            configuration.password = nil
            configuration.username = nil
            let anonymous = RedisClient(configuration: configuration, logger: TestRedis.logger())
            let error = await #expect(throws: RedisError.self) { try await anonymous.send("PING", []) }
            #expect(error?.serverErrorPrefix == "NOAUTH")
            await anonymous.close()
        }
    }

    /// On a private single Redis, whatever `REDIS_URL` names: a cluster has only database 0
    /// (its URL with another is refused, see ClusterRoutingTests).
    @Test func selectsTheConfiguredDatabase() async throws {
        let key = TestRedis.uniqueQueueName("select")
        try await RedisServerProcess.withServer { server in
            let db5 = RedisClient(configuration: server.configuration { $0.database = 5 }, logger: TestRedis.logger())
            let db0 = RedisClient(configuration: server.configuration { $0.database = 0 }, logger: TestRedis.logger())
            defer {
                Task {
                    await db5.close()
                    await db0.close()
                }
            }
            try await db5.send("SET", [.string(key), "in five"])
            #expect(try await db5.send("CLIENT", ["INFO"]).string?.contains(" db=5 ") == true)
            let value = try await db0.send("GET", [.string(key)])
            #expect(value == .null)
            let dedicated = try await db5.makeDedicatedConnection()
            #expect(try await dedicated.send(RedisCommand("GET", [.string(key)])).string == "in five")
            await dedicated.close()
        }
    }

    @Test func connectsOverAUnixSocket() async throws {
        try await RedisServerProcess.withServer(.init(unixSocket: true)) { server in
            let path = try #require(server.unixSocketPath)
            let configuration = try RedisConfiguration(url: "unix://\(path)?db=1")
            let client = RedisClient(configuration: configuration, logger: TestRedis.logger())
            try await client.send("SET", ["greeting", "hello"])
            await client.close()
            // The value landed in database 1 of that server.
            let tcp = RedisClient(configuration: server.configuration { $0.database = 1 }, logger: TestRedis.logger())
            #expect(try await tcp.send("GET", ["greeting"]).string == "hello")
            await tcp.close()
        }
    }

    /// A reply over `maxReplyBytes` is a protocol error, and the next command must work on a
    /// fresh connection (the same race as after a timeout, see above).
    @Test func replyLargerThanMaxReplyBytesIsAProtocolErrorAndTheNextCommandSucceeds() async throws {
        let key = TestRedis.uniqueQueueName("max-reply")
        let size = 128 * 1024
        try await TestRedis.withClient { client in
            try await client.send("SET", [.string(key), .bytes(ByteBuffer(repeating: 0x61, count: size))])
        }
        let failures = try await Self.roundsOnTenClients(rounds: 20, configure: { $0.maxReplyBytes = 16 * 1024 }) {
            client in
            let error = await #expect(throws: RedisError.self) { try await client.send("GET", [.string(key)]) }
            #expect(error?.code == .protocolError)
            let length = try await withDeadline(.seconds(5), "STRLEN after a protocol error") {
                try await client.send("STRLEN", [.string(key)])
            }
            #expect(length == .integer(size))
        }
        #expect(failures.isEmpty, "the command after a protocol error failed: \(failures.prefix(3))")
        try await TestRedis.withClient { try await $0.send("DEL", [.string(key)]) }
    }

    /// Runs `round` `rounds` times on each of ten single-connection clients at once; a client
    /// stops at its first thrown error. Returns the errors.
    static func roundsOnTenClients(
        rounds: Int = 10,
        configure: @escaping @Sendable (inout RedisConfiguration) -> Void,
        _ round: @escaping @Sendable (RedisClient) async throws -> Void
    ) async throws -> [String] {
        try await withThrowingTaskGroup(of: String?.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    try await TestRedis.withClient(configure: {
                        $0.poolSize = 1
                        configure(&$0)
                    }) { client in
                        for index in 1...rounds {
                            do {
                                try await round(client)
                            } catch {
                                return "round \(index): \(error)"
                            }
                        }
                        return nil
                    }
                }
            }
            return try await group.reduce(into: []) { failures, failure in
                if let failure { failures.append(failure) }
            }
        }
    }

    @Test func dedicatedConnectionServesABlockingCommand() async throws {
        try await TestRedis.withClient { client in
            let key = TestRedis.uniqueQueueName("blocking")
            let connection = try await client.makeDedicatedConnection(forKey: key)
            let popped = Task { try await connection.send(RedisCommand("BLPOP", [.string(key), 10])) }
            // The pool is not held up by the blocked connection.
            try await eventually("BLPOP is blocked") {
                let info = try await client.send("CLIENT", ["LIST"]).string ?? ""
                return info.contains("cmd=blpop")
            }
            try await client.send("RPUSH", [.string(key), "item"])
            let reply = try await popped.value
            #expect(reply.array?.compactMap(\.string) == [key, "item"])
            await connection.close()
        }
    }

    /// After a connection closed, ``RedisConnection/send(_:timeout:)`` must fail with
    /// `connectionClosed`. Once NIO has removed the channel's handlers, the request (and the
    /// promise in it) is dropped by the closed channel, and the caller waits forever.
    @Test func sendOnAClosedConnectionThrowsInsteadOfHanging() async throws {
        let connection = try await RedisConnection.connect(
            configuration: try TestRedis.configuration(), logger: TestRedis.logger())
        #expect(try await connection.send(RedisCommand("PING")) == .simpleString(ByteBuffer(string: "PONG")))
        await connection.close()
        #expect(!connection.isActive)
        let error = await #expect(throws: RedisError.self) {
            try await withDeadline(.seconds(3), "PING on a closed connection") {
                try await connection.send(RedisCommand("PING"))
            }
        }
        #expect(error?.code == .connectionClosed)
    }
}
