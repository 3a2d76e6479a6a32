#if os(Linux)
    import CLinux
    import Glibc

    /// Readiness notification through epoll (level-triggered). One per event loop; loop thread only.
    final class EpollSelector: SelectorBackend {
        private let instance: Descriptor
        private var epoll: Int32 { instance.rawValue }
        private let events: UnsafeMutableBufferPointer<epoll_event>

        init() throws(TransportError) {
            guard let instance = Descriptor(returned: epoll_create1(Int32(EPOLL_CLOEXEC))) else {
                throw .systemCall("epoll_create1", reason: System.lastReason)
            }
            self.instance = instance
            events = .allocate(capacity: 1024)
        }

        deinit {
            events.deallocate()
        }

        private func mask(_ interest: Interest) -> UInt32 {
            var mask: UInt32 = 0
            if interest.contains(.read) { mask |= EPOLLIN.rawValue | EPOLLRDHUP.rawValue }
            if interest.contains(.write) { mask |= EPOLLOUT.rawValue }
            return mask
        }

        private func control(_ operation: Int32, _ descriptor: Int32, _ interest: Interest) throws(TransportError) {
            var event = epoll_event()
            event.events = mask(interest)
            event.data.fd = descriptor
            guard epoll_ctl(epoll, operation, descriptor, &event) == 0 else {
                throw .systemCall("epoll_ctl", reason: System.lastReason)
            }
        }

        func register(_ descriptor: Int32, interest: Interest) throws(TransportError) {
            try control(EPOLL_CTL_ADD, descriptor, interest)
        }

        func modify(_ descriptor: Int32, interest: Interest) throws(TransportError) {
            try control(EPOLL_CTL_MOD, descriptor, interest)
        }

        func deregister(_ descriptor: Int32) {
            var event = epoll_event()
            _ = epoll_ctl(epoll, EPOLL_CTL_DEL, descriptor, &event)
        }

        /// Waits up to `timeoutMilliseconds` (-1: forever) and reports each ready descriptor.
        func wait(timeoutMilliseconds: Int32, _ body: (Readiness) -> Void) throws(TransportError) {
            let count = epoll_wait(epoll, events.baseAddress, Int32(events.count), timeoutMilliseconds)
            if count < 0 {
                let code = errno
                if code == EINTR { return }
                throw .systemCall("epoll_wait", reason: TransportError.Reason(errno: code))
            }
            for index in 0..<Int(count) {
                let event = events[index]
                let flags = event.events
                body(
                    Readiness(
                        descriptor: event.data.fd,
                        readable: flags & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0,
                        writable: flags & EPOLLOUT.rawValue != 0,
                        failed: flags & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
                    ))
            }
        }
    }
#endif
