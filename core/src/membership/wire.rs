//! Sans-IO codec of the membership heartbeat (docs/membership.md, "Wire format").
//!
//! [`Heartbeat::parse`] checks every length once and returns a view that borrows the
//! datagram (names as `&str`, the `heard` and `unreachable` lists as checked byte
//! slices), so that receiving allocates nothing. [`emit_unsigned`] appends everything
//! before the MAC to a caller's buffer; [`super::auth::Keyring::sign`] computes the MAC
//! that the caller appends. Every malformed input is an [`Error`], never a panic.

/// The four magic bytes that open every heartbeat.
pub const MAGIC: [u8; 4] = *b"FLBM";
/// The only wire version this code speaks.
pub const VERSION: u8 = 1;
/// Length of the trailing HMAC-SHA256.
pub const MAC_LEN: usize = 32;
/// Length of a key id (first bytes of SHA-256 of the key).
pub const KEY_ID_LEN: usize = 4;
/// Largest `heard` list a heartbeat carries (beyond it the sender rotates a window).
pub const MAX_HEARD: usize = 128;
/// Largest `unreachable` list a heartbeat carries.
pub const MAX_UNREACHABLE: usize = 64;
/// Longest cluster name, in bytes.
pub const MAX_CLUSTER_LEN: usize = 63;
/// Longest node name, in bytes (a DNS subdomain, like a Kubernetes Node name).
pub const MAX_NAME_LEN: usize = 253;
/// Bytes of one `heard` entry: name hash (8) and age in ms (2).
pub const HEARD_ENTRY_LEN: usize = 10;
/// Bytes of one `unreachable` entry: name hash.
pub const UNREACHABLE_ENTRY_LEN: usize = 8;
/// `api_age_ms` value meaning "never reached the API server".
pub const API_AGE_NEVER: u32 = u32::MAX;

const FLAG_HAS_VIEW: u8 = 1 << 0;
const FLAG_LINK_OK: u8 = 1 << 1;
const FLAG_LEAVING: u8 = 1 << 2;

/// FNV-1a 64 of a node name's UTF-8 bytes: how the `heard` and `unreachable` lists name
/// peers (8 bytes instead of up to 253).
pub fn name_hash(name: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    name.as_bytes()
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Why a datagram is not a well-formed heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The datagram ends before the field does.
    #[error("membership heartbeat truncated in {field}: need {need} bytes, have {have}")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the datagram needs up to the end of that field.
        need: usize,
        /// Bytes the datagram has.
        have: usize,
    },
    /// The first four bytes are not `FLBM`.
    #[error("membership heartbeat: bad magic (not \"FLBM\")")]
    BadMagic,
    /// A version this code does not speak.
    #[error("membership heartbeat: unsupported version {0} (this node speaks 1)")]
    UnsupportedVersion(u8),
    /// A field holds a value the format forbids.
    #[error("membership heartbeat: malformed {field}: {what}")]
    Malformed {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        what: &'static str,
    },
    /// Bytes follow the MAC.
    #[error("membership heartbeat: {0} trailing bytes after the MAC")]
    Trailing(usize),
}

/// The flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// The sender's caches synced from the API server at least once.
    pub has_view: bool,
    /// The sender's announcing link is up.
    pub link_ok: bool,
    /// The sender is shutting down: treat it as dead at once.
    pub leaving: bool,
}

impl Flags {
    fn to_byte(self) -> u8 {
        (if self.has_view { FLAG_HAS_VIEW } else { 0 })
            | (if self.link_ok { FLAG_LINK_OK } else { 0 })
            | (if self.leaving { FLAG_LEAVING } else { 0 })
    }
    fn from_byte(b: u8) -> Result<Self, Error> {
        if b & !(FLAG_HAS_VIEW | FLAG_LINK_OK | FLAG_LEAVING) != 0 {
            return Err(Error::Malformed {
                field: "flags",
                what: "unknown bits set",
            });
        }
        Ok(Flags {
            has_view: b & FLAG_HAS_VIEW != 0,
            link_ok: b & FLAG_LINK_OK != 0,
            leaving: b & FLAG_LEAVING != 0,
        })
    }
}

