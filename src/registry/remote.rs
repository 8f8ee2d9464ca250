//! The blocking facade over one registry: oci-client on a current-thread
//! tokio runtime created here, at the edge, so the rest of ingot stays
//! synchronous. It also turns oci-client's and reqwest's errors into
//! [`RegistryError`]s that say, in one line, what the user can act on.
//!
//! What oci-client does for us: the `/v2/` auth challenge and the bearer
//! token dance (or basic auth), blob HEAD, monolithic and chunked uploads
//! from a stream, cross-repository mount, manifest GET/PUT, and the
//! referrers listing with its tag-schema fallback.
//!
//! Where we work around it:
//! - Its chunked/monolithic choice is a client-wide setting, so a
//!   [`Remote`] holds two clients sharing one token cache.
//! - It uploads from a `Stream`; we feed it a blocking iterator over a
//!   verified file reader, so a blob is never loaded whole and a bad one
//!   fails before its last byte is sent. Blocking reads of a local file on
//!   the current-thread runtime cost nothing here: nothing else runs on it.
//! - Its mount reports the registry's "202, not mounted, upload instead"
//!   as a spec violation; we read that as "fall back to an upload".
//! - It verifies blob digests only at the end of a stream and by message;
//!   we hash into our own [`BlobWriter`] with a size cap, and commit only
//!   what the manifest promised.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_spec::image::ImageIndex;

use super::auth::{self, Credential};
use super::{Access, RegistryError};
use crate::digest::Digest;
use crate::error::{BlobError, Error, IoContext, Result};
use crate::image::reference::RegistryRef;
use crate::image::{MAX_MANIFEST_SIZE, media};
use crate::progress::Progress;
use crate::store::{BlobRef, BlobStore, VerifiedReader};

/// Upload chunk size: oci-client sends at most 4 MiB per PATCH.
const CHUNK: usize = 4 << 20;
/// Read size for monolithic uploads (one streamed PUT).
const MONOLITHIC_READ: usize = 256 << 10;

