#if canImport(Glibc) || canImport(Darwin)
    #if canImport(Darwin)
        import Darwin
    #elseif canImport(Glibc)
        import Glibc
    #endif

    /// Readiness notification through poll(2), for systems without epoll (and compiled and tested
    /// on Linux too). One per event loop; loop thread only. O(n) per wait, which is fine for a
    /// client and a modest relay.
    final class PollSelector: SelectorBackend {
        private var descriptors: [pollfd] = []
        private var indexByDescriptor: [Int32: Int] = [:]

        init() throws(TransportError) {}

        private func events(_ interest: Interest) -> Int16 {
            var events: Int16 = 0
            if interest.contains(.read) { events |= Int16(POLLIN) }
            if interest.contains(.write) { events |= Int16(POLLOUT) }
            return events
        }

        func register(_ descriptor: Int32, interest: Interest) throws(TransportError) {
            // As epoll_ctl does: a descriptor is registered once.
            guard indexByDescriptor[descriptor] == nil else {
                throw .systemCall("poll registration", reason: TransportError.Reason(errno: EEXIST))
            }
            indexByDescriptor[descriptor] = descriptors.count
            descriptors.append(pollfd(fd: descriptor, events: events(interest), revents: 0))
        }

        func modify(_ descriptor: Int32, interest: Interest) throws(TransportError) {
            guard let index = indexByDescriptor[descriptor] else {
                throw .systemCall("poll registration", reason: TransportError.Reason(errno: ENOENT))
            }
            descriptors[index].events = events(interest)
        }

        func deregister(_ descriptor: Int32) {
            guard let index = indexByDescriptor.removeValue(forKey: descriptor) else { return }
            let last = descriptors.count - 1
            if index != last {
                descriptors[index] = descriptors[last]
                indexByDescriptor[descriptors[index].fd] = index
            }
            descriptors.removeLast()
        }

        func wait(timeoutMilliseconds: Int32, _ body: (Readiness) -> Void) throws(TransportError) {
            let count = poll(&descriptors, nfds_t(descriptors.count), timeoutMilliseconds)
            if count < 0 {
                let code = errno
                if code == EINTR { return }
                throw .systemCall("poll", reason: TransportError.Reason(errno: code))
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
