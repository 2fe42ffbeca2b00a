/// A chunk of a remote script's output, in the order it arrived on its stream.
public enum RemoteOutput: Sendable, Hashable {
    case stdout([UInt8])
    case stderr([UInt8])
}
