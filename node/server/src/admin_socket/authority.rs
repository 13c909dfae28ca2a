//! Every request on the admin socket reaches the server with the authority
//! `localhost`, whatever the client sent.
//!
//! A Unix socket has no host name, so each gRPC client makes one up for the
//! `:authority` of its requests: grpcurl sends the socket's path
//! (`/var/lib/meridian/admin.sock`), grpcio since 1.57 its percent-encoding
//! (`%2Fvar%2Flib…`). Neither is a valid URI authority, and the HTTP/2
//! server under tonic (h2) resets such a stream with `PROTOCOL_ERROR` before
//! any service sees it, with no option to accept it (hyperium/h2#487). So
//! each connection of the admin socket passes through this filter: every
//! header block the client sends is decoded (HPACK, keeping the client's
//! dynamic table), its `:authority` replaced by `localhost`, and encoded
//! again as literals that never touch the server's dynamic table. Every
//! other frame, and everything the server sends, passes unchanged.
//!
//! Sizes are bounded before work is done: a header block (encoded and
//! decoded) is at most [`MAX_HEADER_BLOCK`] bytes, and the HPACK table no
//! larger than the server allows. A malformed frame or header block closes
//! the connection; the node keeps serving others.

use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context, Poll};

use fluke_hpack::Decoder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::net::UnixStream;

/// The authority every request on the admin socket is given.
pub const AUTHORITY: &[u8] = b"localhost";

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEAD: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Largest frame payload written: HTTP/2's initial `SETTINGS_MAX_FRAME_SIZE`,
/// which every server accepts.
const MAX_FRAME: usize = 16_384;
/// The server's HPACK table size: HTTP/2's initial
/// `SETTINGS_HEADER_TABLE_SIZE`, which the server does not change.
const HEADER_TABLE_SIZE: usize = 4_096;
/// Largest header block accepted, encoded (all its frames) or decoded
/// (names and values, 32 bytes of overhead each, as HTTP/2 counts them).
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// Bytes in flight between the filter and the server, each way.
const PIPE_BYTES: usize = 256 * 1024;

/// Why a connection was closed by the filter.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("header block of stream {stream} is larger than {MAX_HEADER_BLOCK} bytes")]
    TooLarge { stream: u32 },
    #[error(
        "frame of type {kind:#x} on stream {got} where the CONTINUATION of stream {stream} belongs"
    )]
    ExpectedContinuation { stream: u32, kind: u8, got: u32 },
    #[error("HEADERS frame of stream {stream}: padding or priority longer than the frame")]
    BadPadding { stream: u32 },
    #[error("header block of stream {stream} is not valid HPACK: {reason}")]
    Hpack { stream: u32, reason: String },
}

/// One admin connection as the server sees it: the far end of the filter.
pub struct AdminConnection {
    pipe: DuplexStream,
}

/// Puts the filter between `stream` and the server; the filter runs until
/// either side closes.
pub fn accept(stream: UnixStream) -> AdminConnection {
    let (server_side, filter_side) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(async move {
        let (from_client, mut to_client) = stream.into_split();
        let (mut from_server, mut to_server) = tokio::io::split(filter_side);
        let inbound = tokio::spawn(async move {
            if let Err(e) = filter(BufReader::new(from_client), &mut to_server).await {
                tracing::debug!(error = %e, "admin socket: connection closed");
            }
            let _ = to_server.shutdown().await;
        });
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
        inbound.abort();
    });
    AdminConnection { pipe: server_side }
}

impl AsyncRead for AdminConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.pipe).poll_read(cx, buf)
    }
}

impl AsyncWrite for AdminConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.pipe).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.pipe).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.pipe).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for AdminConnection {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// One frame's head.
struct Head {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl Head {
    fn parse(bytes: &[u8; FRAME_HEAD]) -> Self {
        Self {
            len: usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]),
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        let len = u32::try_from(self.len).expect("frames are at most MAX_FRAME bytes");
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&self.stream.to_be_bytes());
    }
}

