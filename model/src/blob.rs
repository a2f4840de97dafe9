//! `model.bin`: the binary encoding of a [`Model`].
//!
//! Little-endian, length-prefixed sections, in this order:
//!
//! ```text
//! magic "GEORECM\0" | u32 format version
//! params (JSON, length-prefixed) | i64 reference_ts | u64 interactions
//! strings: users | items | item_names | categories
//! u32s: item_cat_offsets | item_cat_ids
//! matrix: u64 rows | u64 cols | u64s indptr | u32s indices | f32s data
//! u64s neighbour_offsets | u32s neighbour_ids | f32s neighbour_sims
//! f32s popularity
//! magic "GEOREND\0"
//! ```
//!
//! Format 2 had the users' HNSW graph between popularity and the end marker (bytes levels,
//! 255 = not in the graph | u32 entry | per layer 0..=top: u64s offsets | u32s links). It
//! still decodes: the graph is read, its lengths checked, and dropped, since neighbours are
//! now found exactly through the item lists (see [`crate::neighbours`]), which every decoded
//! model derives ([`Model::derive`]).
//!
//! Encoding is a pure function of the model, so the same model gives the same bytes. The
//! decoder reads from any `Read` (a file, a buffer) and checks every length and invariant,
//! so truncated or corrupt payloads fail with a typed error instead of a panic.

use std::io::{self, Read, Write};

use crate::manifest::{is_readable, FORMAT_VERSION};
use crate::matrix::Matrix;
use crate::model::{BuildParams, Derived, Model};
use crate::pace;

/// Elements checked between two yield points while validating (see [`crate::pace`]).
const CHECK_CHUNK: usize = 1 << 16;

