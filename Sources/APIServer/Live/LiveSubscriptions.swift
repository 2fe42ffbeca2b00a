import Foundation
import NIOConcurrencyHelpers

/// What one live-events socket follows: projects, and operations with their projects. Every
/// change goes through here, under one lock. Each entry carries the generation it was made in,
/// so the recheck, which reads the entries, checks them at leisure and then drops the ones whose
/// access is gone, drops only those still as it saw them: a subscription made or dropped while
/// it ran stays as the client left it.
final class LiveSubscriptions: Sendable {
    enum Target: Hashable, Sendable {
        case project(UUID)
        case operation(UUID)
    }

    struct Entry: Hashable, Sendable {
        /// The project whose read access the entry needs.
        var project: UUID
        var generation: UInt64
    }

    private struct State {
        var entries: [Target: Entry] = [:]
        var generation: UInt64 = 0
    }

    /// The most entries at once.
    let limit: Int
    private let state = NIOLockedValueBox(State())
    /// Called after the operations followed changed (to wake the socket's log reader).
    private let onOperationsChange: @Sendable () -> Void

    init(limit: Int, onOperationsChange: @escaping @Sendable () -> Void = {}) {
        self.limit = limit
        self.onOperationsChange = onOperationsChange
    }

    /// Whether `target` could be added now: it is followed already, or there is room.
    func hasRoom(for target: Target) -> Bool {
        state.withLockedValue { $0.entries[target] != nil || $0.entries.count < limit }
    }

    /// Follows `target` (again, in a new generation, when followed already); `false` when the
    /// limit is reached.
    @discardableResult
    func add(_ target: Target, project: UUID) -> Bool {
        let added = state.withLockedValue { state in
            guard state.entries[target] != nil || state.entries.count < limit else { return false }
            state.generation += 1
            state.entries[target] = Entry(project: project, generation: state.generation)
            return true
        }
        if added, case .operation = target { onOperationsChange() }
        return added
    }

    func remove(_ target: Target) {
        let removed = state.withLockedValue { $0.entries.removeValue(forKey: target) != nil }
        if removed, case .operation = target { onOperationsChange() }
    }

    /// The entries as they are now, for a recheck.
    func snapshot() -> [Target: Entry] {
        state.withLockedValue { $0.entries }
    }

    /// Removes the entries of `lost` that are still as they were in the snapshot.
    func drop(_ lost: [Target: Entry]) {
        guard !lost.isEmpty else { return }
        let operationsChanged = state.withLockedValue { state in
            var operationsChanged = false
            for (target, entry) in lost where state.entries[target] == entry {
                state.entries[target] = nil
                if case .operation = target { operationsChanged = true }
            }
            return operationsChanged
        }
        if operationsChanged { onOperationsChange() }
    }

    /// The operations followed, with the generation of each subscription (a new one starts the
    /// log from its beginning again).
    var operations: [UUID: UInt64] {
        state.withLockedValue { Self.operations($0.entries) }
    }

    func covers(_ notice: ActivityNotice) -> Bool {
        state.withLockedValue { state in
            if let project = notice.projectID, state.entries[.project(project)] != nil { return true }
            if let operation = notice.operationID, state.entries[.operation(operation)] != nil { return true }
            return false
        }
    }

    private static func operations(_ entries: [Target: Entry]) -> [UUID: UInt64] {
        var operations: [UUID: UInt64] = [:]
        for (target, entry) in entries {
            if case .operation(let id) = target { operations[id] = entry.generation }
        }
        return operations
    }
}
