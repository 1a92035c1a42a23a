//! Change notifications (rtnetlink multicast groups), for waiting on a kernel state such as
//! "tunl0 is up and has an address" without polling.
//!
//! The race-free pattern: subscribe first, then dump the current state, then wait for events;
//! anything that changes between the dump and the wait is already queued on the socket.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use netlink_packet_core::{ParseableParametrized, NLMSG_ERROR, NLMSG_OVERRUN};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::error::{NlError, NlResult};
use super::socket::{parse_frame, recv_datagram, RECV_BUFFER_START};
use super::{
    RTM_DELADDR, RTM_DELLINK, RTM_DELROUTE, RTM_DELRULE, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE,
    RTM_NEWRULE,
};

/// Asking for a large receive queue makes overruns (ENOBUFS) rare during bursts such as a
/// BGP session flapping; the kernel caps it at net.core.rmem_max.
const EVENT_QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// An rtnetlink multicast group (the `RTNLGRP_*` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Link,
    Ipv4Addr,
    Ipv6Addr,
    Ipv4Route,
    Ipv6Route,
    Ipv4Rule,
    Ipv6Rule,
}

impl Group {
    fn number(self) -> u32 {
        match self {
            Group::Link => 1,
            Group::Ipv4Addr => 5,
            Group::Ipv4Route => 7,
            Group::Ipv4Rule => 8,
            Group::Ipv6Addr => 9,
            Group::Ipv6Route => 11,
            Group::Ipv6Rule => 19,
        }
    }
}

/// Every group a guard of the host's default routes and policy rules needs: routes and rules of
/// both families, and the links and addresses whose state decides whether a route can go back.
pub const HOST_GUARD_GROUPS: [Group; 7] = [
    Group::Link,
    Group::Ipv4Addr,
    Group::Ipv6Addr,
    Group::Ipv4Route,
    Group::Ipv6Route,
    Group::Ipv4Rule,
    Group::Ipv6Rule,
];

/// A socket subscribed to change notifications in the namespace it was created in.
pub struct EventSocket {
    pub(super) socket: Socket,
    buf: Vec<u8>,
}

impl EventSocket {
    pub fn subscribe(groups: &[Group]) -> NlResult<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)
            .map_err(|e| NlError::from_io(&e).context("open rtnetlink event socket"))?;
        // Best effort: a smaller queue still works, it just overruns sooner.
        let _ = socket.set_rx_buf_sz(EVENT_QUEUE_BYTES);
        socket
            .bind_auto()
            .map_err(|e| NlError::from_io(&e).context("bind rtnetlink event socket"))?;
        for group in groups {
            socket.add_membership(group.number()).map_err(|e| {
                NlError::from_io(&e).context(format!("subscribe to rtnetlink group {group:?}"))
            })?;
        }
        Ok(EventSocket {
            socket,
            buf: Vec::with_capacity(RECV_BUFFER_START),
        })
    }

    /// Waits until at least one notification arrives and returns everything queued by then,
    /// or `None` once `deadline` passes. Sleeps in poll(2), never spins.
    ///
    /// `Err` with `is_overrun()` means notifications were dropped because the queue was full:
    /// the caller must re-read (dump) the state it waits for, then keep waiting. Whatever was
    /// still queued at that point is discarded, since the dump supersedes it.
    pub fn next_batch(&mut self, deadline: Instant) -> NlResult<Option<Vec<RouteNetlinkMessage>>> {
        loop {
            let batch = self.drain()?;
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            // Round up so the last sub-millisecond does not turn into a zero-timeout spin.
            let wait_ms = deadline.duration_since(now).as_micros().div_ceil(1000);
            let timeout = PollTimeout::try_from(wait_ms).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(errno) => {
                    return Err(NlError::from_errno(errno as i32, None)
                        .context("wait for rtnetlink events"))
                }
            }
        }
    }

    /// Everything queued right now, without waiting: for a caller that polls this socket
    /// together with others (the guard daemon's signals). An overrun is reported as in
    /// [`EventSocket::next_batch`].
    pub fn queued(&mut self) -> NlResult<Vec<RouteNetlinkMessage>> {
        self.drain()
    }

    /// After an overrun the kernel drops every new notification until the queue has been
    /// emptied once. What is queued is older than the dump the caller is about to do, so it is
    /// thrown away, and notifications flow again from here on.
    fn discard_queue(&mut self) {
        loop {
            let mut empty: &mut [u8] = &mut [];
            match self
                .socket
                .recv(&mut empty, libc::MSG_DONTWAIT | libc::MSG_TRUNC)
            {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Reads every datagram queued right now without blocking.
    fn drain(&mut self) -> NlResult<Vec<RouteNetlinkMessage>> {
        let mut batch = Vec::new();
        loop {
            let len = match recv_datagram(&self.socket, &mut self.buf, libc::MSG_DONTWAIT) {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(batch),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.discard_queue();
                    return Err(NlError::from_io(&e).context(
                        "rtnetlink event queue overran; re-read the state and keep waiting",
                    ));
                }
                Err(e) => {
                    return Err(NlError::from_io(&e).context("receive rtnetlink events"));
                }
            };
            let mut offset = 0;
            while offset < len {
                let frame = parse_frame(&self.buf[offset..len])
                    .map_err(|e| e.context("read rtnetlink event"))?;
                offset += frame.advance;
                match frame.kind {
                    RTM_NEWLINK | RTM_DELLINK | RTM_NEWADDR | RTM_DELADDR | RTM_NEWROUTE
                    | RTM_DELROUTE | RTM_NEWRULE | RTM_DELRULE => {
                        let message =
                            RouteNetlinkMessage::parse_with_param(frame.payload, frame.kind)
                                .map_err(|e| {
                                    NlError::malformed(format!("malformed notification: {e}"))
                                        .context("read rtnetlink event")
                                })?;
                        batch.push(message);
                    }
                    NLMSG_ERROR | NLMSG_OVERRUN => {
                        return Err(NlError::malformed(format!(
                            "unexpected netlink message type {} on the event socket",
                            frame.kind
                        ))
                        .context("read rtnetlink event"))
                    }
                    // Other groups' notifications (netconf, neighbours) are not ours to read.
                    _ => {}
                }
            }
        }
    }
}

impl AsFd for EventSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