/// Reads a frame head; `None` at a clean end of the stream.
async fn read_head<R: AsyncRead + Unpin>(from: &mut R) -> Result<Option<Head>, FilterError> {
    let mut bytes = [0u8; FRAME_HEAD];
    let first = from.read(&mut bytes).await?;
    if first == 0 {
        return Ok(None);
    }
    from.read_exact(&mut bytes[first..]).await?;
    Ok(Some(Head::parse(&bytes)))
}

/// Copies HTTP/2 frames from the client to the server, rewriting the
/// `:authority` of every header block; returns at the end of the stream.
pub async fn filter<R, W>(mut from: R, to: &mut W) -> Result<(), FilterError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut preface = [0u8; PREFACE.len()];
    from.read_exact(&mut preface).await?;
    to.write_all(&preface).await?;
    if &preface != PREFACE {
        // Not HTTP/2 with prior knowledge: the server answers it as it is.
        tokio::io::copy(&mut from, to).await?;
        return Ok(());
    }
    let mut decoder = Decoder::new();
    decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
    let mut block = Vec::new();
    let mut out = Vec::new();
    while let Some(head) = read_head(&mut from).await? {
        if head.kind != HEADERS {
            let mut bytes = Vec::with_capacity(FRAME_HEAD);
            head.write(&mut bytes);
            to.write_all(&bytes).await?;
            let copied = tokio::io::copy(&mut (&mut from).take(head.len as u64), to).await?;
            if copied < head.len as u64 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            continue;
        }
        let stream = head.stream;
        let payload = read_block_part(&mut from, &head, 0).await?;
        let (priority, fragment) = split_headers(&payload, head.flags, stream)?;
        block.clear();
        block.extend_from_slice(fragment);
        let mut flags = head.flags;
        while flags & END_HEADERS == 0 {
            let next = read_head(&mut from)
                .await?
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
            if next.kind != CONTINUATION || next.stream != stream {
                return Err(FilterError::ExpectedContinuation {
                    stream,
                    kind: next.kind,
                    got: next.stream,
                });
            }
            let more = read_block_part(&mut from, &next, block.len()).await?;
            block.extend_from_slice(&more);
            flags = next.flags;
        }
        out.clear();
        let rewritten = rewrite(&mut decoder, &block, stream)?;
        write_headers(
            &mut out,
            stream,
            head.flags & END_STREAM,
            priority,
            &rewritten,
        );
        to.write_all(&out).await?;
    }
    Ok(())
}

/// Reads a frame payload of a header block that holds `so_far` bytes,
/// refusing it before reading if the block would grow too large.
async fn read_block_part<R: AsyncRead + Unpin>(
    from: &mut R,
    head: &Head,
    so_far: usize,
) -> Result<Vec<u8>, FilterError> {
    if so_far + head.len > MAX_HEADER_BLOCK {
        return Err(FilterError::TooLarge {
            stream: head.stream,
        });
    }
    let mut bytes = vec![0u8; head.len];
    from.read_exact(&mut bytes).await?;
    Ok(bytes)
}

/// The priority fields and the header block fragment of a HEADERS payload.
fn split_headers(
    payload: &[u8],
    flags: u8,
    stream: u32,
) -> Result<(Option<[u8; 5]>, &[u8]), FilterError> {
    let bad = || FilterError::BadPadding { stream };
    let (pad, mut rest) = if flags & PADDED != 0 {
        let (&pad, rest) = payload.split_first().ok_or_else(bad)?;
        (usize::from(pad), rest)
    } else {
        (0, payload)
    };
    let priority = if flags & PRIORITY != 0 {
        let fields: [u8; 5] = rest.get(..5).ok_or_else(bad)?.try_into().expect("5 bytes");
        rest = &rest[5..];
        Some(fields)
    } else {
        None
    };
    let end = rest.len().checked_sub(pad).ok_or_else(bad)?;
    Ok((priority, &rest[..end]))
}

