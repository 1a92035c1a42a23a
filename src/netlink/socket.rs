//! The request/reply engine: one NETLINK_ROUTE socket, sequence numbers, and the rules for
//! when a reply is complete (ACK, single answer, or end of dump) and when it is an error.

use std::io;

use netlink_packet_core::{
    DoneBuffer, Emitable, ErrorBuffer, NetlinkBuffer, NetlinkHeader, NlasIterator, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::libc;

use super::error::{NlError, NlResult};

/// The kernel sizes each dump datagram to what the reader offered last time, capped near
/// 32 KiB; offering that much from the start gets the fewest round trips. Bigger datagrams
/// (a link with many VFs) are measured with a peek and the buffer grows to fit.
pub(crate) const RECV_BUFFER_START: usize = 32 * 1024;

/// How many times a dump interrupted by a concurrent change is requested in all. A dump of a
/// few hundred links takes well under a millisecond, so even a busy node settles long before.
pub(crate) const DUMP_ATTEMPTS: usize = 10;

const NETLINK_HEADER_LEN: usize = 16;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// What ends the reply to a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Reply {
    /// An `NLMSG_ERROR` with code 0 (the request carried `NLM_F_ACK`).
    Ack,
    /// One answer message (a GET without `NLM_F_DUMP`), or an error.
    Single,
    /// `NLMSG_DONE`, whose code may itself be an error.
    Dump,
}

/// A synchronous rtnetlink client bound to the network namespace it was created in.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    pub(super) recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
}