const MAGIC: &[u8; 8] = b"GEORECM\0";
const END: &[u8; 8] = b"GEOREND\0";
/// Refuse absurd lengths before allocating for them.
const MAX_LEN: u64 = 1 << 36;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a georec model (bad magic bytes)")]
    BadMagic,
    #[error("unsupported model format version {found} (this build reads version {supported})")]
    UnsupportedFormat { found: u32, supported: u32 },
    #[error("model payload is truncated (ended inside {section})")]
    Truncated { section: &'static str },
    #[error("model payload is corrupt: {0}")]
    Corrupt(String),
    #[error("reading model payload")]
    Io(#[source] io::Error),
}

/// Write `model` in the current format.
pub fn encode(model: &Model, w: impl Write) -> io::Result<()> {
    let mut w = io::BufWriter::with_capacity(1 << 20, w);
    w.write_all(MAGIC)?;
    w.write_all(&FORMAT_VERSION.to_le_bytes())?;
    let params = serde_json::to_vec(&model.params).map_err(io::Error::other)?;
    write_bytes(&mut w, &params)?;
    w.write_all(&model.reference_ts.to_le_bytes())?;
    w.write_all(&model.interactions.to_le_bytes())?;
    for strings in [&model.users, &model.items, &model.item_names, &model.categories] {
        write_strings(&mut w, strings)?;
    }
    write_u32s(&mut w, &model.item_cat_offsets)?;
    write_u32s(&mut w, &model.item_cat_ids)?;
    let m = &model.matrix;
    w.write_all(&(m.rows() as u64).to_le_bytes())?;
    w.write_all(&(m.cols() as u64).to_le_bytes())?;
    let indptr: Vec<u64> = m.indptr().to_proper().iter().map(|&p| p as u64).collect();
    write_u64s(&mut w, &indptr)?;
    write_u32s(&mut w, m.indices())?;
    write_f32s(&mut w, m.data())?;
    write_u64s(&mut w, &model.neighbour_offsets)?;
    write_u32s(&mut w, &model.neighbour_ids)?;
    write_f32s(&mut w, &model.neighbour_sims)?;
    write_f32s(&mut w, &model.popularity)?;
    w.write_all(END)?;
    w.flush()
}

pub fn encode_to_vec(model: &Model) -> Vec<u8> {
    let mut v = Vec::new();
    encode(model, &mut v).expect("writing to a Vec cannot fail");
    v
}

/// Read a model written by [`encode`], checking its structure.
pub fn decode(r: impl Read) -> Result<Model, DecodeError> {
    let mut r = Reader { inner: io::BufReader::with_capacity(1 << 20, r) };
    let magic: [u8; 8] = r.array("header")?;
    if &magic != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let found = u32::from_le_bytes(r.array("header")?);
    if !is_readable(found) {
        return Err(DecodeError::UnsupportedFormat { found, supported: FORMAT_VERSION });
    }
    let params: BuildParams = serde_json::from_slice(&r.bytes("params")?)
        .map_err(|e| DecodeError::Corrupt(format!("build parameters: {e}")))?;
    let reference_ts = i64::from_le_bytes(r.array("header")?);
    let interactions = u64::from_le_bytes(r.array("header")?);
    let users = r.strings("users")?;
    let items = r.strings("items")?;
    let item_names = r.strings("item names")?;
    let categories = r.strings("categories")?;
    let item_cat_offsets = r.u32s("item categories")?;
    let item_cat_ids = r.u32s("item categories")?;
    let rows = u64::from_le_bytes(r.array("matrix")?) as usize;
    let cols = u64::from_le_bytes(r.array("matrix")?) as usize;
    let indptr: Vec<usize> = r.u64s("matrix")?.into_iter().map(|p| p as usize).collect();
    let indices = r.u32s("matrix")?;
    let data = r.f32s("matrix")?;
    let neighbour_offsets = r.u64s("neighbours")?;
    let neighbour_ids = r.u32s("neighbours")?;
    let neighbour_sims = r.f32s("neighbours")?;
    let popularity = r.f32s("popularity")?;
    if found == 2 {
        skip_graph(&mut r, users.len())?;
    }
    let end: [u8; 8] = r.array("trailer")?;
    if &end != END {
        return Err(DecodeError::Corrupt("missing end marker".into()));
    }
    let mut extra = [0u8; 1];
    if r.inner.read(&mut extra).map_err(DecodeError::Io)? != 0 {
        return Err(DecodeError::Corrupt("trailing bytes after end marker".into()));
    }

    let corrupt = |m: &str| Err(DecodeError::Corrupt(m.to_string()));
    if rows != users.len() || cols != items.len() {
        return corrupt("matrix shape does not match user and item counts");
    }
    if item_names.len() != items.len() || popularity.len() != items.len() {
        return corrupt("item tables differ in length");
    }
    if !is_offsets(
        &item_cat_offsets.iter().map(|&x| u64::from(x)).collect::<Vec<_>>(),
        items.len(),
        item_cat_ids.len(),
    ) || !pace::all(&item_cat_ids, CHECK_CHUNK, |&c| (c as usize) < categories.len())
    {
        return corrupt("item category table is inconsistent");
    }
    if !is_offsets(&neighbour_offsets, users.len(), neighbour_ids.len())
        || neighbour_sims.len() != neighbour_ids.len()
        || !pace::all(&neighbour_ids, CHECK_CHUNK, |&u| (u as usize) < users.len())
    {
        return corrupt("neighbour table is inconsistent");
    }
    if !is_sorted_unique(&users) || !is_sorted_unique(&items) || !is_sorted_unique(&categories) {
        return corrupt("ids are not sorted and unique");
    }
    let matrix = Matrix::try_new((rows, cols), indptr, indices, data)
        .map_err(|(_, _, _, e)| DecodeError::Corrupt(format!("matrix: {e}")))?;
    let mut model = Model {
        params,
        reference_ts,
        interactions,
        users,
        items,
        item_names,
        categories,
        item_cat_offsets,
        item_cat_ids,
        matrix,
        neighbour_offsets,
        neighbour_ids,
        neighbour_sims,
        popularity,
        derived: Derived::default(),
    };
    model.derive();
    Ok(model)
}

/// Read past format 2's HNSW graph section, checking its lengths.
fn skip_graph<R: Read>(r: &mut Reader<R>, users: usize) -> Result<(), DecodeError> {
    const ABSENT: u8 = u8::MAX;
    let levels = r.bytes("graph")?;
    if levels.len() != users {
        return Err(DecodeError::Corrupt(format!("graph: {} levels for {users} users", levels.len())));
    }
    let _entry: [u8; 4] = r.array("graph")?;
    let top = levels.iter().copied().filter(|&l| l != ABSENT).max().unwrap_or(0);
    for _ in 0..=top {
        let offsets = r.u64s("graph")?;
        let links = r.u32s("graph")?;
        if offsets.last().copied().unwrap_or(0) != links.len() as u64 {
            return Err(DecodeError::Corrupt("graph: offsets do not match links".into()));
        }
    }
    Ok(())
}

pub(crate) fn is_offsets(offsets: &[u64], n: usize, total: usize) -> bool {
    offsets.len() == n + 1
        && offsets.first() == Some(&0)
        && offsets.last() == Some(&(total as u64))
        && offsets.windows(2).all(|w| w[0] <= w[1])
}

fn is_sorted_unique(v: &[String]) -> bool {
    let mut ok = true;
    pace::each(v.len().saturating_sub(1), CHECK_CHUNK / 16, |i| ok &= v[i] < v[i + 1]);
    ok
}

fn write_len(w: &mut impl Write, n: usize) -> io::Result<()> {
    w.write_all(&(n as u64).to_le_bytes())
}

fn write_bytes(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    write_len(w, b.len())?;
    w.write_all(b)
}

fn write_strings(w: &mut impl Write, v: &[String]) -> io::Result<()> {
    write_len(w, v.len())?;
    for s in v {
        write_bytes(w, s.as_bytes())?;
    }
    Ok(())
}

macro_rules! write_slice {
    ($name:ident, $t:ty) => {
        fn $name(w: &mut impl Write, v: &[$t]) -> io::Result<()> {
            write_len(w, v.len())?;
            let mut buf = Vec::with_capacity(64 * 1024);
            for chunk in v.chunks(8 * 1024) {
                buf.clear();
                for x in chunk {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                w.write_all(&buf)?;
            }
            Ok(())
        }
    };
}
write_slice!(write_u32s, u32);
write_slice!(write_u64s, u64);
write_slice!(write_f32s, f32);

struct Reader<R: Read> {
    inner: R,
}

macro_rules! read_slice {
    ($name:ident, $t:ty) => {
        fn $name(&mut self, section: &'static str) -> Result<Vec<$t>, DecodeError> {
            const N: usize = std::mem::size_of::<$t>();
            let len = self.len(section)?;
            let mut out: Vec<$t> = Vec::with_capacity(len.min(1 << 24));
            let mut buf = vec![0u8; 64 * 1024];
            let mut left = len * N;
            while left > 0 {
                let take = left.min(buf.len());
                self.fill(&mut buf[..take], section)?;
                out.extend(
                    buf[..take]
                        .chunks_exact(N)
                        .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size"))),
                );
                left -= take;
                crate::pace::tick();
            }
            Ok(out)
        }
    };
}

impl<R: Read> Reader<R> {
    fn fill(&mut self, buf: &mut [u8], section: &'static str) -> Result<(), DecodeError> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => DecodeError::Truncated { section },
            _ => DecodeError::Io(e),
        })
    }

    fn array<const N: usize>(&mut self, section: &'static str) -> Result<[u8; N], DecodeError> {
        let mut b = [0u8; N];
        self.fill(&mut b, section)?;
        Ok(b)
    }

    fn len(&mut self, section: &'static str) -> Result<usize, DecodeError> {
        let n = u64::from_le_bytes(self.array(section)?);
        if n > MAX_LEN {
            return Err(DecodeError::Corrupt(format!("{section}: length {n} is implausible")));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self, section: &'static str) -> Result<Vec<u8>, DecodeError> {
        let n = self.len(section)?;
        let mut v = Vec::new();
        let got = (&mut self.inner).take(n as u64).read_to_end(&mut v).map_err(DecodeError::Io)?;
        if got != n {
            return Err(DecodeError::Truncated { section });
        }
        Ok(v)
    }

    fn strings(&mut self, section: &'static str) -> Result<Vec<String>, DecodeError> {
        let n = self.len(section)?;
        let mut out = Vec::with_capacity(n.min(1 << 24));
        for i in 0..n {
            if i % 1024 == 0 {
                crate::pace::tick();
            }
            let b = self.bytes(section)?;
            out.push(
                String::from_utf8(b)
                    .map_err(|_| DecodeError::Corrupt(format!("{section}: invalid UTF-8")))?,
            );
        }
        Ok(out)
    }

    read_slice!(u32s, u32);
    read_slice!(u64s, u64);
    read_slice!(f32s, f32);
}
