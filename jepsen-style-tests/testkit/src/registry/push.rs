//! The test registry's pushes and reads, through the one pusher `berth up` uses too
//! ([`Pusher`](berth_image_layout::registry::Pusher)); kept as methods of [`Registry`] so tests read as before.

use std::path::Path;

use berth_image_layout::Image;

use super::Registry;

impl Registry {
    /// [`Pusher::push`](berth_image_layout::registry::Pusher::push) with the registry's credentials.
    pub fn push(&self, image: &Image, repo: &str, tag: &str) -> anyhow::Result<String> {
        self.pusher().push(image, repo, tag)
    }

    /// [`Pusher::push_layout`](berth_image_layout::registry::Pusher::push_layout) with the registry's credentials.
    pub fn push_layout(&self, layout_dir: impl AsRef<Path>, repo: &str, tag: &str) -> anyhow::Result<String> {
        self.pusher().push_layout(layout_dir, repo, tag)
    }

    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> anyhow::Result<String> {
        self.pusher().push_blob(repo, bytes)
    }

    pub fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> anyhow::Result<String> {
        self.pusher().put_manifest(repo, reference, media_type, bytes)
    }

    pub fn blob_exists(&self, repo: &str, digest: &str) -> anyhow::Result<bool> {
        self.pusher().blob_exists(repo, digest)
    }

    pub fn fetch_manifest(&self, repo: &str, reference: &str) -> anyhow::Result<(String, Vec<u8>)> {
        self.pusher().fetch_manifest(repo, reference)
    }

    pub fn fetch_blob(&self, repo: &str, digest: &str) -> anyhow::Result<Vec<u8>> {
        self.pusher().fetch_blob(repo, digest)
    }

    pub fn tags(&self, repo: &str) -> anyhow::Result<Vec<String>> {
        self.pusher().tags(repo)
    }
}
