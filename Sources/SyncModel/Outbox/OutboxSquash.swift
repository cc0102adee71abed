/// How a new local change combines with an earlier, not yet replayed change of the same
/// resource: several local edits before replay become one.
///
/// | earlier | new    | result                                  |
/// |---------|--------|-----------------------------------------|
/// | create  | update | create, with the new content            |
/// | create  | delete | nothing (both dropped)                  |
/// | update  | update | update, with the new content, old base  |
/// | update  | delete | delete, old base                        |
/// | delete  | any    | refused: the resource is gone locally   |
public enum OutboxSquash: Equatable, Sendable {
    /// Replace the earlier entry's operation and content, keeping its base and identity.
    case replace(OutboxOperation)
    /// Both changes cancel out: the earlier entry is dropped.
    case drop
    /// The change makes no sense (e.g. an update after a delete).
    case refuse

    public static func combine(earlier: OutboxOperation, new: OutboxOperation) -> OutboxSquash {
        switch (earlier, new) {
        case (.create, .update): .replace(.create)
        case (.create, .delete): .drop
        case (.update, .update): .replace(.update)
        case (.update, .delete): .replace(.delete)
        case (.delete, _), (_, .create): .refuse
        }
    }
}
