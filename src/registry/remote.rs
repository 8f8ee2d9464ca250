//! The blocking facade over one registry: the distribution-spec
//! operations ingot needs, each a request or two through
//! [`Transport::send`] (src/registry/transport.rs), which authenticates,
//! bounds in time and size, retries and names what went wrong.
//!
//! - blob HEAD, cross-repository mount (201 mounted; 202 "upload instead"),
//!   uploads: one streamed PUT, or 4 MiB PATCHes and a closing PUT;
//! - manifest GET (at most [`MAX_MANIFEST_SIZE`], refused as it arrives)
//!   and PUT;
//! - blob GET, streamed into the store;
//! - the referrers API, with the `sha256-<hex>` tag schema as fallback.
//!
//! Blobs are verified both ways as they stream: an upload reads the
//! layout through a verified reader and stops before a bad blob's last
//! byte leaves ([`BlobChunks`]); a download hashes into our own
//! [`BlobWriter`](crate::store::BlobWriter), never past the size promised,
//! and commits only what the manifest promised.
//!
//! Time limits: a blob moves within the stall limit between two pieces,
//! and within [`Timeouts::total_for`](crate::net::Timeouts::total_for) its
//! size in all (5 minutes, plus a second per 64 KiB): a layer of any size
//! on a slow but live link gets through, and a server that trickles bytes
//! to hold ingot still ends. Every other request gets the total limit.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use oci_spec::image::{ImageIndex, MediaType};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, Url};

use super::auth::{self, Credential};
use super::transport::{Call, Payload, Replay, Scope, Transport};
use super::{Access, RegistryError};
use crate::digest::Digest;
use crate::error::{BlobError, Error, IoContext, Result};
use crate::image::reference::RegistryRef;
use crate::image::{MAX_MANIFEST_SIZE, media};
use crate::net::{Activity, Failure, Response};
use crate::progress::Progress;
use crate::store::{BlobRef, BlobStore, VerifiedReader};

/// Upload chunk size: 4 MiB per PATCH.
const CHUNK: usize = 4 << 20;
/// Read size for monolithic uploads (one streamed PUT).
const MONOLITHIC_READ: usize = 256 << 10;

/// A connection to one registry, with its credentials resolved.
pub struct Remote {
    transport: Transport,
    progress: Progress,
}

/// The registry's host only: credentials and tokens stay out of logs.
impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("host", &self.host())
            .finish_non_exhaustive()
    }
}

/// A manifest or index as the registry served it, checked against the
/// digest it was asked for.
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
}

impl Remote {
    /// Prepares to talk to `reference`'s registry: HTTPS unless `access`
    /// allows plain HTTP for it, with the credentials and time limits
    /// `access` gives. Nothing is sent yet.
    pub fn connect(reference: &RegistryRef, access: &Access, progress: Progress) -> Result<Remote> {
        let credential = auth::lookup(&access.credentials, &reference.host, &reference.repository)?;
        let transport = Transport::new(
            &reference.host,
            access.plain_http(reference),
            access.timeouts,
            credential,
            access.credentials.files.clone(),
            progress.clone(),
        )?;
        Ok(Remote {
            transport,
            progress,
        })
    }

    pub fn host(&self) -> &str {
        self.transport.host()
    }

