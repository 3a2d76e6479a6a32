/// What happens to a file a member offers (`join --accept-files`).
public enum IncomingFilePolicy: String, Equatable, Sendable, CaseIterable {
    /// Taken into the inbox without asking (within the size limit).
    case all
    /// The user is asked (`/accept`, `/decline`, or y/n on the terminal); no answer declines.
    case ask
    /// Every offer is declined, with a reason the sender sees.
    case none
}

/// A file of a folder being sent (`/send DIR`): its path on disk and its name inside the folder.
struct FolderEntry: Equatable {
    /// The path to open (the folder as typed, then the path inside it).
    var path: String
    /// The name offered: the folder's own name, then the path inside it, joined with `/`.
    var name: String
    var size: UInt64
}

/// The files of a folder not offered yet; one is offered at a time, the next when it is done.
final class FolderSend {
    let number: Int
    /// The folder's name as offered (the first component of every file's name).
    let name: String
    let recipient: String?
    var remaining: [FolderEntry]
    /// Files sent so far, and files that reached nobody.
    var sent = 0
    var failed = 0
    /// The members the files go to (those who leave are taken out).
    var targets: [String] = []
    /// The folder as the user typed it.
    var path = ""
    /// Why the rest of the folder is not sent, once it was stopped.
    var stopped: String?

    init(number: Int, name: String, recipient: String?, entries: [FolderEntry]) {
        self.number = number
        self.name = name
        self.recipient = recipient
        self.remaining = entries
        count = entries.count
    }

    /// The folder's files in all.
    let count: Int
}