/// The fixed part of a heartbeat: everything but the two lists and the MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Id of the key the MAC was computed with.
    pub key_id: [u8; KEY_ID_LEN],
    /// Cluster name (1..=63 bytes): heartbeats of another cluster are dropped.
    pub cluster: &'a str,
    /// The sender's node name (1..=253 bytes).
    pub sender: &'a str,
    /// The sender's incarnation (its start time in ms since the epoch).
    pub incarnation: u64,
    /// Sequence number within the incarnation.
    pub sequence: u64,
    /// Flags.
    pub flags: Flags,
    /// Age of the sender's last successful API server contact, [`API_AGE_NEVER`] if none.
    pub api_age_ms: u32,
}

/// The `heard` list of a parsed heartbeat: a checked slice of 10-byte entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeardList<'a>(&'a [u8]);

impl<'a> HeardList<'a> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len() / HEARD_ENTRY_LEN
    }
    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The entries: (name hash, age in ms).
    pub fn iter(&self) -> impl Iterator<Item = (u64, u16)> + 'a {
        self.0.chunks_exact(HEARD_ENTRY_LEN).map(|c| {
            let (h, a) = c.split_at(8);
            (
                u64::from_be_bytes(h.try_into().unwrap_or_default()),
                u16::from_be_bytes(a.try_into().unwrap_or_default()),
            )
        })
    }
}

/// The `unreachable` list of a parsed heartbeat: a checked slice of name hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashList<'a>(&'a [u8]);

impl<'a> HashList<'a> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len() / UNREACHABLE_ENTRY_LEN
    }
    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The name hashes.
    pub fn iter(&self) -> impl Iterator<Item = u64> + 'a {
        self.0
            .chunks_exact(UNREACHABLE_ENTRY_LEN)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
    }
    /// Whether `hash` is listed.
    pub fn contains(&self, hash: u64) -> bool {
        self.iter().any(|h| h == hash)
    }
}

/// A parsed heartbeat, borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat<'a> {
    /// The fixed fields.
    pub header: Header<'a>,
    /// Peers the sender heard directly, with how long ago.
    pub heard: HeardList<'a>,
    /// Peers the sender judges dead.
    pub unreachable: HashList<'a>,
    /// The bytes the MAC covers (everything before it).
    pub signed: &'a [u8],
    /// The MAC.
    pub mac: &'a [u8],
}