    pub fn credential(&self) -> Option<&Credential> {
        self.transport.credential()
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// A request of `repo` with no body and nothing unusual.
    fn call<'a>(&self, method: Method, path: String, scope: &'a Scope, what: &'a str) -> Call<'a> {
        Call {
            method,
            url: self.transport.url(&path),
            scope,
            headers: HeaderMap::new(),
            payload: Payload::Empty,
            replay: Replay::Idempotent,
            total: self.transport.timeouts().total,
            accept: &[],
            what,
        }
    }

    /// Whether `repo` has the blob (HEAD).
    pub fn blob_exists(&self, repo: &RegistryRef, digest: &Digest) -> Result<bool> {
        let what = format!("blob {digest} in {}", repo.with_tag(None));
        let scope = Scope::push(&repo.repository);
        let path = format!("/v2/{}/blobs/{digest}", repo.repository);
        let response = self.transport.send(Call {
            accept: &[404],
            ..self.call(Method::HEAD, path, &scope, &what)
        })?;
        Ok(response.status() != 404)
    }

    /// Tries to mount the blob into `repo` from `from_repository` on the
    /// same registry; false when the registry will not (the source lacks
    /// it, or we may not read it there), and the caller uploads instead.
    pub fn mount_blob(
        &self,
        repo: &RegistryRef,
        from_repository: &str,
        digest: &Digest,
    ) -> Result<bool> {
        let source = repo.in_repository(from_repository);
        let what = format!("mounting {digest} from {source}");
        let scope = Scope::mount(&repo.repository, from_repository);
        let mut call = self.call(
            Method::POST,
            format!("/v2/{}/blobs/uploads/", repo.repository),
            &scope,
            &what,
        );
        call.url
            .query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from_repository);
        call.headers
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        call.accept = &[202];
        match self.transport.send(call) {
            Ok(response) => Ok(response.status() == 201),
            // distribution-spec: 202 Accepted is "not mounted, here is an
            // upload session instead"; a source we cannot see is the same.
            Err(RegistryError::NotFound { .. } | RegistryError::Denied { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Uploads a blob from a verified reader: one streamed PUT, or (when
    /// `chunked`) 4 MiB PATCHes. The reader's size and digest are checked
    /// before the last bytes are sent; a layout blob that is not what its
    /// descriptor says is a local failure and completes no upload.
    pub fn upload_blob(
        &self,
        repo: &RegistryRef,
        blob: &BlobRef,
        reader: VerifiedReader,
        chunked: bool,
        what: &str,
    ) -> Result<()> {
        let failure = Arc::new(Mutex::new(None));
        let chunks = BlobChunks {
            reader: Some(reader),
            expected: blob.size,
            chunk: if chunked { CHUNK } else { MONOLITHIC_READ },
            read: 0,
            failure: Arc::clone(&failure),
            progress: self.progress.clone(),
        };
        let scope = Scope::push(&repo.repository);
        let result = if chunked {
            self.upload_chunked(repo, blob, chunks, &scope, what)
        } else {
            self.upload_monolithic(repo, blob, chunks, &scope, what)
        };
        if let Some(fault) = failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(Error::Blob(fault).within(format!("{what}: not pushed")));
        }
        result
    }

    /// Opens an upload session (POST); its location.
    fn start_upload(&self, repo: &RegistryRef, scope: &Scope, what: &str) -> Result<Url> {
        let mut call = self.call(
            Method::POST,
            format!("/v2/{}/blobs/uploads/", repo.repository),
            scope,
            what,
        );
        call.headers
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let response = self.transport.send(call)?;
        self.location(&response, what)
    }

    /// The `Location` an upload answer gives, resolved against the URL
    /// that answered.
    fn location(&self, response: &Response, what: &str) -> Result<Url> {
        let location =
            response
                .header(LOCATION.as_str())
                .ok_or_else(|| RegistryError::Protocol {
                    what: what.to_string(),
                    message: format!(
                        "the registry answered HTTP {} to an upload without a Location",
                        response.status()
                    ),
                })?;
        response.url().join(location).map_err(|e| {
            RegistryError::Protocol {
                what: what.to_string(),
                message: format!("the upload Location is not a URL: {e}"),
            }
            .into()
        })
    }

    fn upload_monolithic(
        &self,
        repo: &RegistryRef,
        blob: &BlobRef,
        chunks: BlobChunks,
        scope: &Scope,
        what: &str,
    ) -> Result<()> {
        let mut url = self.start_upload(repo, scope, what)?;
        url.query_pairs_mut()
            .append_pair("digest", &blob.digest.to_string());
        let activity = Activity::default();
        let moved = activity.clone();
        let stream = futures_util::stream::iter(chunks.inspect(move |_| moved.mark()));
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from(blob.size));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        self.transport.send(Call {
            method: Method::PUT,
            url,
            scope,
            headers,
            payload: Payload::Stream(Some(reqwest::Body::wrap_stream(stream)), activity),
            replay: Replay::Never,
            total: self.transport.timeouts().total_for(blob.size),
            accept: &[],
            what,
        })?;
        Ok(())
    }

    fn upload_chunked(
        &self,
        repo: &RegistryRef,
        blob: &BlobRef,
        chunks: BlobChunks,
        scope: &Scope,
        what: &str,
    ) -> Result<()> {
        let mut location = self.start_upload(repo, scope, what)?;
        let mut start = 0u64;
        for chunk in chunks {
            // A bad blob: the chunks stop before its last one, and the
            // caller reports the fault they recorded.
            let Ok(chunk) = chunk else { return Ok(()) };
            let len = chunk.len() as u64;
            let mut headers = HeaderMap::new();
            headers.insert(
                "Content-Range",
                HeaderValue::from_str(&format!("{start}-{}", start + len - 1))
                    .map_err(|e| Error::Failed(format!("{what}: a Content-Range header: {e}")))?,
            );
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            let response = self.transport.send(Call {
                method: Method::PATCH,
                url: location.clone(),
                scope,
                headers,
                payload: Payload::Bytes(chunk),
                replay: Replay::ConnectOnly,
                total: self.transport.timeouts().total_for(len),
                accept: &[],
                what,
            })?;
            location = self.location(&response, what)?;
            start += len;
        }
        location
            .query_pairs_mut()
            .append_pair("digest", &blob.digest.to_string());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        self.transport.send(Call {
            method: Method::PUT,
            url: location,
            scope,
            headers,
            payload: Payload::Empty,
            replay: Replay::Idempotent,
            total: self.transport.timeouts().total,
            accept: &[],
            what,
        })?;
        Ok(())
    }

    /// Puts a manifest or index (its exact bytes) at `target`'s tag, or by
    /// digest when it has none.
    pub fn put_manifest(&self, target: &RegistryRef, bytes: &[u8], media_type: &str) -> Result<()> {
        let content_type = HeaderValue::from_str(media_type).map_err(|_| {
            Error::Failed(format!(
                "media type {media_type:?} is not a valid header value"
            ))
        })?;
        let target_ref = match target.tag.as_deref() {
            Some(tag) => target.with_tag(Some(tag)),
            None => target.with_digest(Digest::of(bytes)),
        };
        let what = format!("putting the manifest {target_ref}");
        let scope = Scope::push(&target.repository);
        let mut call = self.call(
            Method::PUT,
            format!(
                "/v2/{}/manifests/{}",
                target.repository,
                reference_of(&target_ref)
            ),
            &scope,
            &what,
        );
        call.headers.insert(CONTENT_TYPE, content_type);
        // Held whole, and a PUT: sent again after a transient failure.
        call.payload = Payload::Bytes(Bytes::copy_from_slice(bytes));
        self.transport.send(call)?;
        Ok(())
    }

    /// Gets the manifest or index `target` names (by digest if it has one,
    /// else by tag), checked against that digest.
    pub fn get_manifest(&self, target: &RegistryRef) -> Result<RawManifest> {
        let what = format!("manifest {target}");
        let path = format!(
            "/v2/{}/manifests/{}",
            target.repository,
            reference_of(target)
        );
        let body = self
            .get_small(target, path, &[], &[], (&what, "a manifest"))?
            .unwrap_or_default();
        let digest = Digest::of(&body);
        if let Some(expected) = target.digest
            && expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                what,
                expected,
                found: digest,
            }
            .into());
        }
        let media_type = media_type_of(&body).ok_or_else(|| RegistryError::Protocol {
            what: what.clone(),
            message: "not a manifest or index (no mediaType, config or manifests)".into(),
        })?;
        Ok(RawManifest {
            bytes: body,
            digest,
            media_type,
        })
    }

