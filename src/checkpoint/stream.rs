//! A checkpoint's state as one byte stream, and that stream as compressed, hashed frames.
//!
//! # Stream (format 6)
//! `round (u32 LE)`, then every part's bytes one after another in name order, then the index:
//! per part `name length (u32 LE), name, byte length (u64 LE)`, and last the index's byte
//! length (u64 LE). The index comes after the parts so that a part is written while it is
//! encoded, before its length is known; read back, each part is one slice of the stream.
//!
//! # Frames
//! The stream is cut every [`FRAME_BYTES`] bytes (the last frame may be shorter). Each frame
//! is hashed (SHA-256) and compressed (an LZ4 frame, `lz4_flex`) on its own, side by side on
//! the rayon pool, while the parts are still being encoded: the uncompressed state is never
//! held whole, only a batch of frames of it. In the file, each frame is
//! `compressed length (u32 LE), stream length (u32 LE), LZ4 frame`, so a reader finds every
//! frame without decompressing and decompresses them side by side into one buffer.
//!
//! The state hash is the SHA-256 of the frames' digests in order (a two-level hash): it depends
//! on the stream's bytes alone, not on how the parts cut it in pieces or on the thread count.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use bytes::Bytes;
use sha2::Digest as _;

use super::State;

/// Stream bytes per frame: large enough that a frame's overhead (its 8-byte prefix, the LZ4
/// frame's header, end mark and a window restart) is negligible, small enough that a state of
/// hundreds of MiB gives every core frames to compress and a batch of them stays small.
pub const FRAME_BYTES: usize = 8 << 20;

/// Frames compressed per batch, per rayon thread: a batch is the uncompressed state held at
/// once while writing (2 threads: 32 MiB).
const FRAMES_PER_THREAD: usize = 2;

/// Bytes of a frame's prefix in the file.
const PREFIX: usize = 8;

/// LZ4's best case: each 255 bytes of a match cost at least one byte, so a frame of `c`
/// compressed bytes holds fewer than `255·c` (plus its last literals). A prefix claiming more
/// is damaged; checked before anything is allocated for it.
fn plausible(compressed: usize, stream: usize) -> bool {
    stream <= compressed.saturating_mul(255).saturating_add(64)
}

/// Lowercase hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The index at a stream's end for parts `(name, byte length)`, its own length included.
pub(super) fn index_bytes(parts: &[(&str, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, len) in parts {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }
    let n = out.len() as u64;
    out.extend_from_slice(&n.to_le_bytes());
    out
}

/// The stream of `state` as pieces, in order (the parts' own pieces are shared, not copied).
pub(super) fn pieces(state: &State) -> Vec<Bytes> {
    let mut out = vec![Bytes::copy_from_slice(&state.round.to_le_bytes())];
    let mut index = Vec::with_capacity(state.parts.len());
    for (name, pieces) in &state.parts {
        out.extend(pieces.iter().cloned());
        index.push((name.as_str(), pieces.iter().map(|p| p.len() as u64).sum()));
    }
    out.push(Bytes::from(index_bytes(&index)));
    out
}

/// The parts of a stream, as slices of `body`.
///
/// # Errors
/// What is wrong with its framing, in words.
pub(super) fn decode(body: Bytes) -> Result<State, String> {
    let le = |b: &[u8]| -> u64 { b.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x)) };
    let n = body.len();
    if n < 12 {
        return Err("the state is shorter than its framing".into());
    }
    let round = le(&body[..4]) as u32;
    let index_len = usize::try_from(le(&body[n - 8..]))
        .ok()
        .filter(|&l| l <= n - 12)
        .ok_or("the part index runs past the state's start")?;
    let index_start = n - 8 - index_len;
    let mut index = &body[index_start..n - 8];
    fn take<'a>(index: &mut &'a [u8], k: usize) -> Result<&'a [u8], String> {
        if index.len() < k {
            return Err("the part index ends in the middle of an entry".into());
        }
        let (head, rest) = index.split_at(k);
        *index = rest;
        Ok(head)
    }
    let mut parts = Vec::new();
    let mut at = 4usize;
    while !index.is_empty() {
        let name_len = le(take(&mut index, 4)?) as usize;
        let name = String::from_utf8(take(&mut index, name_len)?.to_vec())
            .map_err(|_| "a part name is not UTF-8".to_string())?;
        let len =
            usize::try_from(le(take(&mut index, 8)?)).map_err(|_| "a part's length".to_string())?;
        if index_start - at < len {
            return Err(format!("part {name} runs past the part index"));
        }
        parts.push((name, vec![body.slice(at..at + len)]));
        at += len;
    }
    if at != index_start {
        return Err(format!(
            "{} bytes between the parts and the index",
            index_start - at
        ));
    }
    Ok(State { round, parts })
}

