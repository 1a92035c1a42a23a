//! The one error type of the netlink client: an errno when the kernel (or the socket) gave one,
//! and the request it belongs to, so callers decide by errno and users read what failed.

use std::fmt;
use std::io;

use nix::libc;

/// A failed netlink request. `errno()` is the kernel's answer when there is one; `None` means the
/// reply could not be understood (malformed bytes, an unexpected message), not a kernel refusal.
#[derive(Debug)]
pub struct NlError {
    errno: Option<i32>,
    context: String,
    detail: Option<String>,
}

pub type NlResult<T> = Result<T, NlError>;

impl NlError {
    /// An errno from the kernel or a socket call; `detail` is the kernel's extended-ack text.
    pub(crate) fn from_errno(errno: i32, detail: Option<String>) -> Self {
        NlError {
            errno: Some(errno),
            context: String::new(),
            detail,
        }
    }

    pub(crate) fn from_io(err: &io::Error) -> Self {
        match err.raw_os_error() {
            Some(errno) => NlError::from_errno(errno, None),
            None => NlError::malformed(err.to_string()),
        }
    }

    /// A reply we could not decode. It carries no errno so it is never mistaken for a kernel
    /// answer such as "already exists".
    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        NlError {
            errno: None,
            context: String::new(),
            detail: Some(detail.into()),
        }
    }

    /// Names the request that failed, as an outer layer: "dump routes: receive netlink reply:
    /// ...". What a lower layer already said is kept after it.
    pub(crate) fn context(mut self, context: impl Into<String>) -> Self {
        let context = context.into();
        self.context = if self.context.is_empty() {
            context
        } else {
            format!("{context}: {}", self.context)
        };
        self
    }

    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// The object is already there (`EEXIST`): an exclusive add met an existing route, rule,
    /// address or link.
    pub fn is_exists(&self) -> bool {
        self.errno == Some(libc::EEXIST)
    }

    /// The object is not there: the kernel says `ESRCH` for routes, `ENOENT` for rules (and
    /// missing tables), `ENODEV` for links and `EADDRNOTAVAIL` for addresses.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno,
            Some(libc::ESRCH | libc::ENOENT | libc::ENODEV | libc::EADDRNOTAVAIL)
        )
    }

    /// A dump raced with a change (`NLM_F_DUMP_INTR`): its result may be inconsistent and the
    /// caller should dump again.
    pub fn is_interrupted(&self) -> bool {
        self.errno == Some(libc::EINTR)
    }

    /// An event socket lost messages because its receive queue overflowed (`ENOBUFS`): the
    /// caller must re-read the state it cares about with a dump.
    pub fn is_overrun(&self) -> bool {
        self.errno == Some(libc::ENOBUFS)
    }
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let context = if self.context.is_empty() {
            "netlink request"
        } else {
            self.context.as_str()
        };
        match (self.errno, &self.detail) {
            (Some(errno), None) => write!(f, "{context}: {}", io::Error::from_raw_os_error(errno)),
            (Some(errno), Some(detail)) => write!(
                f,
                "{context}: {} (kernel: {detail})",
                io::Error::from_raw_os_error(errno)
            ),
            (None, Some(detail)) => write!(f, "{context}: {detail}"),
            (None, None) => write!(f, "{context}: failed"),
        }
    }
}

impl std::error::Error for NlError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_request_and_the_errno() {
        let err = NlError::from_errno(libc::EEXIST, None)
            .context("add route default via 10.0.0.1 dev eth0 table 254");
        assert_eq!(
            err.to_string(),
            "add route default via 10.0.0.1 dev eth0 table 254: File exists (os error 17)"
        );
        assert!(err.is_exists());
        assert!(!err.is_not_found());
    }

    #[test]
    fn outer_context_goes_first() {
        let err = NlError::malformed("truncated message")
            .context("dump routes")
            .context("read host baseline");
        assert_eq!(
            err.to_string(),
            "read host baseline: dump routes: truncated message"
        );
        assert_eq!(err.errno(), None);
    }

    #[test]
    fn not_found_covers_each_kind_of_object() {
        for errno in [libc::ESRCH, libc::ENOENT, libc::ENODEV, libc::EADDRNOTAVAIL] {
            assert!(NlError::from_errno(errno, None).is_not_found(), "{errno}");
        }
        assert!(!NlError::from_errno(libc::EINVAL, None).is_not_found());
    }

    #[test]
    fn anyhow_can_carry_and_return_it() {
        let err = anyhow::Error::new(NlError::from_errno(libc::ESRCH, None).context("del route"))
            .context("teardown");
        let inner = err.downcast_ref::<NlError>().map(NlError::errno);
        assert_eq!(inner, Some(Some(libc::ESRCH)));
    }
}