    /// GETs a manifest-sized document (`kind`, for messages): at most
    /// [`MAX_MANIFEST_SIZE`], refused as soon as it says or sends more.
    /// None for an `accept`ed status other than 200.
    fn get_small(
        &self,
        repo: &RegistryRef,
        path: String,
        query: &[(&str, &str)],
        accept: &[u16],
        (what, kind): (&str, &str),
    ) -> Result<Option<Vec<u8>>> {
        let scope = Scope::pull(&repo.repository);
        let mut call = self.call(Method::GET, path, &scope, what);
        if !query.is_empty() {
            call.url.query_pairs_mut().extend_pairs(query);
        }
        let request = format!("GET {}", call.url.path());
        call.headers.insert(
            ACCEPT,
            HeaderValue::from_str(&media::MANIFEST_TYPES.join(", "))
                .map_err(|e| Error::Failed(format!("an Accept header: {e}")))?,
        );
        call.accept = accept;
        let response = self.transport.send(call)?;
        if response.status() != 200 {
            return Ok(None);
        }
        response
            .limit(MAX_MANIFEST_SIZE)
            .and_then(Response::read_all)
            .map(Some)
            .map_err(|f| self.transport.network_error(&request, f, kind).into())
    }

    /// Downloads a blob of `repo` into `store`, hashing as it writes; it
    /// lands only if its size and digest are what `blob` promised. A blob
    /// the store already has is not fetched (the store's names are
    /// trusted: they were verified when written). True if downloaded.
    pub fn fetch_blob(
        &self,
        repo: &RegistryRef,
        blob: &BlobRef,
        store: &BlobStore,
        what: &str,
    ) -> Result<bool> {
        if store.contains(&blob.digest) {
            return Ok(false);
        }
        let mut writer = store.writer().context(|| format!("storing {what}"))?;
        let scope = Scope::pull(&repo.repository);
        let mut call = self.call(
            Method::GET,
            format!("/v2/{}/blobs/{}", repo.repository, blob.digest),
            &scope,
            what,
        );
        call.total = self.transport.timeouts().total_for(blob.size);
        let request = format!("GET {}", call.url.path());
        let too_long = || RegistryError::SizeMismatch {
            what: what.to_string(),
            expected: blob.size,
            found: "more".into(),
        };
        let mut response = match self.transport.send(call)?.limit(blob.size) {
            Ok(r) => r,
            Err(Failure::TooLarge { .. }) => return Err(too_long().into()),
            Err(f) => return Err(self.transport.network_error(&request, f, what).into()),
        };
        loop {
            match response.chunk() {
                Ok(Some(bytes)) => {
                    writer
                        .write_all(&bytes)
                        .context(|| format!("storing {what}"))?;
                    self.progress.advance(bytes.len() as u64);
                }
                Ok(None) => break,
                Err(Failure::TooLarge { .. }) => return Err(too_long().into()),
                Err(f) => return Err(self.transport.network_error(&request, f, what).into()),
            }
        }
        let found = writer
            .commit_verified(blob)
            .context(|| format!("storing {what}"))?;
        match found {
            Ok(_) => Ok(true),
            Err(found) if found.size != blob.size => Err(RegistryError::SizeMismatch {
                what: what.to_string(),
                expected: blob.size,
                found: found.size.to_string(),
            }
            .into()),
            Err(found) => Err(RegistryError::DigestMismatch {
                what: what.to_string(),
                expected: blob.digest,
                found: found.digest,
            }
            .into()),
        }
    }

