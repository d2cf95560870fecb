//! Who is on the other end of the request a store call serves — the client's address, written
//! beside every audit line. The service sets it once per request ([`with_client`]); the stores
//! read it where they write the audit log, on the request's task or (GeoPackage) on the writer
//! thread the request's job runs on ([`Carried`]).

use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static CLIENT: Option<String>;
}

thread_local! {
    static ON_THREAD: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Run `f` with `client` as the address of the caller.
pub async fn with_client<F: Future>(client: Option<String>, f: F) -> F::Output {
    CLIENT.scope(client, f).await
}

/// The caller's address, if a request set one (on its task, or carried to this thread).
#[must_use]
pub fn client() -> Option<String> {
    CLIENT
        .try_with(Clone::clone)
        .ok()
        .flatten()
        .or_else(|| ON_THREAD.with(|c| c.borrow().clone()))
}

/// The caller's address taken from a request's task, to be set on the thread that runs its job.
pub(crate) struct Carried(Option<String>);

impl Carried {
    /// Take the current caller's address.
    pub(crate) fn take() -> Carried {
        Carried(client())
    }

    /// Run `f` on this thread with the carried address.
    pub(crate) fn run<T>(self, f: impl FnOnce() -> T) -> T {
        let before = ON_THREAD.with(|c| c.replace(self.0));
        let out = f();
        ON_THREAD.with(|c| *c.borrow_mut() = before);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_address_follows_the_request_and_its_jobs() {
        assert_eq!(client(), None);
        let seen = with_client(Some("203.0.113.9".into()), async {
            let carried = Carried::take();
            let on_thread = std::thread::spawn(move || carried.run(client))
                .join()
                .unwrap();
            (client(), on_thread)
        })
        .await;
        assert_eq!(
            seen,
            (Some("203.0.113.9".into()), Some("203.0.113.9".into()))
        );
        assert_eq!(client(), None, "nothing left behind");
    }
}
