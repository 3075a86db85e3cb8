//! Pushing images and reading them back through the registry HTTP API (the OCI
//! distribution spec's push and pull endpoints), as skopeo or a puller would.
//! One request per connection and blocking I/O: images pushed here are a few MB, and
//! their pushers (`berth up` at start, tests) have nothing else to do meanwhile.

use std::path::Path;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use super::{Response, http};
use crate::image::{layout_blob_path, layout_manifest};
use crate::{Image, MEDIA_TYPE_OCI_MANIFEST, digest_hex, sha256_digest};

/// What a puller accepts for a manifest, as containerd asks.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// A client of one registry (`127.0.0.1:PORT`), with the `Authorization` header its
/// requests carry, if any.
#[derive(Clone, Debug)]
pub struct Pusher {
    host: String,
    authorization: Option<String>,
}

impl Pusher {
    /// A client of the registry at `host` (`HOST:PORT`, plain HTTP).
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            authorization: None,
        }
    }

    /// Sends `authorization` (such as `Basic <base64>`) with every request.
    pub fn with_authorization(mut self, authorization: impl Into<String>) -> Self {
        self.authorization = Some(authorization.into());
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// A request to the registry with the client's authorization, if it has one.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut all_headers = headers.to_vec();
        if let Some(authorization) = &self.authorization {
            all_headers.push(("Authorization", authorization));
        }
        http::request(&self.host, method, path, &all_headers, body)
    }

    /// Pushes `image`'s blobs and then its manifest as `<repo>:<tag>`; returns the
    /// manifest digest the registry answered, checked against the image's own.
    pub fn push(&self, image: &Image, repo: &str, tag: &str) -> anyhow::Result<String> {
        for blob in image.blobs() {
            self.push_blob(repo, &blob.bytes)?;
        }
        let digest = self.put_manifest(repo, tag, image.manifest_media_type(), image.manifest())?;
        ensure!(
            digest == image.manifest_digest(),
            "the registry stored the manifest as {digest}, not {}",
            image.manifest_digest()
        );
        Ok(digest)
    }

    /// Pushes the image tagged `tag` in the OCI layout `layout_dir` (or its only
    /// image, when `tag` is empty) as `<repo>:<tag>`: the config and layer blobs the
    /// manifest names, then the manifest. Returns the manifest digest.
    pub fn push_layout(&self, layout_dir: impl AsRef<Path>, repo: &str, tag: &str) -> anyhow::Result<String> {
        let layout_dir = layout_dir.as_ref();
        let (digest, manifest, bytes) = layout_manifest(layout_dir, tag)?;
        let mut descriptors = vec![&manifest["config"]];
        descriptors.extend(manifest["layers"].as_array().into_iter().flatten());
        for descriptor in descriptors {
            let blob_digest = descriptor["digest"].as_str().context("a descriptor without a digest")?;
            let path = layout_blob_path(layout_dir, blob_digest);
            let blob = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            ensure!(
                sha256_digest(&blob) == blob_digest,
                "{} does not match its digest",
                path.display()
            );
            self.push_blob(repo, &blob)?;
        }
        let media_type = manifest["mediaType"].as_str().unwrap_or(MEDIA_TYPE_OCI_MANIFEST);
        let pushed = self.put_manifest(repo, if tag.is_empty() { &digest } else { tag }, media_type, &bytes)?;
        ensure!(
            pushed == digest,
            "the registry stored the manifest as {pushed}, not {digest}"
        );
        Ok(digest)
    }

    /// Uploads `bytes` as a blob of `repo` (monolithically: POST for an upload
    /// session, PUT of the whole blob with its digest), unless the registry has it
    /// already. Returns its digest.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> anyhow::Result<String> {
        let digest = sha256_digest(bytes);
        if self.blob_exists(repo, &digest)? {
            return Ok(digest);
        }
        let started = self.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[])?;
        expect_status(&started, 202, "starting a blob upload")?;
        let location = started.header("location").context("a blob upload without a Location")?;
        let location = path_of(location);
        let separator = if location.contains('?') { '&' } else { '?' };
        let finished = self.request(
            "PUT",
            &format!("{location}{separator}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        )?;
        expect_status(&finished, 201, &format!("uploading blob {digest}"))?;
        Ok(digest)
    }

    /// Stores `bytes` as the manifest `<repo>:<reference>` (a tag or a digest) of the
    /// given media type; returns the digest the registry answers.
    pub fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> anyhow::Result<String> {
        let response = self.request(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            bytes,
        )?;
        expect_status(&response, 201, &format!("putting manifest {repo}:{reference}"))?;
        let digest = response
            .header("docker-content-digest")
            .map_or_else(|| sha256_digest(bytes), str::to_string);
        Ok(digest)
    }

    pub fn blob_exists(&self, repo: &str, digest: &str) -> anyhow::Result<bool> {
        let response = self.request("HEAD", &format!("/v2/{repo}/blobs/{digest}"), &[], &[])?;
        match response.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => bail!("HEAD blob {digest} of {repo}: HTTP {}", response.status),
        }
    }

    /// The manifest `<repo>:<reference>` as a puller gets it: its media type
    /// (`Content-Type`) and bytes, the bytes checked against the digest the registry
    /// names.
    pub fn fetch_manifest(&self, repo: &str, reference: &str) -> anyhow::Result<(String, Vec<u8>)> {
        let response = self.request(
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", MANIFEST_ACCEPT)],
            &[],
        )?;
        expect_status(&response, 200, &format!("getting manifest {repo}:{reference}"))?;
        if let Some(digest) = response.header("docker-content-digest") {
            ensure!(
                sha256_digest(&response.body) == digest,
                "manifest {repo}:{reference} does not match its digest {digest}"
            );
        }
        let media_type = response.header("content-type").unwrap_or_default().to_string();
        Ok((media_type, response.body))
    }

    /// The blob `digest` of `repo`, checked against its digest. The registry answers
    /// a blob from filesystem storage directly (no redirect).
    pub fn fetch_blob(&self, repo: &str, digest: &str) -> anyhow::Result<Vec<u8>> {
        let response = self.request("GET", &format!("/v2/{repo}/blobs/{digest}"), &[], &[])?;
        expect_status(&response, 200, &format!("getting blob {digest} of {repo}"))?;
        ensure!(
            sha256_digest(&response.body) == digest,
            "blob {} does not match its digest",
            digest_hex(digest)
        );
        Ok(response.body)
    }

    /// The tags of `repo` (`GET /v2/<repo>/tags/list`).
    pub fn tags(&self, repo: &str) -> anyhow::Result<Vec<String>> {
        let response = self.request("GET", &format!("/v2/{repo}/tags/list"), &[], &[])?;
        expect_status(&response, 200, &format!("listing the tags of {repo}"))?;
        let list: Value = serde_json::from_slice(&response.body)?;
        Ok(list["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tag| tag.as_str().map(str::to_string))
            .collect())
    }
}

/// The path and query of a Location, which the registry sends as an absolute URL.
fn path_of(location: &str) -> &str {
    match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => location,
    }
}

fn expect_status(response: &Response, expected: u16, what: &str) -> anyhow::Result<()> {
    ensure!(
        response.status == expected,
        "{what}: HTTP {} (expected {expected}): {}",
        response.status,
        response.body_text()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_reduced_to_its_path_and_query() {
        assert_eq!(
            path_of("http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=x"),
            "/v2/a/blobs/uploads/u?_state=x"
        );
        assert_eq!(path_of("/v2/a/blobs/uploads/u"), "/v2/a/blobs/uploads/u");
    }
}