    /// The referrers of `subject` (which must name a digest), of
    /// `artifact_type` if given: the registry's referrers API, or, where it
    /// has none (404), the index at the `sha256-<hex>` tag; none at all is
    /// an empty index (distribution-spec "Listing Referrers").
    pub fn referrers(
        &self,
        subject: &RegistryRef,
        artifact_type: Option<&str>,
    ) -> Result<ImageIndex> {
        let what = format!("referrers of {subject}");
        let digest = subject.digest.ok_or_else(|| {
            Error::Usage(format!(
                "{subject}: referrers are listed for a digest: docker://HOST/REPO@sha256:…"
            ))
        })?;
        let path = format!("/v2/{}/referrers/{digest}", subject.repository);
        let query: Vec<(&str, &str)> = artifact_type
            .map(|t| ("artifactType", t))
            .into_iter()
            .collect();
        let listed = self.get_small(subject, path, &query, &[404], (&what, "a referrers index"))?;
        let body = if let Some(body) = listed {
            body
        } else {
            let tag = subject.with_tag(Some(&format!("sha256-{}", digest.hex())));
            match self.get_manifest(&tag) {
                Ok(raw) => raw.bytes,
                Err(Error::Registry(RegistryError::NotFound { .. })) => {
                    let mut empty = ImageIndex::default();
                    empty.set_media_type(Some(MediaType::ImageIndex));
                    return Ok(empty);
                }
                Err(e) => return Err(e),
            }
        };
        let mut index: ImageIndex =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                what,
                message: format!("not an image index: {e}"),
            })?;
        // The tag schema's index holds every type; a registry may ignore
        // the filter too (it says so only in a header).
        if let Some(t) = artifact_type {
            let kept = index
                .manifests()
                .iter()
                .filter(|d| {
                    d.artifact_type()
                        .as_ref()
                        .is_some_and(|a| a.to_string() == t)
                })
                .cloned()
                .collect();
            index.set_manifests(kept);
        }
        Ok(index)
    }
}

/// What a manifest request addresses: the digest if there is one, else
/// the tag (`latest` with neither, as clients do).
fn reference_of(r: &RegistryRef) -> String {
    match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".into(),
    }
}

/// The media type a manifest or index declares, or its shape implies.
fn media_type_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        config: Option<serde_json::Value>,
        manifests: Option<serde_json::Value>,
    }
    let head: Head = serde_json::from_slice(body).ok()?;
    match head {
        Head {
            media_type: Some(m),
            ..
        } => Some(m),
        Head {
            manifests: Some(_), ..
        } => Some(media::MANIFEST_TYPES[1].to_string()),
        Head {
            config: Some(_), ..
        } => Some(media::MANIFEST_TYPES[0].to_string()),
        _ => None,
    }
}