/// The stream's bytes pushed so far, cut into frames, each hashed and (when there is an
/// output) compressed and handed to it in stream order.
pub(super) struct FrameSink<'o> {
    pending: VecDeque<Bytes>,
    pending_len: usize,
    digests: Vec<[u8; 32]>,
    out: Option<&'o mut dyn FnMut(Vec<u8>) -> io::Result<()>>,
    batch: usize,
}

impl<'o> FrameSink<'o> {
    /// A sink handing each compressed frame (prefix included) to `out`; `None`: hash only.
    pub(super) fn new(out: Option<&'o mut dyn FnMut(Vec<u8>) -> io::Result<()>>) -> Self {
        Self {
            pending: VecDeque::new(),
            pending_len: 0,
            digests: Vec::new(),
            out,
            batch: FRAMES_PER_THREAD * rayon::current_num_threads().max(1),
        }
    }

    /// Appends `piece` to the stream; a full batch of frames is hashed and compressed now.
    ///
    /// # Errors
    /// The compressor's or the output's.
    pub(super) fn push(&mut self, piece: Bytes) -> io::Result<()> {
        if piece.is_empty() {
            return Ok(());
        }
        self.pending_len += piece.len();
        self.pending.push_back(piece);
        if self.pending_len >= self.batch * FRAME_BYTES {
            self.emit(self.pending_len / FRAME_BYTES)?;
        }
        Ok(())
    }

    /// The next frame's pieces: the first `FRAME_BYTES` pending bytes (or all there are).
    fn cut(&mut self) -> Vec<Bytes> {
        let mut need = FRAME_BYTES.min(self.pending_len);
        self.pending_len -= need;
        let mut frame = Vec::new();
        while need > 0 {
            let Some(mut p) = self.pending.pop_front() else {
                break;
            };
            if p.len() > need {
                let rest = p.split_off(need);
                self.pending.push_front(rest);
            }
            need -= p.len();
            frame.push(p);
        }
        frame
    }

    /// Hashes and compresses the next `n` frames side by side, then hands them on in order.
    fn emit(&mut self, n: usize) -> io::Result<()> {
        use rayon::prelude::*;
        let frames: Vec<Vec<Bytes>> = (0..n).map(|_| self.cut()).collect();
        let compress = self.out.is_some();
        let done: Vec<([u8; 32], Option<Vec<u8>>)> = frames
            .par_iter()
            .map(|f| {
                let mut h = sha2::Sha256::new();
                for p in f {
                    h.update(p);
                }
                let c = if compress {
                    Some(compress_frame(f)?)
                } else {
                    None
                };
                Ok((h.finalize().into(), c))
            })
            .collect::<io::Result<_>>()?;
        drop(frames);
        for (digest, frame) in done {
            self.digests.push(digest);
            if let (Some(out), Some(frame)) = (self.out.as_mut(), frame) {
                out(frame)?;
            }
        }
        Ok(())
    }

    /// Emits what is pending as the last frames and returns the state hash (hex).
    ///
    /// # Errors
    /// As [`FrameSink::push`].
    pub(super) fn finish(mut self) -> io::Result<String> {
        self.emit(self.pending_len.div_ceil(FRAME_BYTES))?;
        Ok(hash_of_digests(&self.digests))
    }
}

/// The state hash of frames' digests: their SHA-256, in order, hex.
fn hash_of_digests(digests: &[[u8; 32]]) -> String {
    let mut h = sha2::Sha256::new();
    for d in digests {
        h.update(d);
    }
    hex(&h.finalize())
}

