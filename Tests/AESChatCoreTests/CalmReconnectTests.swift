import AESChatCrypto
import Testing

@testable import AESChatCore

/// Calm reconnects (issue 14, item 9): a relay back after a restart is rejoined within about 2 s of its return,
/// `/reconnect` tries at once, and the others see a returning member as back, not as new.
@Suite struct CalmReconnectTests {
    /// When (on the loop's clock) each `reconnected` was shown.
    final class Times: ClientOutput {
        let loop: MemoryEventLoop
        let inner: EventCollector
        var reconnectedAt: [Duration] = []
        init(loop: MemoryEventLoop, inner: EventCollector) {
            self.loop = loop
            self.inner = inner
        }
        func emit(_ event: ClientEvent) {
            if event == .reconnected { reconnectedAt.append(loop.now) }
            inner.emit(event)
        }
    }

    @Test func aRelayAwayFor10Seconds_isRejoinedWithin2SecondsOfItsReturn_withWaitsOf2SecondsAtMost() throws {
        let harness = SessionHarness()
        let (_, bobOutput, _) = harness.chat.client("bob")
        harness.relayDown = true
        harness.cut()
        let lostAt = harness.loop.now
        var reconnectedAt: Duration?
        while harness.loop.now - lostAt < .seconds(10) {
            harness.loop.advance(by: .milliseconds(100))
        }
        harness.relayDown = false
        let back = harness.loop.now
        while reconnectedAt == nil, harness.loop.now - back < .seconds(10) {
            harness.loop.advance(by: .milliseconds(100))
            if harness.output.events.contains(.reconnected) { reconnectedAt = harness.loop.now }
        }
        let rejoined = try #require(reconnectedAt)
        // The random factor is 1 here, the longest wait a client can draw.
        #expect(rejoined - back <= .milliseconds(2100))
        #expect(harness.reconnectDelays.allSatisfy { $0 <= 2000 }, "\(harness.reconnectDelays)")
        #expect(harness.reconnectDelays.prefix(3) == [500, 1000, 2000])
        #expect(harness.connectionsRefused >= 4)
        #expect(harness.output.events.filter { $0 == .reconnected }.count == 1)
        // bob, who stayed, sees alice back rather than a new member.
        #expect(bobOutput.events.contains(.back(name: "alice")))
        #expect(!bobOutput.events.contains(.joined(name: "alice")))
    }

    @Test func reconnect_whileWaiting_triesAtOnce() {
        let harness = SessionHarness()
        harness.relayDown = true
        harness.cut()
        harness.loop.advance(by: .seconds(4))  // attempts at 0.5 s and 1.5 s; the next is due at 3.5 s + 2 s
        let refused = harness.connectionsRefused
        harness.relayDown = false
        harness.session.submit(line: "/reconnect")
        harness.loop.advance(by: .milliseconds(1))  // the attempt is due at once
        #expect(harness.output.events.contains(.reconnected))
        #expect(harness.reconnectDelays.last == 0)
        #expect(harness.connectionsRefused == refused)
    }

    @Test func reconnect_whileConnected_makesANewConnection_andALineInFlightArrivesOnce() {
        let harness = SessionHarness()
        let (_, bobOutput, _) = harness.chat.client("bob")
        // The relay takes the line, but its confirmation never comes back: /reconnect sends it again.
        harness.links.last!.rewrite = {
            if case .ping = $0 { return [] }
            return [$0]
        }
        harness.session.submit(line: "stuck?")
        harness.loop.runUntilIdle()
        let connections = harness.links.count
        harness.session.submit(line: "/reconnect")
        harness.loop.advance(by: .milliseconds(1))  // the attempt is due at once
        #expect(harness.links.count == connections + 1)
        #expect(harness.output.events.contains(.reconnected))
        #expect(harness.reconnectDelays == [0])
        #expect(bobOutput.messages == ["alice: stuck?"])
        #expect(!harness.output.events.contains { if case .connectionLost = $0 { true } else { false } })
        harness.session.submit(line: "/reconnect now")
        harness.loop.runUntilIdle()
        #expect(harness.output.errors == ["/reconnect takes no arguments"])
    }

    @Test func connectionsDroppedSoonAfterRegistering_areRetriedEverMoreSlowly_upTo30Seconds() {
        let harness = SessionHarness()
        for round in 1...8 {
            harness.cut()
            var steps = 0
            while harness.output.events.filter({ $0 == .reconnected }).count < round, steps < 400 {
                harness.loop.advance(by: .milliseconds(100))
                steps += 1
            }
        }
        #expect(harness.reconnectDelays == [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000])
    }
}

/// A member who comes back shows as back at the others (issue 14, item 9).
@Suite struct ReturningMemberTests {
    @Test func aMemberWhoLeftAndCameBack_withinFiveMinutes_isBack_later_orWithAnotherKey_itJoins() throws {
        let harness = AutomaticHarness()
        let alice = try harness.join("alice")
        var clock = ContinuousClock.now
        alice.client.departures = RecentDepartures(now: { clock })
        let bob = try harness.join("bob")
        #expect(alice.output.events.contains(.joined(name: "bob")))
        bob.client.interrupt()
        harness.loop.runUntilIdle()
        clock += .seconds(60)
        let again = try harness.join("bob")
        #expect(alice.output.events.last { if case .back = $0 { true } else { false } } == .back(name: "bob"))
        #expect(ClientEvent.back(name: "bob").json == #"{"event":"joined","name":"bob","back":true}"#)
        #expect(ClientEvent.back(name: "bob").humanText == "* bob is back")
        // Away for more than five minutes: a plain arrival.
        again.client.interrupt()
        harness.loop.runUntilIdle()
        clock += .seconds(301)
        let late = try harness.join("bob")
        let arrivals = alice.output.events.filter {
            switch $0 {
            case .joined(name: "bob"), .back(name: "bob"): true
            default: false
            }
        }
        #expect(arrivals == [.joined(name: "bob"), .back(name: "bob"), .joined(name: "bob")])
        // Someone else under bob's name (another identity key) is never back.
        late.client.interrupt()
        harness.loop.runUntilIdle()
        clock += .seconds(10)
        _ = try harness.join("bob", identity: Ed25519PrivateKey())
        #expect(alice.output.events.last { if case .joined = $0 { true } else { false } } == .joined(name: "bob"))
        #expect(alice.output.events.filter { $0 == .back(name: "bob") }.count == 1)
    }

    @Test func recentDepartures_membersLostWithTheConnection_areBack_andTheRecordIsBounded() {
        var clock = ContinuousClock.now
        let departures = RecentDepartures(now: { clock })
        departures.arrived("bob", identity: [1])
        departures.arrived("carol", identity: nil)  // proved no key
        departures.connectionLost()
        clock += .seconds(10)
        #expect(departures.isReturning("bob", identity: [1]))
        #expect(!departures.isReturning("bob", identity: [2]))
        #expect(!departures.isReturning("bob", identity: nil))
        #expect(!departures.isReturning("carol", identity: nil))
        #expect(!departures.isReturning("dave", identity: []))
        departures.arrived("bob", identity: [1])
        #expect(!departures.isReturning("bob", identity: [1]), "present again: no longer a departure")
        for index in 0..<(RecentDepartures.capacity + 10) {
            clock += .milliseconds(1)
            departures.arrived("m\(index)", identity: [])
            departures.left("m\(index)")
        }
        #expect(departures.isReturning("m\(RecentDepartures.capacity + 9)", identity: []))
        #expect(!departures.isReturning("m0", identity: []))
    }
}