/// A verified file reader as an iterator of chunks for an upload. At the end of the blob (before yielding the last chunk)
/// the reader is finished, which checks size and digest: a mismatch
/// becomes a stream error, recorded in `failure`, and the upload never
/// completes.
struct BlobChunks {
    reader: Option<VerifiedReader>,
    expected: u64,
    chunk: usize,
    read: u64,
    failure: Arc<Mutex<Option<BlobError>>>,
    progress: Progress,
}

impl BlobChunks {
    /// Ends the stream; the blob's fault is kept, typed, for the uploader.
    fn fail(&mut self, e: BlobError) -> Option<io::Result<Bytes>> {
        self.reader = None;
        let stream = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        Some(Err(stream))
    }
}

impl Iterator for BlobChunks {
    type Item = io::Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        let reader = self.reader.as_mut()?;
        let mut buf = vec![0u8; self.chunk];
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let cause = self.reader.take()?.cause(e);
                    return self.fail(cause);
                }
            }
        }
        buf.truncate(filled);
        self.read += filled as u64;
        if filled < self.chunk || self.read >= self.expected {
            let reader = self.reader.take()?;
            if let Err(e) = reader.finish() {
                return self.fail(e);
            }
        }
        if filled == 0 {
            return None;
        }
        self.progress.advance(filled as u64);
        Some(Ok(Bytes::from(buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_from_field_or_shape() {
        assert_eq!(
            media_type_of(br#"{"mediaType":"x","config":{}}"#).as_deref(),
            Some("x")
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(media::MANIFEST_TYPES[1])
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"config":{}}"#).as_deref(),
            Some(media::MANIFEST_TYPES[0])
        );
        assert_eq!(media_type_of(b"{}"), None);
        assert_eq!(media_type_of(b"nope"), None);
    }

    fn chunks_of(
        content: &[u8],
        promised: &[u8],
        chunk: usize,
    ) -> (Vec<Vec<u8>>, Option<BlobError>) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let stored = store.put(content).unwrap();
        // A layout whose blob file does not match its name: what a
        // corrupted layout looks like.
        let expected = BlobRef {
            digest: Digest::of(promised),
            size: promised.len() as u64,
        };
        std::fs::rename(store.path(&stored.digest), store.path(&expected.digest)).unwrap();
        let failure = Arc::new(Mutex::new(None));
        let it = BlobChunks {
            reader: Some(store.open_blob(&expected).unwrap()),
            expected: expected.size,
            chunk,
            read: 0,
            failure: Arc::clone(&failure),
            progress: Progress::quiet(),
        };
        let mut out = Vec::new();
        for item in it {
            match item {
                Ok(b) => out.push(b.to_vec()),
                Err(_) => break,
            }
        }
        let failure = failure.lock().unwrap().take();
        (out, failure)
    }

    #[test]
    fn blob_chunks_stream_a_good_blob() {
        let (out, failure) = chunks_of(b"0123456789", b"0123456789", 4);
        assert_eq!(
            out,
            vec![b"0123".to_vec(), b"4567".to_vec(), b"89".to_vec()]
        );
        assert!(failure.is_none(), "{failure:?}");
        let (out, failure) = chunks_of(b"01234567", b"01234567", 4);
        assert_eq!(out.len(), 2);
        assert!(failure.is_none(), "{failure:?}");
        let (out, failure) = chunks_of(b"", b"", 4);
        assert!(out.is_empty() && failure.is_none());
    }

    #[test]
    fn blob_chunks_hold_back_the_last_chunk_of_a_bad_blob() {
        let (out, failure) = chunks_of(b"0123456789", b"0123456788", 4);
        assert_eq!(out, vec![b"0123".to_vec(), b"4567".to_vec()]);
        assert!(
            matches!(failure, Some(BlobError::DigestMismatch { found, .. }) if found == Digest::of(b"0123456789"))
        );
        // Longer than promised: stopped at the promised size.
        let (out, failure) = chunks_of(b"0123456789", b"01234567", 4);
        assert_eq!(out, vec![b"0123".to_vec()]);
        assert!(matches!(
            failure,
            Some(BlobError::SizeMismatch {
                expected: 8,
                found: 10,
                ..
            })
        ));
        // Shorter.
        let (out, failure) = chunks_of(b"012345", b"01234567", 4);
        assert_eq!(out, vec![b"0123".to_vec()]);
        assert!(matches!(
            failure,
            Some(BlobError::SizeMismatch {
                expected: 8,
                found: 6,
                ..
            })
        ));
    }
}
