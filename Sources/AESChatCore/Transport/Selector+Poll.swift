#if !os(Linux)
    #if canImport(Darwin)
        import Darwin
    #elseif canImport(Glibc)
        import Glibc
    #endif

    /// Readiness notification through poll(2), for systems without epoll. One per event loop;
    /// loop thread only. O(n) per wait, which is fine for a client and a modest relay.
    struct Selector: ~Copyable {
        private var descriptors: [pollfd] = []
        private var indexByDescriptor: [Int32: Int] = [:]

        init() throws(TransportError) {}

        private func events(_ interest: Interest) -> Int16 {
            var events: Int16 = 0
            if interest.contains(.read) { events |= Int16(POLLIN) }
            if interest.contains(.write) { events |= Int16(POLLOUT) }
            return events
        }

        mutating func register(_ descriptor: Int32, interest: Interest) throws(TransportError) {
            indexByDescriptor[descriptor] = descriptors.count
            descriptors.append(pollfd(fd: descriptor, events: events(interest), revents: 0))
        }

        mutating func modify(_ descriptor: Int32, interest: Interest) throws(TransportError) {
            guard let index = indexByDescriptor[descriptor] else { return }
            descriptors[index].events = events(interest)
        }

        mutating func deregister(_ descriptor: Int32) {
            guard let index = indexByDescriptor.removeValue(forKey: descriptor) else { return }
            let last = descriptors.count - 1
            if index != last {
                descriptors[index] = descriptors[last]
                indexByDescriptor[descriptors[index].fd] = index
            }
            descriptors.removeLast()
        }

        mutating func wait(timeoutMilliseconds: Int32, _ body: (Readiness) -> Void) throws(TransportError) {
            let count = poll(&descriptors, nfds_t(descriptors.count), timeoutMilliseconds)
            if count < 0 {
                if errno == EINTR { return }
                throw .systemCall("poll", reason: System.lastReason)
            }
            guard count > 0 else { return }
            let ready = descriptors.filter { $0.revents != 0 }
            for entry in ready {
                let revents = Int32(entry.revents)
                body(
                    Readiness(
                        descriptor: entry.fd,
                        readable: revents & Int32(POLLIN) != 0,
                        writable: revents & Int32(POLLOUT) != 0,
                        failed: revents & Int32(POLLERR | POLLHUP | POLLNVAL) != 0
                    ))
            }
        }
    }
#endif
