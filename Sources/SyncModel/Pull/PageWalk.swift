/// A walk along a server's `next` links, guarded: a link already followed in this walk (a
/// Bundle whose `next` loops) or more pages than any practice has (a listing that never
/// ends) stops it with an error instead of spinning forever, or holding an endless list of
/// changes in memory. Pure.
public struct PageWalk: Sendable {
    public enum Stop: Error, Equatable, CustomStringConvertible {
        /// The server sent, as the next page, a link this walk already followed.
        case loop(page: Int)
        /// More pages than the limit.
        case tooManyPages(limit: Int)

        public var description: String {
            switch self {
            case .loop(let page):
                "the EHR's paging loops (page \(page) links back to a page already read)"
            case .tooManyPages(let limit):
                "the EHR's listing does not end (more than \(limit) pages)"
            }
        }
    }

    public let limit: Int
    public private(set) var pages = 0
    private var seen: Set<String> = []

    /// `limit`: the most pages one walk may read (a practice of a million records in pages of
    /// 50 is 20 000 pages).
    public init(first: String, limit: Int = 100_000) {
        self.limit = limit
        seen.insert(first)
    }

    /// Counts a page read; returns the link to read next (nil: the walk is done), or the
    /// reason to stop.
    public mutating func next(after link: String?) throws(Stop) -> String? {
        pages += 1
        guard let link else { return nil }
        guard seen.insert(link).inserted else { throw .loop(page: pages) }
        guard pages < limit else { throw .tooManyPages(limit: limit) }
        return link
    }
}