/// Decodes `block` and encodes it again with the authority replaced, every
/// field a literal without indexing.
fn rewrite(decoder: &mut Decoder<'_>, block: &[u8], stream: u32) -> Result<Vec<u8>, FilterError> {
    let block = table_size_updates(decoder, block, stream)?;
    let mut out = Vec::with_capacity(block.len() + AUTHORITY.len());
    let mut decoded = 0usize;
    // The decoder panics on a table size update cut short instead of
    // returning an error; those that may come are checked above, and this
    // refuses the block should one come elsewhere.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decoder.decode_with_cb(block, |name: Cow<[u8]>, value: Cow<[u8]>| {
            decoded += name.len() + value.len() + 32;
            if decoded > MAX_HEADER_BLOCK {
                return;
            }
            let value: &[u8] = if name.as_ref() == b":authority" {
                AUTHORITY
            } else {
                &value
            };
            literal(&mut out, &name, value);
        })
    }));
    match result {
        Ok(Ok(())) if decoded > MAX_HEADER_BLOCK => Err(FilterError::TooLarge { stream }),
        Ok(Ok(())) => Ok(out),
        Ok(Err(e)) => Err(FilterError::Hpack {
            stream,
            reason: format!("{e:?}"),
        }),
        Err(_) => Err(FilterError::Hpack {
            stream,
            reason: "truncated".into(),
        }),
    }
}

/// Applies the dynamic table size updates `block` starts with (the only
/// place they may come, RFC 7541 §4.2), each checked against the size the
/// server allows; returns the rest of the block.
fn table_size_updates<'b>(
    decoder: &mut Decoder<'_>,
    mut block: &'b [u8],
    stream: u32,
) -> Result<&'b [u8], FilterError> {
    while let Some(&first) = block.first() {
        if first & 0xe0 != 0x20 {
            break;
        }
        let (size, used) = read_integer(block, 5).ok_or_else(|| FilterError::Hpack {
            stream,
            reason: "table size update cut short".into(),
        })?;
        if size > HEADER_TABLE_SIZE {
            return Err(FilterError::Hpack {
                stream,
                reason: format!("table size {size} is larger than {HEADER_TABLE_SIZE}"),
            });
        }
        decoder.set_max_table_size(size);
        block = &block[used..];
    }
    Ok(block)
}

/// Reads an HPACK integer with an `n`-bit prefix: its value and length, or
/// `None` if it is cut short or larger than 2^28.
fn read_integer(bytes: &[u8], prefix_bits: u8) -> Option<(usize, usize)> {
    let max = (1usize << prefix_bits) - 1;
    let first = usize::from(*bytes.first()?) & max;
    if first < max {
        return Some((first, 1));
    }
    let mut value = max;
    for (at, &byte) in bytes[1..].iter().enumerate().take(4) {
        value += usize::from(byte & 0x7f) << (7 * at);
        if byte & 0x80 == 0 {
            return Some((value, at + 2));
        }
    }
    None
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1).
fn integer(out: &mut Vec<u8>, value: usize, prefix_bits: u8, flags: u8) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// A literal header field without indexing, new name, no Huffman coding
/// (RFC 7541 §6.2.2).
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    integer(out, name.len(), 7, 0);
    out.extend_from_slice(name);
    integer(out, value.len(), 7, 0);
    out.extend_from_slice(value);
}