/// One frame's file bytes: its prefix and its pieces as one LZ4 frame.
fn compress_frame(pieces: &[Bytes]) -> io::Result<Vec<u8>> {
    let len: usize = pieces.iter().map(Bytes::len).sum();
    // Room for the worst case (every block stored as is, plus block and frame headers), so the
    // output is never grown by copying (a twentieth of a write's time at a million agents);
    // the part never written to is never touched, so it costs no memory.
    let mut out = Vec::with_capacity(PREFIX + 64 + len + len / 1024);
    out.resize(PREFIX, 0);
    let mut enc = lz4_flex::frame::FrameEncoder::new(out);
    for p in pieces {
        enc.write_all(p)?;
    }
    let mut out = enc.finish().map_err(io::Error::other)?;
    let compressed = u32::try_from(out.len() - PREFIX)
        .map_err(|_| io::Error::other("a compressed frame is over 4 GiB"))?;
    out[..4].copy_from_slice(&compressed.to_le_bytes());
    out[4..PREFIX].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(out)
}

/// The state hash of `state` (as [`FrameSink::finish`] gives for its stream).
pub(super) fn state_hash(state: &State) -> String {
    let mut sink = FrameSink::new(None);
    for p in pieces(state) {
        // Hashing alone has no output and cannot fail.
        let _ = sink.push(p);
    }
    sink.finish().unwrap_or_default()
}