/// A connection to one registry, with its credentials resolved.
pub struct Remote {
    host: String,
    rt: tokio::runtime::Runtime,
    chunked: Client,
    monolithic: Client,
    credential: Option<Credential>,
    searched: Vec<PathBuf>,
    progress: Progress,
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
    /// allows plain HTTP for it, with the credentials `access` finds for
    /// it. Nothing is sent yet.
    pub fn connect(reference: &RegistryRef, access: &Access, progress: Progress) -> Result<Remote> {
        let credential = auth::lookup(&access.credentials, &reference.host, &reference.repository)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .context(|| "starting the network runtime".into())?;
        let protocol = if access.plain_http(reference) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let config = |monolithic: bool| ClientConfig {
            protocol: protocol.clone(),
            use_monolithic_push: monolithic,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(300)),
            user_agent: concat!("ingot/", env!("CARGO_PKG_VERSION")),
            // Indexes are resolved by ingot (image::select_platform).
            platform_resolver: None,
            ..ClientConfig::default()
        };
        let chunked = Client::try_from(config(false)).map_err(|e| RegistryError::Protocol {
            what: reference.host.clone(),
            message: format!("setting up the HTTP client: {e}"),
        })?;
        let mut monolithic =
            Client::try_from(config(true)).map_err(|e| RegistryError::Protocol {
                what: reference.host.clone(),
                message: format!("setting up the HTTP client: {e}"),
            })?;
        monolithic.tokens = chunked.tokens.clone();
        let auth = match &credential {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.secret.clone()),
            None => RegistryAuth::Anonymous,
        };
        // oci-client keys credentials by the resolved registry
        // (docker.io → index.docker.io).
        let oci_ref = oci_reference(reference);
        let registry = oci_ref.resolve_registry();
        rt.block_on(async {
            chunked.store_auth_if_needed(registry, &auth).await;
            monolithic.store_auth_if_needed(registry, &auth).await;
        });
        Ok(Remote {
            host: reference.host.clone(),
            rt,
            chunked,
            monolithic,
            credential,
            searched: access.credentials.files.clone(),
            progress,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Whether `repo` has the blob (HEAD).
    pub fn blob_exists(&self, repo: &RegistryRef, digest: &Digest) -> Result<bool> {
        let what = || format!("blob {digest} in {}", repo.with_tag(None));
        self.rt
            .block_on(
                self.chunked
                    .blob_exists(&oci_reference(repo), &digest.to_string()),
            )
            .map_err(|e| self.classify(e, &what()).into())
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
        let result = self.rt.block_on(self.chunked.mount_blob(
            &oci_reference(repo),
            &oci_reference(&source),
            &digest.to_string(),
        ));
        match result {
            Ok(()) => Ok(true),
            // distribution-spec: 202 Accepted means "not mounted, here is
            // an upload session instead"; oci-client wanted 201.
            Err(OciDistributionError::SpecViolationError(_)) => Ok(false),
            Err(e) => match self.classify(e, &format!("mounting {digest} from {source}")) {
                RegistryError::NotFound { .. } | RegistryError::Denied { .. } => Ok(false),
                other => Err(other.into()),
            },
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
        let client = if chunked {
            &self.chunked
        } else {
            &self.monolithic
        };
        let result = self.rt.block_on(client.push_blob_stream(
            &oci_reference(repo),
            futures_util::stream::iter(chunks),
            &blob.digest.to_string(),
            Some(blob.size),
        ));
        if let Some(fault) = failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(Error::Blob(fault).within(format!("{what}: not pushed")));
        }
        result.map(drop).map_err(|e| self.classify(e, what).into())
    }

    /// Puts a manifest or index (its exact bytes) at `target`'s tag, or by
    /// digest when it has none.
    pub fn put_manifest(&self, target: &RegistryRef, bytes: &[u8], media_type: &str) -> Result<()> {
        let content_type = reqwest::header::HeaderValue::from_str(media_type).map_err(|_| {
            Error::Failed(format!(
                "media type {media_type:?} is not a valid header value"
            ))
        })?;
        let target_ref = match target.tag.as_deref() {
            Some(tag) => target.with_tag(Some(tag)),
            None => target.with_digest(Digest::of(bytes)),
        };
        self.rt
            .block_on(self.chunked.push_manifest_raw(
                &oci_reference(&target_ref),
                bytes.to_vec(),
                content_type,
            ))
            .map(drop)
            .map_err(|e| {
                self.classify(e, &format!("putting the manifest {target_ref}"))
                    .into()
            })
    }

    /// Gets the manifest or index `target` names (by digest if it has one,
    /// else by tag), checked against that digest.
    pub fn get_manifest(&self, target: &RegistryRef) -> Result<RawManifest> {
        let what = format!("manifest {target}");
        let (body, _) = self
            .rt
            .block_on(self.chunked.pull_manifest_raw(
                &oci_reference(target),
                &self.auth(),
                &media::MANIFEST_TYPES,
            ))
            .map_err(|e| self.classify(e, &what))?;
        if body.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(RegistryError::Protocol {
                what,
                message: format!(
                    "{} bytes, more than the {MAX_MANIFEST_SIZE} a manifest may have",
                    body.len()
                ),
            }
            .into());
        }
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
            bytes: body.to_vec(),
            digest,
            media_type,
        })
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
        let digest = blob.digest.to_string();
        enum Stop {
            TooLong,
            Stream(io::Error),
            Local(io::Error),
        }
        let stop: std::result::Result<Option<Stop>, OciDistributionError> =
            self.rt.block_on(async {
                let mut stream = self
                    .chunked
                    .pull_blob_stream(&oci_reference(repo), digest.as_str())
                    .await?;
                while let Some(item) = stream.next().await {
                    let bytes: Bytes = match item {
                        Ok(b) => b,
                        Err(e) => return Ok(Some(Stop::Stream(e))),
                    };
                    if writer.len() + bytes.len() as u64 > blob.size {
                        return Ok(Some(Stop::TooLong));
                    }
                    if let Err(e) = writer.write_all(&bytes) {
                        return Ok(Some(Stop::Local(e)));
                    }
                    self.progress.advance(bytes.len() as u64);
                }
                Ok(None)
            });
        let stop = stop.map_err(|e| self.classify(e, what))?;
        match stop {
            None => {}
            Some(Stop::TooLong) => {
                return Err(RegistryError::SizeMismatch {
                    what: what.to_string(),
                    expected: blob.size,
                    found: "more".into(),
                }
                .into());
            }
            Some(Stop::Local(e)) => {
                return Err(Error::Io {
                    context: format!("storing {what}"),
                    source: e,
                });
            }
            // oci-client's own digest check fires at the end of the
            // stream, after every byte reached us: ours below says the same
            // with the digest we found.
            Some(Stop::Stream(e)) if is_digest_error(&e) => {}
            Some(Stop::Stream(e)) => return Err(self.classify_io(e, what).into()),
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

    /// The referrers of `subject` (which must name a digest): the registry's
    /// referrers API, or oci-client's fallback to the `sha256-<hex>` tag.
    pub fn referrers(
        &self,
        subject: &RegistryRef,
        artifact_type: Option<&str>,
    ) -> Result<ImageIndex> {
        let what = format!("referrers of {subject}");
        let index = self
            .rt
            .block_on(
                self.chunked
                    .pull_referrers(&oci_reference(subject), artifact_type),
            )
            .map_err(|e| self.classify(e, &what))?;
        // oci-client's index type, read back as ingot's (oci-spec 0.8).
        let json = serde_json::to_vec(&index).map_err(|e| RegistryError::Protocol {
            what: what.clone(),
            message: e.to_string(),
        })?;
        serde_json::from_slice(&json).map_err(|e| {
            RegistryError::Protocol {
                what,
                message: format!("not an image index: {e}"),
            }
            .into()
        })
    }

    fn auth(&self) -> RegistryAuth {
        match &self.credential {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.secret.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// One line for what went wrong, by kind rather than by library.
    pub(crate) fn classify(&self, err: OciDistributionError, what: &str) -> RegistryError {
        use OciDistributionError as E;
        match err {
            E::RequestError(e) => self.classify_reqwest(&e, what),
            E::UnauthorizedError { .. } => self.unauthorized(None),
            E::AuthenticationFailure(message) => self.unauthorized(Some(&message)),
            E::ServerError { code, message, .. } => self.status_error(code, what, &message),
            E::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let message = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                if codes.contains(&&OciErrorCode::Unauthorized) {
                    self.unauthorized(None)
                } else if codes.contains(&&OciErrorCode::Denied) {
                    RegistryError::Denied {
                        host: self.host.clone(),
                        what: what.to_string(),
                    }
                } else if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::BlobUnknown
                            | OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    RegistryError::NotFound {
                        what: what.to_string(),
                    }
                } else {
                    RegistryError::Protocol {
                        what: what.to_string(),
                        message: format!("the registry said {message}"),
                    }
                }
            }
            E::DigestError(DigestError::VerificationError { expected, actual }) => {
                digest_mismatch(what, &expected, &actual)
            }
            E::IoError(e) => self.classify_io(e, what),
            other => RegistryError::Protocol {
                what: what.to_string(),
                message: other.to_string(),
            },
        }
    }

    fn classify_io(&self, e: io::Error, what: &str) -> RegistryError {
        if let Some(inner) = e.get_ref() {
            if let Some(DigestError::VerificationError { expected, actual }) =
                inner.downcast_ref::<DigestError>()
            {
                return digest_mismatch(what, expected, actual);
            }
            if let Some(r) = inner.downcast_ref::<reqwest::Error>() {
                return self.classify_reqwest(r, what);
            }
        }
        RegistryError::Protocol {
            what: what.to_string(),
            message: e.to_string(),
        }
    }

    fn classify_reqwest(&self, e: &reqwest::Error, what: &str) -> RegistryError {
        if e.is_connect() || e.is_timeout() {
            let mut reason = innermost(e);
            if e.is_timeout() && !reason.contains("timed out") {
                reason = format!("timed out ({reason})");
            }
            if e.url().is_some_and(|u| u.scheme() == "https") && !reason.contains("refused") {
                reason.push_str(
                    "; if the registry speaks plain HTTP, name it with --insecure HOST[:PORT]",
                );
            }
            return RegistryError::Unreachable {
                host: self.host.clone(),
                reason,
            };
        }
        if let Some(status) = e.status() {
            return self.status_error(status.as_u16(), what, "");
        }
        RegistryError::Protocol {
            what: what.to_string(),
            message: innermost(e),
        }
    }

    fn status_error(&self, code: u16, what: &str, message: &str) -> RegistryError {
        match code {
            401 => self.unauthorized(None),
            403 => RegistryError::Denied {
                host: self.host.clone(),
                what: what.to_string(),
            },
            404 => RegistryError::NotFound {
                what: what.to_string(),
            },
            _ => {
                let said = message.lines().next().unwrap_or("").trim();
                RegistryError::Protocol {
                    what: what.to_string(),
                    message: if said.is_empty() {
                        format!("the registry answered HTTP {code}")
                    } else {
                        format!("the registry answered HTTP {code}: {said}")
                    },
                }
            }
        }
    }

    fn unauthorized(&self, said: Option<&str>) -> RegistryError {
        let mut detail = match &self.credential {
            Some(c) => format!(
                "the registry refused the credentials of user {:?} from {}",
                c.username, c.source
            ),
            None => format!(
                "the registry wants credentials and none were found for {} (looked in {})",
                self.host,
                if self.searched.is_empty() {
                    "no credential files".to_string()
                } else {
                    self.searched
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        };
        if let Some(said) = said.map(str::trim).filter(|s| !s.is_empty()) {
            detail.push_str(&format!(" ({})", said.lines().next().unwrap_or(said)));
        }
        RegistryError::Unauthorized {
            host: self.host.clone(),
            detail,
        }
    }
}

fn digest_mismatch(what: &str, expected: &str, actual: &str) -> RegistryError {
    match (expected.parse::<Digest>(), actual.parse::<Digest>()) {
        (Ok(expected), Ok(found)) => RegistryError::DigestMismatch {
            what: what.to_string(),
            expected,
            found,
        },
        _ => RegistryError::Protocol {
            what: what.to_string(),
            message: format!("digest mismatch: expected {expected}, found {actual}"),
        },
    }
}

fn is_digest_error(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<DigestError>().is_some())
}

/// The most specific message in an error's chain ("Connection refused
/// (os error 111)" rather than "error sending request").
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
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

/// A verified file reader as an iterator of chunks for oci-client's
/// upload stream. At the end of the blob (before yielding the last chunk)
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
    fn fail(&mut self, e: BlobError) -> Option<std::result::Result<Bytes, OciDistributionError>> {
        self.reader = None;
        let stream = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        Some(Err(OciDistributionError::IoError(stream)))
    }
}

impl Iterator for BlobChunks {
    type Item = std::result::Result<Bytes, OciDistributionError>;

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

/// What a registry request addresses: the digest if there is one, else
/// the tag.
fn oci_reference(r: &RegistryRef) -> oci_client::Reference {
    match (&r.digest, &r.tag) {
        (Some(d), _) => {
            oci_client::Reference::with_digest(r.host.clone(), r.repository.clone(), d.to_string())
        }
        (None, Some(t)) => {
            oci_client::Reference::with_tag(r.host.clone(), r.repository.clone(), t.clone())
        }
        // No tag and no digest: a repository, for blob requests only
        // (oci-client would say `latest` for a manifest).
        (None, None) => {
            oci_client::Reference::with_tag(r.host.clone(), r.repository.clone(), "latest".into())
        }
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
