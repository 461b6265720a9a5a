//! What to do after one attempt of an API request: a pure table from the
//! outcome (and what was tried already) to the next step, so that the retry
//! rules the README states are one `match` with a test per row.

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// amoCRM answered with this status.
    Answered(u16),
    /// Failed before amoCRM could see it (DNS, connect, TLS).
    NotSent,
    /// Failed after the request may have reached amoCRM (timeout, a dropped
    /// or cut-off answer).
    MaybeSent,
    /// 404 without amoCRM's JSON: the host knows no such account (its
    /// subdomain changed). Nothing was acted on.
    NoAccount,
}

/// What is known about the request besides the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// A read (GET). A write (POST, PATCH, PUT, DELETE) that may have reached
    /// amoCRM is never sent again: a POST would create twice, and even a
    /// PATCH of the same values is an event, a webhook and an automation
    /// run at amoCRM each time it is applied.
    pub read: bool,
    /// Fewer than `max_retries` retries so far.
    pub retry_left: bool,
    /// A 401 was already answered with a newer or refreshed token.
    pub reauthorized: bool,
    /// A long-lived token, which cannot be refreshed.
    pub long_lived: bool,
    /// The account's current host was already looked up for this request.
    pub relocated: bool,
}

/// The next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Hand amoCRM's answer to the caller (decoded, or as an error).
    Answer,
    /// Wait (backoff with jitter), then send the same request again.
    Retry,
    /// Get a newer pair (re-read storage, else the account's new host if
    /// it moved, else refresh once), then send again.
    Reauthorize,
    /// Ask amoCRM for the account's current host; send again there if it moved.
    Relocate,
    /// Stop with this reason.
    Fail(Why),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// No usable answer came, and retries are used up.
    Transport,
    /// A POST may have reached amoCRM: sending it again could duplicate it.
    MayHaveActed,
    /// 401 to a long-lived token: it expired or was revoked.
    LongLivedRefused,
    /// 401 again, to a token just refreshed or re-read.
    RefusedAfterReauthorizing,
    /// 429 and retries are used up.
    RateLimited,
}

pub fn next_step(outcome: Outcome, a: Attempt) -> Step {
    match outcome {
        // Nothing reached amoCRM: safe to send again, whatever the method.
        Outcome::NotSent if a.retry_left => Step::Retry,
        Outcome::NotSent => Step::Fail(Why::Transport),
        Outcome::MaybeSent if !a.read => Step::Fail(Why::MayHaveActed),
        Outcome::MaybeSent if a.retry_left => Step::Retry,
        Outcome::MaybeSent => Step::Fail(Why::Transport),
        Outcome::Answered(401) if a.long_lived => Step::Fail(Why::LongLivedRefused),
        Outcome::Answered(401) if a.reauthorized => Step::Fail(Why::RefusedAfterReauthorizing),
        Outcome::Answered(401) => Step::Reauthorize,
        // Only a refresh token can ask where the account went.
        Outcome::NoAccount if a.relocated || a.long_lived => Step::Answer,
        Outcome::NoAccount => Step::Relocate,
        // A 429 did nothing at amoCRM: any method may be sent again.
        Outcome::Answered(429) if a.retry_left => Step::Retry,
        Outcome::Answered(429) => Step::Fail(Why::RateLimited),
        // A gateway error may hide a request that was acted on.
        Outcome::Answered(502..=504) if a.read && a.retry_left => Step::Retry,
        Outcome::Answered(_) => Step::Answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let get = Attempt {
            read: true,
            retry_left: true,
            reauthorized: false,
            long_lived: false,
            relocated: false,
        };
        let write = Attempt { read: false, ..get };
        let spent = |a: Attempt| Attempt {
            retry_left: false,
            ..a
        };
        use Outcome::*;
        for (outcome, attempt, step) in [
            (Answered(200), get, Step::Answer),
            (Answered(204), write, Step::Answer),
            (Answered(400), get, Step::Answer),
            (Answered(403), get, Step::Answer),
            (NotSent, write, Step::Retry),
            (NotSent, spent(get), Step::Fail(Why::Transport)),
            (MaybeSent, get, Step::Retry),
            (MaybeSent, write, Step::Fail(Why::MayHaveActed)),
            (MaybeSent, spent(write), Step::Fail(Why::MayHaveActed)),
            (MaybeSent, spent(get), Step::Fail(Why::Transport)),
            (Answered(401), write, Step::Reauthorize),
            (Answered(401), spent(get), Step::Reauthorize),
            (
                Answered(401),
                Attempt {
                    reauthorized: true,
                    ..get
                },
                Step::Fail(Why::RefusedAfterReauthorizing),
            ),
            (
                Answered(401),
                Attempt {
                    long_lived: true,
                    ..get
                },
                Step::Fail(Why::LongLivedRefused),
            ),
            (Answered(429), write, Step::Retry),
            (Answered(429), spent(write), Step::Fail(Why::RateLimited)),
            (Answered(502), get, Step::Retry),
            (Answered(503), get, Step::Retry),
            (Answered(504), get, Step::Retry),
            (Answered(502), write, Step::Answer),
            (Answered(504), spent(get), Step::Answer),
            (Answered(500), get, Step::Answer),
            (NoAccount, write, Step::Relocate),
            (
                NoAccount,
                Attempt {
                    relocated: true,
                    ..write
                },
                Step::Answer,
            ),
            (
                NoAccount,
                Attempt {
                    long_lived: true,
                    ..get
                },
                Step::Answer,
            ),
        ] {
            assert_eq!(next_step(outcome, attempt), step, "{outcome:?} {attempt:?}");
        }
    }
}
