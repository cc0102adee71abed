import SyncModel
import Testing

/// A server's `next` links, followed until they end, never in circles or forever (#14).
@Suite struct PageWalkTests {
    @Test func aWalkFollowsDistinctLinksToTheEnd() throws {
        var walk = PageWalk(first: "Patient?_count=2")
        #expect(try walk.next(after: "Patient?_count=2&_offset=2") == "Patient?_count=2&_offset=2")
        #expect(try walk.next(after: "Patient?_count=2&_offset=4") == "Patient?_count=2&_offset=4")
        #expect(try walk.next(after: nil) == nil)
        #expect(walk.pages == 3)
    }

    @Test(arguments: [
        ["p"],  // the first page links to itself
        ["p2", "p3", "p2"],  // a later page links back
    ])
    func aLoopStops(links: [String]) throws {
        var walk = PageWalk(first: "p")
        var stop: PageWalk.Stop?
        for link in links {
            do { _ = try walk.next(after: link) } catch { stop = error }
        }
        #expect(stop == .loop(page: links.count))
        #expect(stop?.description.contains("paging loops") == true)
    }

    @Test func aListingThatNeverEndsStopsAtTheLimit() {
        var walk = PageWalk(first: "h0", limit: 50)
        var stop: PageWalk.Stop?
        for n in 1...1_000 where stop == nil {
            do { _ = try walk.next(after: "h\(n)") } catch { stop = error }
        }
        #expect(stop == .tooManyPages(limit: 50))
        #expect(walk.pages == 50)
    }
}
