import Foundation
import Logging
import Testing

@testable import Jobs

#if canImport(Glibc)
    import Glibc
#endif

/// A root worker hands workspaces to the script account only once they are complete, and
/// removes what scripts could touch as that account: never as root along paths a script's
/// process may have turned into links.
@Suite(.serialized, .enabled(if: getuid() == 0, "a root worker's hand-over and removal")) struct OperationWorkspaceTests {
    static func owner(_ path: String) -> uid_t? {
        var status = stat()
        return lstat(path, &status) == 0 ? status.st_uid : nil
    }

    @Test func aHandedOverWorkspaceIsRemovedAsTheScriptsAccount() async throws {
        let root = URL(fileURLWithPath: "/tmp/harrow-workspace-\(UUID().uuidString.lowercased())")
        defer { try? FileManager.default.removeItem(at: root) }
        let workspaces = root.appendingPathComponent("workspaces")
        try FileManager.default.createDirectory(at: workspaces.appendingPathComponent("ws/sub"), withIntermediateDirectories: true)
        _ = chmod(root.path, 0o755)
        _ = chmod(workspaces.path, 0o711)
        try Data("script output\n".utf8).write(to: workspaces.appendingPathComponent("ws/sub/file"))
        let sandbox = try await ScriptSandbox.prepare(
            mode: .none, runAs: "nobody", hiddenPaths: [], workspaceRoot: workspaces, logger: Logger(label: "test.workspace"))
        let workspace = OperationWorkspace(directory: workspaces.appendingPathComponent("ws"), account: sandbox.account)
        try workspace.handOver()
        for path in ["ws", "ws/sub", "ws/sub/file"] {
            #expect(Self.owner(workspaces.appendingPathComponent(path).path) == sandbox.account.uid, "\(path)")
        }
        // Something the account may not delete, where a link to a root directory could be.
        let guarded = workspaces.appendingPathComponent("ws/sub/guarded")
        try FileManager.default.createDirectory(at: guarded, withIntermediateDirectories: true)
        _ = chown(guarded.path, 0, 0)
        _ = chmod(guarded.path, 0o755)
        try Data("root's\n".utf8).write(to: guarded.appendingPathComponent("file"))

        await workspace.remove(using: sandbox)
        #expect(!FileManager.default.fileExists(atPath: workspaces.appendingPathComponent("ws/sub/file").path))
        #expect(FileManager.default.fileExists(atPath: guarded.appendingPathComponent("file").path), "removed as nobody, not as root")
        #expect(FileManager.default.fileExists(atPath: workspace.path), "a handed-over workspace not emptied is left alone")
    }

    @Test func aWorkspaceNeverHandedOverIsRemovedByTheWorker() async throws {
        let root = URL(fileURLWithPath: "/tmp/harrow-workspace-\(UUID().uuidString.lowercased())")
        defer { try? FileManager.default.removeItem(at: root) }
        let workspaces = root.appendingPathComponent("workspaces")
        try FileManager.default.createDirectory(
            at: workspaces.appendingPathComponent("ws/repositories/r"), withIntermediateDirectories: true)
        _ = chmod(root.path, 0o755)
        _ = chmod(workspaces.path, 0o711)
        _ = chmod(workspaces.appendingPathComponent("ws").path, 0o700)
        let sandbox = try await ScriptSandbox.prepare(
            mode: .none, runAs: "nobody", hiddenPaths: [], workspaceRoot: workspaces, logger: Logger(label: "test.workspace"))
        let workspace = OperationWorkspace(directory: workspaces.appendingPathComponent("ws"), account: sandbox.account)
        #expect(Self.owner(workspace.path) == 0)
        await workspace.remove(using: sandbox)
        #expect(!FileManager.default.fileExists(atPath: workspace.path))
    }
}