/// A cursor over the datagram that turns every overrun into [`Error::Truncated`].
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Error> {
        let need = self.pos.saturating_add(n);
        let out = self.buf.get(self.pos..need).ok_or(Error::Truncated {
            field,
            need,
            have: self.buf.len(),
        })?;
        self.pos = need;
        Ok(out)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, Error> {
        Ok(self.take(1, field)?[0])
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Error> {
        let s = self.take(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn name(&mut self, field: &'static str, max: usize) -> Result<&'a str, Error> {
        let len = usize::from(self.u8(field)?);
        if len == 0 || len > max {
            return Err(Error::Malformed {
                field,
                what: "length out of range",
            });
        }
        std::str::from_utf8(self.take(len, field)?).map_err(|_| Error::Malformed {
            field,
            what: "not UTF-8",
        })
    }
}

impl<'a> Heartbeat<'a> {
    /// Parses a datagram. The MAC is only located here, not checked (that is
    /// [`super::auth::Keyring::verify`]'s job).
    pub fn parse(datagram: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader {
            buf: datagram,
            pos: 0,
        };
        if r.array::<4>("magic")? != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let key_id = r.array::<KEY_ID_LEN>("key id")?;
        let cluster = r.name("cluster", MAX_CLUSTER_LEN)?;
        let sender = r.name("sender", MAX_NAME_LEN)?;
        let incarnation = u64::from_be_bytes(r.array("incarnation")?);
        let sequence = u64::from_be_bytes(r.array("sequence")?);
        let flags = Flags::from_byte(r.u8("flags")?)?;
        let api_age_ms = u32::from_be_bytes(r.array("api_age_ms")?);
        let heard_count = usize::from(u16::from_be_bytes(r.array("heard count")?));
        if heard_count > MAX_HEARD {
            return Err(Error::Malformed {
                field: "heard count",
                what: "more than 128 entries",
            });
        }
        let heard = HeardList(r.take(heard_count * HEARD_ENTRY_LEN, "heard list")?);
        let unreachable_count = usize::from(r.u8("unreachable count")?);
        if unreachable_count > MAX_UNREACHABLE {
            return Err(Error::Malformed {
                field: "unreachable count",
                what: "more than 64 entries",
            });
        }
        let unreachable = HashList(r.take(
            unreachable_count * UNREACHABLE_ENTRY_LEN,
            "unreachable list",
        )?);
        let signed_len = r.pos;
        let mac = r.take(MAC_LEN, "mac")?;
        if r.pos != datagram.len() {
            return Err(Error::Trailing(datagram.len() - r.pos));
        }
        Ok(Heartbeat {
            header: Header {
                key_id,
                cluster,
                sender,
                incarnation,
                sequence,
                flags,
                api_age_ms,
            },
            heard,
            unreachable,
            signed: &datagram[..signed_len],
            mac,
        })
    }
}

fn check_name(field: &'static str, s: &str, max: usize) -> Result<(), Error> {
    if s.is_empty() || s.len() > max {
        return Err(Error::Malformed {
            field,
            what: "length out of range",
        });
    }
    Ok(())
}

/// Appends a heartbeat without its MAC to `buf`: `header`, then at most
/// [`MAX_HEARD`] `heard` entries (name hash, age in ms) and at most
/// [`MAX_UNREACHABLE`] `unreachable` name hashes. The caller appends the MAC of the
/// appended bytes. Fails (appending nothing) when a name or list is out of range.
pub fn emit_unsigned(
    buf: &mut Vec<u8>,
    header: &Header<'_>,
    heard: &[(u64, u16)],
    unreachable: &[u64],
) -> Result<(), Error> {
    check_name("cluster", header.cluster, MAX_CLUSTER_LEN)?;
    check_name("sender", header.sender, MAX_NAME_LEN)?;
    if heard.len() > MAX_HEARD {
        return Err(Error::Malformed {
            field: "heard count",
            what: "more than 128 entries",
        });
    }
    if unreachable.len() > MAX_UNREACHABLE {
        return Err(Error::Malformed {
            field: "unreachable count",
            what: "more than 64 entries",
        });
    }
    buf.reserve(emitted_len(header, heard.len(), unreachable.len()));
    buf.extend_from_slice(&MAGIC);
    buf.push(VERSION);
    buf.extend_from_slice(&header.key_id);
    // Lengths were checked above: both fit in a byte.
    buf.push(header.cluster.len() as u8);
    buf.extend_from_slice(header.cluster.as_bytes());
    buf.push(header.sender.len() as u8);
    buf.extend_from_slice(header.sender.as_bytes());
    buf.extend_from_slice(&header.incarnation.to_be_bytes());
    buf.extend_from_slice(&header.sequence.to_be_bytes());
    buf.push(header.flags.to_byte());
    buf.extend_from_slice(&header.api_age_ms.to_be_bytes());
    buf.extend_from_slice(&(heard.len() as u16).to_be_bytes());
    for (hash, age) in heard {
        buf.extend_from_slice(&hash.to_be_bytes());
        buf.extend_from_slice(&age.to_be_bytes());
    }
    buf.push(unreachable.len() as u8);
    for hash in unreachable {
        buf.extend_from_slice(&hash.to_be_bytes());
    }
    Ok(())
}

/// Length of a whole heartbeat (MAC included) with these lists.
pub fn emitted_len(header: &Header<'_>, heard: usize, unreachable: usize) -> usize {
    4 + 1
        + KEY_ID_LEN
        + 1
        + header.cluster.len()
        + 1
        + header.sender.len()
        + 8
        + 8
        + 1
        + 4
        + 2
        + heard * HEARD_ENTRY_LEN
        + 1
        + unreachable * UNREACHABLE_ENTRY_LEN
        + MAC_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_64_matches_the_reference_vectors() {
        // Vectors from the FNV reference test suite (draft-eastlake-fnv).
        assert_eq!(name_hash(""), 0xcbf29ce484222325);
        assert_eq!(name_hash("a"), 0xaf63dc4c8601ec8c);
        assert_eq!(name_hash("foobar"), 0x85944171f73967e8);
    }
}