impl Netlink {
    /// Opens a socket in the calling thread's current network namespace; the socket stays in
    /// that namespace for its whole life, whichever thread uses it later.
    pub fn new() -> NlResult<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)
            .map_err(|e| NlError::from_io(&e).context("open rtnetlink socket"))?;
        // Without strict checking the kernel ignores every dump filter and silently returns
        // everything (and never reports a missing table). Kernels older than 4.20 lack the
        // option; the dump functions filter again in user space, so results stay correct there.
        if let Err(e) = socket.set_netlink_get_strict_chk(true) {
            if e.raw_os_error() != Some(libc::ENOPROTOOPT) {
                return Err(NlError::from_io(&e).context("enable NETLINK_GET_STRICT_CHK"));
            }
        }
        // Extended acks carry the kernel's reason ("Nexthop device is not up") into our errors;
        // capped acks stop the kernel from echoing our whole request back. Both are optional.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        socket
            .bind_auto()
            .map_err(|e| NlError::from_io(&e).context("bind rtnetlink socket"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| NlError::from_io(&e).context("connect rtnetlink socket"))?;
        Ok(Netlink {
            socket,
            seq: 0,
            recv_buf: Vec::with_capacity(RECV_BUFFER_START),
            send_buf: Vec::with_capacity(256),
        })
    }

    /// Sends a request that expects an ACK (`flags` must include `NLM_F_ACK`).
    pub(super) fn ack_request(&mut self, msg: &RouteNetlinkMessage, flags: u16) -> NlResult<()> {
        self.exchange(msg, flags, Reply::Ack, &mut |_, _| Ok(()))
    }

    /// Sends a GET for one object and decodes the single answer.
    pub(super) fn get_one<T>(
        &mut self,
        msg: &RouteNetlinkMessage,
        decode: impl Fn(u16, &[u8]) -> NlResult<T>,
    ) -> NlResult<T> {
        let mut answer = None;
        self.exchange(msg, 0, Reply::Single, &mut |kind, payload| {
            answer = Some(decode(kind, payload)?);
            Ok(())
        })?;
        answer.ok_or_else(|| NlError::malformed("the kernel answered without a message"))
    }

    /// Sends a dump request and keeps what `decode` returns for each message. `decode` sees the
    /// raw payload so it can reject a message from its fixed header without a full parse.
    ///
    /// A dump that raced with a change (`NLM_F_DUMP_INTR`) is thrown away and requested again, up
    /// to [`DUMP_ATTEMPTS`] times: on a node links and addresses change whenever a pod starts, and
    /// one retry almost always gets a consistent picture. Every caller wants a consistent dump, so
    /// the retry lives here rather than in each of them.
    pub(super) fn dump<T>(
        &mut self,
        msg: &RouteNetlinkMessage,
        mut decode: impl FnMut(u16, &[u8]) -> NlResult<Option<T>>,
    ) -> NlResult<Vec<T>> {
        let mut attempt = 1;
        loop {
            let mut out = Vec::new();
            // NLM_F_ACK is deliberately absent: a dump ends with NLMSG_DONE, and iproute2 does
            // the same. An ACK would only add a second terminator to wait for.
            let result = self.exchange(msg, NLM_F_DUMP, Reply::Dump, &mut |kind, payload| {
                if let Some(item) = decode(kind, payload)? {
                    out.push(item);
                }
                Ok(())
            });
            match result {
                Ok(()) => return Ok(out),
                Err(e) if e.is_interrupted() && attempt < DUMP_ATTEMPTS => attempt += 1,
                Err(e) if e.is_interrupted() => {
                    return Err(e.context(format!(
                        "the dump raced with changes {DUMP_ATTEMPTS} times in a row"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn next_seq(&mut self) -> u32 {
        // Zero is what multicast notifications carry; never use it for a request.
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    pub(super) fn send(&mut self, msg: &RouteNetlinkMessage, flags: u16) -> NlResult<u32> {
        let seq = self.next_seq();
        let len = NETLINK_HEADER_LEN + msg.buffer_len();
        let mut header = NetlinkHeader::default();
        header.length = u32::try_from(len)
            .map_err(|_| NlError::malformed(format!("request of {len} bytes is too large")))?;
        header.message_type = msg.message_type();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        // A fresh zeroed buffer each time: stale bytes in padding have made the kernel reject
        // requests with EINVAL before (netavark hit this with a reused buffer).
        self.send_buf.clear();
        self.send_buf.resize(len, 0);
        header.emit(&mut self.send_buf[..NETLINK_HEADER_LEN]);
        msg.emit(&mut self.send_buf[NETLINK_HEADER_LEN..]);
        loop {
            match self.socket.send(&self.send_buf, 0) {
                Ok(_) => return Ok(seq),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NlError::from_io(&e).context("send netlink request")),
            }
        }
    }

    fn exchange(
        &mut self,
        msg: &RouteNetlinkMessage,
        flags: u16,
        reply: Reply,
        on_message: &mut dyn FnMut(u16, &[u8]) -> NlResult<()>,
    ) -> NlResult<()> {
        let seq = self.send(msg, flags)?;
        let mut reader = ReplyReader::new(seq, reply);
        loop {
            let len = recv_datagram(&self.socket, &mut self.recv_buf, 0)
                .map_err(|e| NlError::from_io(&e).context("receive netlink reply"))?;
            let mut offset = 0;
            while offset < len {
                let frame = parse_frame(&self.recv_buf[offset..len])?;
                offset += frame.advance;
                if let Some(outcome) = reader.feed(&frame, on_message) {
                    return outcome;
                }
            }
        }
    }
}

/// Follows the reply to one request, frame by frame, and says when it is complete.
pub(crate) struct ReplyReader {
    seq: u32,
    reply: Reply,
    /// A decode failure does not stop reading: the rest of a dump is drained up to
    /// NLMSG_DONE so the socket is clean for the next request, then this error is returned.
    first_error: Option<NlError>,
    interrupted: bool,
}

impl ReplyReader {
    pub(crate) fn new(seq: u32, reply: Reply) -> Self {
        ReplyReader {
            seq,
            reply,
            first_error: None,
            interrupted: false,
        }
    }

    /// Takes one frame; returns the outcome once the reply is complete.
    pub(crate) fn feed(
        &mut self,
        frame: &Frame<'_>,
        on_message: &mut dyn FnMut(u16, &[u8]) -> NlResult<()>,
    ) -> Option<NlResult<()>> {
        // A reply to a request abandoned earlier (its caller returned on an error) can still
        // be queued; it is not ours.
        if frame.seq != self.seq {
            return None;
        }
        if frame.flags & NLM_F_DUMP_INTR != 0 {
            self.interrupted = true;
        }
        match frame.kind {
            NLMSG_NOOP => None,
            NLMSG_ERROR => {
                Some(parse_error(frame.flags, frame.payload).and_then(|()| self.finish()))
            }
            NLMSG_DONE => Some(parse_done(frame.flags, frame.payload).and_then(|()| self.finish())),
            NLMSG_OVERRUN => Some(Err(NlError::malformed(
                "the kernel reported a netlink overrun",
            ))),
            kind => {
                if self.first_error.is_none() {
                    if let Err(e) = on_message(kind, frame.payload) {
                        self.first_error = Some(e);
                    }
                }
                (self.reply == Reply::Single).then(|| self.finish())
            }
        }
    }

    fn finish(&mut self) -> NlResult<()> {
        if let Some(e) = self.first_error.take() {
            return Err(e);
        }
        if self.interrupted {
            return Err(NlError::from_errno(
                libc::EINTR,
                Some("the dump raced with a change; dump again".into()),
            ));
        }
        Ok(())
    }
}

/// Receives one datagram whole into `buf`, which then holds exactly it: a zero-length
/// `MSG_PEEK | MSG_TRUNC` read tells its size first, so a message larger than the buffer grows
/// the buffer instead of being cut off. The kernel writes into the buffer's spare capacity, which
/// is never zeroed, so a short reply touches one page of it, not all eight of a zeroed 32 KiB.
pub(crate) fn recv_datagram(
    socket: &Socket,
    buf: &mut Vec<u8>,
    flags: libc::c_int,
) -> io::Result<usize> {
    loop {
        let mut empty: &mut [u8] = &mut [];
        let size = match socket.recv(&mut empty, libc::MSG_PEEK | libc::MSG_TRUNC | flags) {
            Ok(size) => size,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.clear();
        buf.reserve(size);
        match socket.recv(buf, flags) {
            Ok(n) => return Ok(n.min(buf.len())),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One netlink message inside a datagram, bounds-checked.
pub(crate) struct Frame<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
    /// Bytes to the next message (the length rounded up to 4).
    pub advance: usize,
}

pub(crate) fn parse_frame(bytes: &[u8]) -> NlResult<Frame<'_>> {
    let buf = NetlinkBuffer::new_checked(bytes)
        .map_err(|e| NlError::malformed(format!("malformed netlink message: {e}")))?;
    let len = buf.length() as usize;
    let payload = bytes
        .get(NETLINK_HEADER_LEN..len)
        .ok_or_else(|| NlError::malformed("netlink message shorter than its header"))?;
    Ok(Frame {
        kind: buf.message_type(),
        flags: buf.flags(),
        seq: buf.sequence_number(),
        payload,
        advance: align4(len).min(bytes.len()),
    })
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// NLMSG_ERROR: code 0 is an ACK, a negative code is `-errno`.
fn parse_error(flags: u16, payload: &[u8]) -> NlResult<()> {
    let buf = ErrorBuffer::new_checked(payload)
        .map_err(|e| NlError::malformed(format!("malformed NLMSG_ERROR: {e}")))?;
    let Some(code) = buf.code() else {
        return Ok(());
    };
    let detail = if flags & NLM_F_ACK_TLVS != 0 {
        // After the code comes our own request: only its header when the ack was capped,
        // the whole message otherwise. The extended-ack attributes follow it.
        let echoed = payload.get(4..).unwrap_or_default();
        let skip = if flags & NLM_F_CAPPED != 0 {
            NETLINK_HEADER_LEN
        } else {
            echoed
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(|b| align4(u32::from_ne_bytes(b) as usize))
                .unwrap_or(echoed.len())
        };
        extack_message(echoed.get(skip..).unwrap_or_default())
    } else {
        None
    };
    Err(NlError::from_errno(code.get().saturating_abs(), detail))
}

/// NLMSG_DONE carries the dump's own result: a failed dump (a missing table, a rejected
/// filter) arrives here, not as NLMSG_ERROR.
fn parse_done(flags: u16, payload: &[u8]) -> NlResult<()> {
    if payload.is_empty() {
        return Ok(());
    }
    let buf = DoneBuffer::new_checked(payload)
        .map_err(|e| NlError::malformed(format!("malformed NLMSG_DONE: {e}")))?;
    let code = buf.code();
    if code == 0 {
        return Ok(());
    }
    let detail = if flags & NLM_F_ACK_TLVS != 0 {
        extack_message(payload.get(4..).unwrap_or_default())
    } else {
        None
    };
    Err(NlError::from_errno(code.saturating_abs(), detail))
}

fn extack_message(tlvs: &[u8]) -> Option<String> {
    NlasIterator::new(tlvs)
        .map_while(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            let text = nla.value();
            let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            String::from_utf8_lossy(&text[..end]).into_owned()
        })
        .filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NETLINK_HEADER_LEN + payload.len();
        let mut out = Vec::new();
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn frames_reject_lengths_that_lie() {
        let mut bytes = frame_bytes(NLMSG_DONE, 0, 1, &0i32.to_ne_bytes());
        assert!(parse_frame(&bytes).is_ok());
        bytes[0] = 200; // claims more than the datagram holds
        let err = parse_frame(&bytes).err().map(|e| e.errno());
        assert_eq!(err, Some(None));
        bytes[0] = 4; // shorter than a netlink header
        assert!(parse_frame(&bytes).is_err());
        assert!(parse_frame(&bytes[..7]).is_err());
    }

    #[test]
    fn done_with_an_error_code_is_an_error() {
        let err = parse_done(0, &(-libc::ENOENT).to_ne_bytes()).err();
        assert_eq!(err.and_then(|e| e.errno()), Some(libc::ENOENT));
        assert!(parse_done(0, &0i32.to_ne_bytes()).is_ok());
        assert!(parse_done(0, &[1, 2]).is_err());
    }

    #[test]
    fn error_carries_the_extended_ack_text() {
        let mut payload = (-libc::EINVAL).to_ne_bytes().to_vec();
        payload.extend_from_slice(&frame_bytes(24, 0, 9, &[]));
        let text = b"Invalid prefix\0\0";
        payload.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        let err = parse_error(NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload).err();
        let err = err.map(|e| e.context("add route").to_string());
        assert_eq!(
            err.as_deref(),
            Some("add route: Invalid argument (os error 22) (kernel: Invalid prefix)")
        );
        assert!(parse_error(0, &0i32.to_ne_bytes()).is_ok());
    }

    fn frame(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Frame<'_> {
        Frame {
            kind,
            flags,
            seq,
            payload,
            advance: 0,
        }
    }

    const DONE_OK: [u8; 4] = [0; 4];

    #[test]
    fn a_dump_collects_until_done_and_skips_stale_replies() {
        let mut reader = ReplyReader::new(7, Reply::Dump);
        let mut seen = Vec::new();
        let mut collect = |kind: u16, payload: &[u8]| {
            seen.push((kind, payload.to_vec()));
            Ok(())
        };
        assert!(reader
            .feed(&frame(24, 2, 6, b"old!"), &mut collect)
            .is_none());
        assert!(reader
            .feed(&frame(24, 2, 7, b"new1"), &mut collect)
            .is_none());
        assert!(reader
            .feed(&frame(NLMSG_NOOP, 0, 7, &[]), &mut collect)
            .is_none());
        assert!(reader
            .feed(&frame(24, 2, 7, b"new2"), &mut collect)
            .is_none());
        let done = reader.feed(&frame(NLMSG_DONE, 2, 7, &DONE_OK), &mut collect);
        assert!(matches!(done, Some(Ok(()))));
        assert_eq!(seen, [(24, b"new1".to_vec()), (24, b"new2".to_vec())]);
    }

    #[test]
    fn an_interrupted_dump_is_eintr() {
        let mut reader = ReplyReader::new(1, Reply::Dump);
        let mut ignore = |_: u16, _: &[u8]| Ok(());
        assert!(reader
            .feed(&frame(24, 2 | NLM_F_DUMP_INTR, 1, b"x"), &mut ignore)
            .is_none());
        let outcome = reader.feed(&frame(NLMSG_DONE, 2, 1, &DONE_OK), &mut ignore);
        let err = outcome.and_then(Result::err);
        assert!(err.as_ref().is_some_and(NlError::is_interrupted), "{err:?}");
    }

    #[test]
    fn a_decode_failure_drains_to_done_then_wins() {
        let mut reader = ReplyReader::new(3, Reply::Dump);
        let mut calls = 0;
        let mut failing = |_: u16, _: &[u8]| {
            calls += 1;
            Err(NlError::malformed("bad route"))
        };
        assert!(reader.feed(&frame(24, 2, 3, b"a"), &mut failing).is_none());
        assert!(reader.feed(&frame(24, 2, 3, b"b"), &mut failing).is_none());
        let outcome = reader.feed(&frame(NLMSG_DONE, 2, 3, &DONE_OK), &mut failing);
        let err = outcome.and_then(Result::err).map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("netlink request: bad route"));
        assert_eq!(calls, 1);
    }

    #[test]
    fn done_and_error_codes_end_a_reply_with_their_errno() {
        let mut ignore = |_: u16, _: &[u8]| Ok(());
        let enoent = (-libc::ENOENT).to_ne_bytes();
        let mut reader = ReplyReader::new(4, Reply::Dump);
        let outcome = reader.feed(&frame(NLMSG_DONE, 2, 4, &enoent), &mut ignore);
        assert_eq!(
            outcome.and_then(Result::err).and_then(|e| e.errno()),
            Some(libc::ENOENT)
        );

        let mut error = (-libc::EEXIST).to_ne_bytes().to_vec();
        error.extend_from_slice(&frame_bytes(24, 0, 5, &[]));
        let mut reader = ReplyReader::new(5, Reply::Ack);
        let outcome = reader.feed(&frame(NLMSG_ERROR, NLM_F_CAPPED, 5, &error), &mut ignore);
        let err = outcome.and_then(Result::err);
        assert!(err.as_ref().is_some_and(NlError::is_exists), "{err:?}");

        let mut ack = 0i32.to_ne_bytes().to_vec();
        ack.extend_from_slice(&frame_bytes(24, 0, 6, &[]));
        let mut reader = ReplyReader::new(6, Reply::Ack);
        let outcome = reader.feed(&frame(NLMSG_ERROR, NLM_F_CAPPED, 6, &ack), &mut ignore);
        assert!(matches!(outcome, Some(Ok(()))));
    }

    #[test]
    fn a_single_get_ends_at_its_answer() {
        let mut reader = ReplyReader::new(8, Reply::Single);
        let mut got = 0;
        let mut count = |_: u16, _: &[u8]| {
            got += 1;
            Ok(())
        };
        let outcome = reader.feed(&frame(16, 0, 8, b"link"), &mut count);
        assert!(matches!(outcome, Some(Ok(()))));
        assert_eq!(got, 1);
    }
}
