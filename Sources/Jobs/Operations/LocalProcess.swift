import CSpawnShims
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// A process on this host in a session and process group of its own, its stdout and stderr
/// read as they come, its end learned at once (a thread waits for it), the whole group
/// signalled on request and killed when the leader ends: no stray child outlives it (unless it
/// left the group on purpose; the sandbox's PID namespace covers that case).
final class LocalProcess: Sendable {
    /// How a process ended.
    enum Termination: Sendable, Hashable {
        case exited(Int32)
        case signaled(Int32)

        /// The exit status a shell would report: the code, or 128 + the signal.
        var exitStatus: Int {
            switch self {
            case .exited(let code): Int(code)
            case .signaled(let signal): 128 + Int(signal)
            }
        }
    }

    /// Which pipe a chunk of output came from.
    enum Stream: String, Sendable {
        case stdout, stderr
    }

    let pid: pid_t
    private let exit: EventLoopFuture<Termination>
    private let pipes: [(stream: Stream, channel: any Channel, reader: NIOAsyncChannel<ByteBuffer, Never>)]

    private init(
        pid: pid_t, exit: EventLoopFuture<Termination>,
        pipes: [(stream: Stream, channel: any Channel, reader: NIOAsyncChannel<ByteBuffer, Never>)]
    ) {
        self.pid = pid
        self.exit = exit
        self.pipes = pipes
    }

    /// Starts `arguments[0]` (an absolute path) with exactly `environment`, in `directory`.
    static func launch(
        _ arguments: [String], environment: [String: String], directory: String,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> LocalProcess {
        precondition(!arguments.isEmpty, "a process needs an executable")
        var stdoutPipe: [Int32] = [-1, -1]
        var stderrPipe: [Int32] = [-1, -1]
        guard harrow_pipe_cloexec(&stdoutPipe) == 0 else { throw LaunchError(errno: errno, what: "create a pipe") }
        guard harrow_pipe_cloexec(&stderrPipe) == 0 else {
            close(stdoutPipe[0])
            close(stdoutPipe[1])
            throw LaunchError(errno: errno, what: "create a pipe")
        }
        let pid: pid_t
        do {
            pid = try spawn(arguments, environment: environment, directory: directory, stdout: stdoutPipe[1], stderr: stderrPipe[1])
        } catch {
            for descriptor in stdoutPipe + stderrPipe { close(descriptor) }
            throw error
        }
        close(stdoutPipe[1])
        close(stderrPipe[1])
        let promise = group.next().makePromise(of: Termination.self)
        // waitpid blocks: a thread of its own per process, never a pool's (a run can last hours).
        let waiter = Thread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 {
                guard errno == EINTR else {
                    promise.succeed(.exited(-1))
                    return
                }
            }
            promise.succeed((status & 0x7f) == 0 ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f))
        }
        waiter.name = "harrow-wait-\(pid)"
        waiter.start()
        var pipes: [(stream: Stream, channel: any Channel, reader: NIOAsyncChannel<ByteBuffer, Never>)] = []
        for (stream, descriptor) in [(Stream.stdout, stdoutPipe[0]), (.stderr, stderrPipe[0])] {
            let opened = try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(input: descriptor) { channel in
                channel.eventLoop.makeCompletedFuture {
                    (channel, try NIOAsyncChannel<ByteBuffer, Never>(wrappingChannelSynchronously: channel))
                }
            }
            pipes.append((stream, opened.0, opened.1))
        }
        return LocalProcess(pid: pid, exit: promise.futureResult, pipes: pipes)
    }

    private static func spawn(
        _ arguments: [String], environment: [String: String], directory: String, stdout: Int32, stderr: Int32
    )
        throws -> pid_t
    {
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let result = harrow_spawn(&pid, arguments[0], argv, envp, directory, stdout, stderr)
        guard result == 0 else { throw LaunchError(errno: result, what: "start \(arguments[0])") }
        return pid
    }

    /// Reads both pipes until they close, handing each chunk to `output` in the order it came
    /// per stream. After the process ended, waits at most `drain` for the pipes to close (a
    /// child that left the group may hold them open), then closes them.
    func readOutput(drain: Duration = .seconds(2), _ output: @escaping @Sendable (Stream, ByteBuffer) async -> Void) async -> Termination {
        await withTaskGroup(of: Void.self) { group in
            for pipe in pipes {
                group.addTask {
                    try? await pipe.reader.executeThenClose { inbound, _ in
                        for try await buffer in inbound { await output(pipe.stream, buffer) }
                    }
                }
            }
            let termination = await waitForExit()
            // Nothing of the group may outlive its leader.
            signalGroup(SIGKILL)
            group.addTask { [pipes] in
                try? await Task.sleep(for: drain)
                for pipe in pipes { pipe.channel.close(promise: nil) }
            }
            // The readers end when the pipes close; the drain timer then has nothing to do.
            await group.next()
            await group.next()
            group.cancelAll()
            return termination
        }
    }

    /// How the process ended, once it did.
    func waitForExit() async -> Termination {
        (try? await exit.get()) ?? .exited(-1)
    }

    /// Sends `signal` to every process of the group. A group that is gone already is no error.
    func signalGroup(_ signal: Int32) {
        _ = kill(-pid, signal)
    }

    /// Why a process could not be started.
    struct LaunchError: Error, CustomStringConvertible {
        var errno: Int32
        var what: String

        var description: String { "could not \(what): \(String(cString: strerror(errno)))" }
    }
}
