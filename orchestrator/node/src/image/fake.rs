//! An in-memory [`Images`] for tests of the agent: nothing is pulled. A test says
//! what each image resolves to (a pulled image or a pull error), or leaves it
//! unanswered so the pull stays in progress until it answers, and reads back every
//! `ensure` the agent made with its policy and credentials.
//!
//! Lock: one, `state`; never held across an await.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{EnsureFuture, ImageConfig, Images, PullError, PullPolicy, PulledImage, RegistryCredentials};

#[derive(Default)]
pub struct FakeImages {
    state: Mutex<FakeImagesState>,
    /// Wakes the pulls waiting for an answer.
    answered: tokio::sync::Notify,
}

#[derive(Default)]
struct FakeImagesState {
    answers: BTreeMap<String, Result<PulledImage, PullError>>,
    ensures: Vec<Ensure>,
    collected: Vec<Vec<String>>,
}

/// One call of [`Images::ensure`], as the agent made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensure {
    pub image: String,
    pub policy: PullPolicy,
    pub credentials: Vec<RegistryCredentials>,
}

impl FakeImages {
    pub fn new() -> Self {
        FakeImages::default()
    }

    fn lock(&self) -> MutexGuard<'_, FakeImagesState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on `image` resolves to `answer`; pulls waiting for it end.
    pub fn answer(&self, image: &str, answer: Result<PulledImage, PullError>) {
        self.lock().answers.insert(image.to_string(), answer);
        self.answered.notify_waiters();
    }

    /// `image` is pulled as [`pulled`] makes it.
    pub fn has(&self, image: &str) {
        self.answer(image, Ok(pulled(image)));
    }

    /// Every `ensure` so far, in order.
    pub fn ensures(&self) -> Vec<Ensure> {
        self.lock().ensures.clone()
    }

    /// The `in_use` lists of every garbage collection asked for.
    pub fn collected(&self) -> Vec<Vec<String>> {
        self.lock().collected.clone()
    }
}

/// A made-up pulled image: entrypoint `/bin/<last part of the name>`, cmd `--serve`,
/// `PATH` set, working directory `/srv`, digest derived from the name.
pub fn pulled(image: &str) -> PulledImage {
    let short = image.rsplit('/').next().unwrap_or(image);
    let short = short.split([':', '@']).next().unwrap_or(short);
    let hex = format!("{:0>64}", image.bytes().map(|b| format!("{b:02x}")).collect::<String>());
    let hex = &hex[hex.len() - 64..];
    PulledImage {
        reference: image.to_string(),
        image_id: format!("{}@sha256:{hex}", image.split([':', '@']).next().unwrap_or(image)),
        config_digest: format!("sha256:{hex}"),
        config: ImageConfig {
            entrypoint: vec![format!("/bin/{short}")],
            cmd: vec!["--serve".into()],
            env: vec!["PATH=/usr/bin:/bin".into(), "MODE=image".into()],
            working_dir: Some("/srv".into()),
            user: None,
        },
        layers: vec![PathBuf::from(format!("/images/layers/{hex}"))],
    }
}

impl Images for FakeImages {
    fn ensure<'a>(
        &'a self,
        image: &'a str,
        policy: PullPolicy,
        credentials: &'a [RegistryCredentials],
    ) -> EnsureFuture<'a> {
        self.lock().ensures.push(Ensure {
            image: image.to_string(),
            policy,
            credentials: credentials.to_vec(),
        });
        Box::pin(async move {
            loop {
                // Registered before the check, so an answer between the two is not missed.
                let answered = self.answered.notified();
                if let Some(answer) = self.lock().answers.get(image) {
                    return answer.clone();
                }
                answered.await;
            }
        })
    }

    fn collect_garbage(&self, in_use: &[String]) {
        self.lock().collected.push(in_use.to_vec());
    }
}