/// The stream of the frames in `bytes` (a checkpoint's bytes after its header line),
/// decompressed side by side into one buffer, and its state hash.
///
/// # Errors
/// `UnexpectedEof` when the bytes end inside a frame (a truncated file); `InvalidData` for a
/// frame that is damaged or does not fit its prefix.
pub(super) fn read_frames(bytes: &[u8]) -> io::Result<(Vec<u8>, String)> {
    use rayon::prelude::*;
    let damaged = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    // Where each frame is, from the prefixes alone.
    let mut frames: Vec<(usize, usize, usize)> = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        // Only the last frame is short: bytes after it were added to the file.
        if frames.last().is_some_and(|&(_, _, s)| s != FRAME_BYTES) {
            return Err(damaged(&format!(
                "{} bytes after the last frame (was something appended to the file?)",
                bytes.len() - at
            )));
        }
        if bytes.len() - at < PREFIX {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let (compressed, stream) = (le(&bytes[at..]), le(&bytes[at + 4..]));
        if stream > FRAME_BYTES || stream == 0 || !plausible(compressed, stream) {
            return Err(damaged(&format!(
                "frame {}'s lengths are impossible",
                frames.len() + 1
            )));
        }
        at += PREFIX;
        if bytes.len() - at < compressed {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        frames.push((at, compressed, stream));
        at += compressed;
    }
    if frames.is_empty() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let total: usize = frames.iter().map(|f| f.2).sum();
    let mut body = vec![0u8; total];
    let digests: Vec<[u8; 32]> = body
        .par_chunks_mut(FRAME_BYTES)
        .zip(&frames)
        .enumerate()
        .map(|(i, (out, &(at, compressed, _)))| {
            // The decoder's own words (a bad magic number, a block too big) name its format,
            // not the user's problem: they go in brackets.
            let bad = |e: io::Error| damaged(&format!("frame {} does not decompress ({e})", i + 1));
            let mut dec = lz4_flex::frame::FrameDecoder::new(&bytes[at..at + compressed]);
            dec.read_exact(out).map_err(bad)?;
            if dec.read(&mut [0u8; 1]).map_err(bad)? != 0 || !dec.into_inner().is_empty() {
                return Err(damaged(&format!(
                    "frame {} holds more than its lengths say",
                    i + 1
                )));
            }
            Ok(sha2::Sha256::digest(&*out).into())
        })
        .collect::<io::Result<_>>()?;
    Ok((body, hash_of_digests(&digests)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that do not compress away.
    fn noise(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes()[7])
            .collect()
    }

    fn state() -> State {
        State {
            round: 7,
            parts: vec![
                ("big".into(), vec![Bytes::from(noise(FRAME_BYTES * 5 / 2))]),
                (
                    "small".into(),
                    vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")],
                ),
            ],
        }
    }

    fn write(state: &State) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let mut out = |f: Vec<u8>| {
            frames.push(f);
            Ok(())
        };
        let mut sink = FrameSink::new(Some(&mut out));
        for p in pieces(state) {
            sink.push(p).unwrap();
        }
        assert_eq!(sink.finish().unwrap(), state_hash(state));
        frames
    }

    #[test]
    fn the_stream_is_the_round_the_parts_and_a_trailing_index() {
        let s = State {
            round: 3,
            parts: vec![
                ("a".into(), vec![Bytes::from_static(b"xy")]),
                ("bc".into(), vec![Bytes::from_static(b"z")]),
            ],
        };
        let stream: Vec<u8> = pieces(&s).concat();
        let mut expected = vec![3, 0, 0, 0, b'x', b'y', b'z'];
        // a: name length 1, "a", length 2; bc: 2, "bc", 1; then the index's 24 bytes.
        expected.extend([1, 0, 0, 0, b'a', 2, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend([2, 0, 0, 0, b'b', b'c', 1, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend([27, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(stream, expected);
        assert_eq!(decode(Bytes::from(stream.clone())).unwrap(), s);
        // A damaged framing is an error: cut, an index longer than the stream, a part past
        // the index, bytes between the parts and the index.
        let with = |i: usize, v: u8| {
            let mut b = stream.clone();
            b[i] = v;
            Bytes::from(b)
        };
        assert!(decode(Bytes::from(stream[..stream.len() - 1].to_vec())).is_err());
        assert!(decode(with(stream.len() - 8, 200)).is_err());
        assert!(decode(with(12, 3)).is_err());
        assert!(decode(with(12, 1)).is_err());
        assert!(decode(with(9, 3)).is_err());
        assert!(decode(Bytes::from_static(&[0; 11])).is_err());
    }

    #[test]
    fn frames_are_cut_every_frame_bytes_of_the_stream_and_read_back_side_by_side() {
        let s = state();
        let stream: Vec<u8> = pieces(&s).concat();
        let frames = write(&s);
        // 4 (round) + 2.5 frames + 3 + index: 8 MiB, 8 MiB, and the rest.
        assert_eq!(frames.len(), 3);
        for (i, f) in frames.iter().enumerate() {
            let c = u32::from_le_bytes(f[..4].try_into().unwrap()) as usize;
            let n = u32::from_le_bytes(f[4..8].try_into().unwrap()) as usize;
            assert_eq!(c, f.len() - PREFIX);
            let want = if i < 2 {
                FRAME_BYTES
            } else {
                stream.len() - 2 * FRAME_BYTES
            };
            assert_eq!(n, want);
        }
        // The hash is SHA-256 over the frames' SHA-256s, whatever the pieces.
        let digests: Vec<u8> = stream
            .chunks(FRAME_BYTES)
            .flat_map(|c| sha2::Sha256::digest(c).to_vec())
            .collect();
        let expected = hex(&sha2::Sha256::digest(&digests));
        assert_eq!(state_hash(&s), expected);
        let one = State {
            round: 7,
            parts: vec![
                ("big".into(), vec![s.parts[0].1[0].slice(..)]),
                ("small".into(), vec![Bytes::from_static(b"abc")]),
            ],
        };
        assert_eq!(state_hash(&one), expected);
        let file = frames.concat();
        let (body, hash) = read_frames(&file).unwrap();
        assert_eq!(body, stream);
        assert_eq!(hash, expected);
        assert_eq!(decode(Bytes::from(body)).unwrap(), s);
        // Cut inside a frame or its prefix: truncated. Cut at a frame boundary: the frames
        // left read, to another hash. A changed byte: damaged, or another hash.
        for cut in [file.len() - 5, frames[0].len() + 3] {
            let e = read_frames(&file[..cut]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{cut}");
        }
        let (_, h) = read_frames(&frames[..2].concat()).unwrap();
        assert_ne!(h, expected);
        let mut flipped = file.clone();
        flipped[frames[0].len() + 1000] ^= 1;
        match read_frames(&flipped) {
            Ok((_, h)) => assert_ne!(h, expected),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData),
        }
        // A prefix claiming more than LZ4 can hold is refused before anything is allocated.
        let mut lying = file.clone();
        lying[..4].copy_from_slice(&16u32.to_le_bytes());
        assert_eq!(
            read_frames(&lying).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(read_frames(&[]).is_err());
        // Bytes after the last (short) frame were appended, whatever they are: one newline,
        // or a second copy.
        for extra in [&b"\n"[..], &file[..]] {
            let e = read_frames(&[&file[..], extra].concat()).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(e.to_string().contains("appended"), "{e}");
        }
    }
}