/// A HEADERS frame and as many CONTINUATION frames as `block` needs.
fn write_headers(
    out: &mut Vec<u8>,
    stream: u32,
    end_stream: u8,
    priority: Option<[u8; 5]>,
    block: &[u8],
) {
    let first_room = MAX_FRAME - if priority.is_some() { 5 } else { 0 };
    let (first, mut rest) = block.split_at(block.len().min(first_room));
    let mut flags = end_stream;
    if priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    Head {
        len: first.len() + priority.map_or(0, |p| p.len()),
        kind: HEADERS,
        flags,
        stream,
    }
    .write(out);
    if let Some(fields) = priority {
        out.extend_from_slice(&fields);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(rest.len().min(MAX_FRAME));
        Head {
            len: chunk.len(),
            kind: CONTINUATION,
            flags: if after.is_empty() { END_HEADERS } else { 0 },
            stream,
        }
        .write(out);
        out.extend_from_slice(chunk);
        rest = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCKET_PATH: &[u8] = b"/var/lib/meridian/admin.sock";

    fn request(authority: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (b":method".to_vec(), b"POST".to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
            (b":path".to_vec(), b"/meridian.v1.Admin/Status".to_vec()),
            (b":authority".to_vec(), authority.to_vec()),
            (b"content-type".to_vec(), b"application/grpc".to_vec()),
            (b"te".to_vec(), b"trailers".to_vec()),
        ]
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Head {
            len: payload.len(),
            kind,
            flags,
            stream,
        }
        .write(&mut out);
        out.extend_from_slice(payload);
        out
    }

    /// The frames in `bytes` after the preface: (kind, flags, stream, payload).
    fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        assert_eq!(&bytes[..PREFACE.len()], PREFACE);
        let mut rest = &bytes[PREFACE.len()..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let head = Head::parse(rest[..FRAME_HEAD].try_into().unwrap());
            let payload = rest[FRAME_HEAD..FRAME_HEAD + head.len].to_vec();
            out.push((head.kind, head.flags, head.stream, payload));
            rest = &rest[FRAME_HEAD + head.len..];
        }
        out
    }

    async fn run(input: &[u8]) -> Result<Vec<u8>, FilterError> {
        let mut out = Vec::new();
        filter(input, &mut out).await?;
        Ok(out)
    }

    /// The header lists the server decodes from `output`, one per block.
    fn server_view(output: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut decoder = Decoder::new();
        let mut blocks = Vec::new();
        let mut block = Vec::new();
        for (kind, flags, _, payload) in frames(output) {
            match kind {
                HEADERS => {
                    assert_eq!(flags & PADDED, 0);
                    let skip = if flags & PRIORITY != 0 { 5 } else { 0 };
                    block = payload[skip..].to_vec();
                }
                CONTINUATION => block.extend_from_slice(&payload),
                _ => continue,
            }
            if flags & END_HEADERS != 0 {
                blocks.push(decoder.decode(&block).unwrap());
            }
        }
        blocks
    }

    /// `block` as a HEADERS frame and CONTINUATION frames on `stream`.
    fn block_frames(stream: u32, block: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_headers(&mut out, stream, 0, None, block);
        out
    }

    #[tokio::test]
    async fn the_authority_of_every_request_becomes_localhost() {
        let mut encoder = fluke_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        let first = request(SOCKET_PATH);
        let block = encoder.encode(first.iter().map(|(n, v)| (&n[..], &v[..])));
        input.extend(frame(HEADERS, END_HEADERS, 1, &block));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0"));
        // The second request refers to the first one's fields through the
        // dynamic table, as every client's encoder does.
        let second = request(b"%2Fvar%2Flib%2Fmeridian%2Fadmin.sock");
        let block = encoder.encode(second.iter().map(|(n, v)| (&n[..], &v[..])));
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &block));

        let output = run(&input).await.unwrap();
        let blocks = server_view(&output);
        assert_eq!(blocks.len(), 2);
        for headers in &blocks {
            assert_eq!(headers, &request(AUTHORITY));
        }
        let kinds: Vec<(u8, u8, u32)> = frames(&output).iter().map(|f| (f.0, f.1, f.2)).collect();
        assert_eq!(
            kinds,
            [
                (0x4, 0, 0),
                (HEADERS, END_HEADERS, 1),
                (0x0, END_STREAM, 1),
                (HEADERS, END_HEADERS | END_STREAM, 3)
            ]
        );
        assert_eq!(frames(&output)[2].3, b"\0\0\0\0\0");
    }

    #[tokio::test]
    async fn padding_priority_and_continuations_are_read_and_large_blocks_split() {
        let mut encoder = fluke_hpack::Encoder::new();
        let mut headers = request(SOCKET_PATH);
        headers.push((b"x-large".to_vec(), vec![b'a'; 40_000]));
        let block = encoder.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])));
        let (one, two) = block.split_at(10);
        let mut payload = vec![3u8]; // pad length
        payload.extend_from_slice(&[0, 0, 0, 0, 7]); // priority
        payload.extend_from_slice(one);
        payload.extend_from_slice(&[0, 0, 0]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, PADDED | PRIORITY, 5, &payload));
        input.extend(frame(CONTINUATION, END_HEADERS, 5, two));

        let output = run(&input).await.unwrap();
        let mut expected = request(AUTHORITY);
        expected.push((b"x-large".to_vec(), vec![b'a'; 40_000]));
        assert_eq!(server_view(&output), [expected]);
        let out = frames(&output);
        assert!(out.len() >= 3, "40 kB take more than one frame");
        assert!(out.iter().all(|f| f.3.len() <= MAX_FRAME));
        assert_eq!(out[0].1, PRIORITY);
        assert_eq!(&out[0].3[..5], &[0, 0, 0, 0, 7]);
    }

    #[tokio::test]
    async fn malformed_blocks_close_the_connection() {
        for block in [
            &[0x3f][..],             // a table size update cut short
            &[0xff, 0x80][..],       // an index cut short
            &[0xbe][..],             // an index past both tables
            &[0x3f, 0xe1, 0x7f][..], // a table larger than the server allows
        ] {
            let mut input = PREFACE.to_vec();
            input.extend(frame(HEADERS, END_HEADERS, 1, block));
            let err = run(&input).await.unwrap_err();
            assert!(matches!(err, FilterError::Hpack { stream: 1, .. }), "{err}");
        }
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, PADDED, 1, &[9, 1, 2]));
        assert!(matches!(
            run(&input).await.unwrap_err(),
            FilterError::BadPadding { stream: 1 }
        ));
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, 0, 1, &[0x82]));
        input.extend(frame(0x0, 0, 1, b"x"));
        assert!(matches!(
            run(&input).await.unwrap_err(),
            FilterError::ExpectedContinuation {
                stream: 1,
                kind: 0,
                got: 1
            }
        ));
    }

    #[tokio::test]
    async fn a_block_too_large_is_refused_before_it_is_read() {
        let mut input = PREFACE.to_vec();
        // Its head claims 16 MiB - 1; none of it follows.
        input.extend([0xff, 0xff, 0xff, HEADERS, END_HEADERS, 0, 0, 0, 1]);
        assert!(matches!(
            run(&input).await.unwrap_err(),
            FilterError::TooLarge { stream: 1 }
        ));
        // Continuations add up.
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, 0, 1, &[]));
        for _ in 0..MAX_HEADER_BLOCK / MAX_FRAME + 1 {
            input.extend(frame(CONTINUATION, 0, 1, &[0u8; MAX_FRAME]));
        }
        assert!(matches!(
            run(&input).await.unwrap_err(),
            FilterError::TooLarge { stream: 1 }
        ));
        // Small fields that expand to more than the bound when decoded:
        // one 159-byte entry in the dynamic table, then many references to it.
        let mut block = vec![0x40, 1, b'x', 126];
        block.extend([b'v'; 126]);
        block.extend(std::iter::repeat_n(0xbe, MAX_HEADER_BLOCK / 150));
        let mut input = PREFACE.to_vec();
        input.extend(block_frames(1, &block));
        assert!(matches!(
            run(&input).await.unwrap_err(),
            FilterError::TooLarge { stream: 1 }
        ));
    }

    #[test]
    fn integers_read_as_written() {
        for value in [0, 1, 30, 31, 32, 127, 128, 1337, 4096, 1 << 20] {
            let mut bytes = Vec::new();
            integer(&mut bytes, value, 5, 0x20);
            assert_eq!(read_integer(&bytes, 5), Some((value, bytes.len())));
            bytes.pop();
            if !bytes.is_empty() {
                assert_eq!(read_integer(&bytes, 5), None, "{value} cut short");
            }
        }
        assert_eq!(read_integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x01], 5), None);
    }

    #[tokio::test]
    async fn not_http2_passes_unchanged() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        assert_eq!(run(&input).await.unwrap(), input);
    }
}
